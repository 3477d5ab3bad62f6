"""Partitions on digits labels: coverage, determinism, class limits, errors, the disk cache."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fedlite.data import (FederatedData, federated_data, partition, partition_indices,
                          split_train_test)

SCHEMES = ("iid", "dirichlet", "pathological")


def _assert_exact_cover(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n, "some index is missing or repeated"
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


def _split(labels, scheme, seed=0, num_clients=10):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # flwr-datasets' class-use notes
        return partition_indices(labels, num_clients, scheme, alpha=0.5, classes_per_client=2,
                                 seed=seed)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_index_exactly_once(digits, partition_cache, scheme):
    # Execute (10 clients >= 10 classes, so the pathological split uses every class)
    parts = _split(digits.train_y, scheme)
    # Assert
    assert len(parts) == 10 and all(len(p) > 0 for p in parts)
    assert all(p.dtype == np.int64 for p in parts)
    _assert_exact_cover(parts, len(digits.train_y))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_deterministic_from_seed(digits, partition_cache, scheme, tmp_path, monkeypatch):
    # Prepare / Execute: the second call with the same seed computes again (fresh cache)
    first = _split(digits.train_y, scheme, seed=1)
    monkeypatch.setattr(partition, "CACHE_DIR", tmp_path / "other-cache")
    again = _split(digits.train_y, scheme, seed=1)
    other = _split(digits.train_y, scheme, seed=2)
    # Assert
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(len(a) != len(b) or not np.array_equal(a, b)
               for a, b in zip(first, other, strict=True)), \
        f"{scheme}: seed 2 gave the same split as seed 1"


def test_iid_is_shuffled_not_contiguous(partition_cache):
    # Prepare: sorted labels, as in a class-ordered file
    labels = np.repeat(np.arange(10), 20)
    # Execute
    parts = _split(labels, "iid", num_clients=4)
    # Assert: each client sees many classes, not one contiguous block of the file
    assert all(len(np.unique(labels[p])) >= 5 for p in parts)
    assert [len(p) for p in parts] == [50] * 4


def test_dirichlet_is_skewed_but_iid_is_balanced(digits, partition_cache):
    iid = _split(digits.train_y, "iid")
    dirichlet = _split(digits.train_y, "dirichlet")
    assert max(map(len, iid)) - min(map(len, iid)) <= 1
    assert np.std([len(p) for p in dirichlet]) > np.std([len(p) for p in iid])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pathological_limits_classes_per_client(digits, partition_cache, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parts = partition_indices(digits.train_y, 12, "pathological", classes_per_client=k, seed=0)
    assert all(1 <= len(np.unique(digits.train_y[p])) <= k for p in parts)
    assert len(np.unique(np.concatenate(parts))) == len(np.concatenate(parts))


def test_pathological_classes_per_client_out_of_range(digits, partition_cache):
    with pytest.raises(ValueError, match="classes-per-client=11 must be in 1..10"):
        partition_indices(digits.train_y, 5, "pathological", classes_per_client=11)


def test_more_clients_than_samples_names_num_clients(digits, partition_cache):
    n = len(digits.train_y)
    with pytest.raises(ValueError, match=f"num-clients={n + 1} is more than the {n}"):
        partition_indices(digits.train_y, n + 1, "iid")
    assert not partition_cache.exists()


def test_unknown_scheme(digits, partition_cache):
    with pytest.raises(ValueError, match="unknown partitioner 'random'"):
        partition_indices(digits.train_y, 3, "random")


def test_cache_is_hit_the_second_time(digits, partition_cache, monkeypatch):
    # Prepare
    first = _split(digits.train_y, "dirichlet", seed=4)
    files = list(partition_cache.glob("*.npz"))
    assert len(files) == 1 and not list(partition_cache.glob("*.tmp*"))

    def no_compute(*args, **kwargs):
        raise AssertionError("partitioned again instead of reading the cache")

    monkeypatch.setattr(partition, "_partition", no_compute)
    # Execute
    second = _split(digits.train_y, "dirichlet", seed=4)
    # Assert
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError, match="partitioned again"):
        _split(digits.train_y, "dirichlet", seed=5)  # another key misses


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5])
def test_client_train_test_split_disjoint_and_deterministic(fraction):
    # Prepare
    indices = np.arange(100, 200)
    # Execute
    train, test = split_train_test(indices, fraction, seed=0, client=3)
    again = split_train_test(indices, fraction, seed=0, client=3)
    other_client = split_train_test(indices, 0.5, seed=0, client=4)
    # Assert
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), indices)
    assert len(test) == round(fraction * 100)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])
    if fraction == 0.5:
        assert not np.array_equal(test, other_client[1])


def test_federated_data_client_views(digits, partition_cache):
    # Execute
    fed = federated_data("digits", 4, "iid", test_fraction=0.25, seed=0)
    # Assert
    assert isinstance(fed, FederatedData) and fed.num_clients == 4
    sizes = 0
    for client_id in range(4):
        client = fed.client(client_id)
        assert client.train_x.shape[1:] == (1, 8, 8)
        assert len(client.train_x) == len(client.train_y)
        assert len(client.test_y) == pytest.approx(
            0.25 * (len(client.train_y) + len(client.test_y)), abs=1)
        sizes += len(client.train_y) + len(client.test_y)
    assert sizes == len(digits.train_y)
    with pytest.raises(ValueError, match="partition-id 4 is outside 0..3.*num-clients"):
        fed.client(4)


def test_a_split_flwr_datasets_cannot_make_names_the_key_that_fixes_it(digits, partition_cache):
    # 200 clients of about 9 digits each at alpha 0.1: the Dirichlet draws never give every
    # client its minimum share, and flwr-datasets gives up after its attempts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"could not split the data among 200 clients "
                                             r"\(flwr-datasets: .*[^.]\): use fewer clients "
                                             r"or a larger `dirichlet-alpha`$"):
            partition_indices(digits.train_y, 200, "dirichlet", alpha=0.1, seed=0)
    assert not any(partition_cache.glob("*.npz"))  # nothing cached for a failed split
