"""The Array reader and writer: the same arrays as Flower's ``Array.numpy()`` without
``np.load`` where the header is the one ``np.save`` writes for that dtype and shape, and the
same Arrays as Flower's ``Array(...)`` without ``np.save``."""

import numpy as np
import pytest
import torch
from flwr.app import Array

from strategies.array_codec import decode, encode, encode_record, view

ORDINARY = [np.arange(144, dtype=np.float32).reshape(16, 1, 3, 3), np.arange(7, dtype=np.int64),
            np.array([True, False, True]), np.ones((3, 5), dtype=np.float16),
            np.full((), 2.5), np.arange(6, dtype=np.uint8).reshape(2, 3),
            np.linspace(0, 1, 12).reshape(3, 4)]
UNUSUAL = [np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
           np.arange(5, dtype=">f4"), np.zeros((0, 4), dtype=np.float32)]


def _without_np_load(monkeypatch):
    def refuse(self):
        raise AssertionError("decode fell back to Array.numpy()")
    monkeypatch.setattr(Array, "numpy", refuse)


@pytest.mark.parametrize("value", ORDINARY, ids=lambda a: f"{a.dtype}{a.shape}")
def test_an_ordinary_array_is_read_without_np_load(value, monkeypatch):
    array = Array(value)
    _without_np_load(monkeypatch)
    out = decode(array)
    assert out.dtype == value.dtype and out.shape == value.shape
    np.testing.assert_array_equal(out, value)
    assert out.flags.writeable and out.flags.c_contiguous


@pytest.mark.parametrize("value", UNUSUAL, ids=["fortran", "big-endian", "empty"])
def test_any_other_array_reads_as_flower_reads_it(value):
    array = Array(value)
    out, flower = decode(array), array.numpy()
    assert out.dtype == flower.dtype and out.shape == flower.shape
    np.testing.assert_array_equal(out, flower)


def test_the_result_is_a_copy_of_the_bytes():
    array = Array(np.arange(4, dtype=np.float32))
    out = decode(array)
    out[0] = 99.0
    np.testing.assert_array_equal(decode(array), np.arange(4, dtype=np.float32))


def test_data_that_does_not_fit_its_shape_fails_as_flower_fails():
    good = Array(np.arange(4, dtype=np.float32))
    short = Array(good.dtype, tuple(good.shape), good.stype, good.data[:-4])
    with pytest.raises(ValueError):
        decode(short)


def test_an_array_from_another_serializer_is_left_to_flower():
    odd = Array("float32", (2,), "torch.tensor", b"\x00" * 8)
    with pytest.raises(TypeError, match="Unsupported serialization type"):
        decode(odd)


def _fields(array: Array) -> tuple:
    return array.dtype, tuple(array.shape), array.stype, array.data


@pytest.mark.parametrize("value", ORDINARY + UNUSUAL + [np.arange(12.0).reshape(3, 4)[:, ::2]],
                         ids=lambda a: f"{a.dtype}{a.shape}")
def test_an_encoded_array_is_byte_for_byte_flowers(value, monkeypatch):
    expected = _fields(Array(value))
    if value.flags.c_contiguous and value.dtype.byteorder != ">":
        def refuse(*args, **kwargs):
            raise AssertionError("encode fell back to np.save")
        monkeypatch.setattr(np, "save", refuse)
    assert _fields(encode(value)) == expected


def test_a_tensor_is_encoded_as_flower_encodes_it():
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    for value in (tensor, tensor.t(), tensor.requires_grad_()):
        assert _fields(encode(value)) == _fields(Array(value.detach()))


def test_a_record_keeps_its_keys_in_order_and_reads_back():
    arrays = {"b": np.ones((2, 2), np.float32), "a": torch.zeros(3)}
    record = encode_record(arrays)
    assert list(record) == ["b", "a"]
    np.testing.assert_array_equal(decode(record["b"]), arrays["b"])
    np.testing.assert_array_equal(record["a"].numpy(), np.zeros(3, np.float32))


@pytest.mark.parametrize("value", ORDINARY + UNUSUAL, ids=lambda a: f"{a.dtype}{a.shape}")
def test_a_view_reads_what_decode_reads(value):
    array = Array(value)
    seen = view(array)
    assert seen.dtype == value.dtype and seen.shape == value.shape
    np.testing.assert_array_equal(seen, decode(array))


def test_a_view_of_an_ordinary_array_is_its_bytes_read_only():
    array = Array(np.arange(6, dtype=np.float32).reshape(2, 3))
    seen = view(array)
    assert not seen.flags.writeable
    assert np.frombuffer(array.data, np.uint8)[-4:].view(np.float32)[0] == seen[1, 2]
