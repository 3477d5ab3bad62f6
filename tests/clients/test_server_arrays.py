"""A cohort host decodes the server's arrays once a round, however many clients it trains."""

import numpy as np
from flwr.app import Array, ArrayRecord

from clients import client_app


def record(value: float) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.full((2, 3), value, dtype=np.float32)),
                        "b": Array(np.zeros(3, dtype=np.float32))})


def test_the_clients_of_one_message_share_one_decoding(monkeypatch):
    decoded = []
    decode = client_app.decode
    monkeypatch.setattr(client_app, "decode", lambda array: decoded.append(1) or decode(array))
    shared = record(1.0)
    first = client_app._server_arrays(shared)
    again = client_app._server_arrays(shared)
    assert again is first and len(decoded) == 2  # two arrays, decoded once
    np.testing.assert_array_equal(first["w"], np.ones((2, 3)))


def test_another_message_is_decoded_afresh_even_with_the_same_keys():
    before = client_app._server_arrays(record(1.0))
    after = client_app._server_arrays(record(2.0))
    assert after is not before
    np.testing.assert_array_equal(after["w"], np.full((2, 3), 2.0))
    np.testing.assert_array_equal(before["w"], np.ones((2, 3)))  # what a client got stays


def test_a_record_whose_array_was_replaced_is_decoded_afresh():
    shared = record(1.0)
    client_app._server_arrays(shared)
    shared["w"] = Array(np.full((2, 3), 5.0, dtype=np.float32))
    np.testing.assert_array_equal(client_app._server_arrays(shared)["w"], np.full((2, 3), 5.0))
