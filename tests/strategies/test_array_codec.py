"""The Array reader: the same arrays as Flower's ``Array.numpy()``, without ``np.load`` where
the header is the one ``np.save`` writes for that dtype and shape."""

import numpy as np
import pytest
from flwr.app import Array

from strategies.array_codec import decode

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
