"""Shared fixtures: the digits dataset and a private partition cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits as a fedlite Dataset (loaded once per session)."""
    from fedlite.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def partition_cache(tmp_path, monkeypatch):
    """Point the on-disk partition cache at an empty temporary directory."""
    from fedlite.data import partition

    cache = tmp_path / "partitions"
    monkeypatch.setattr(partition, "CACHE_DIR", cache)
    return cache
