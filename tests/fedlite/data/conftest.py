"""Data-test fixtures: searched directories that hold nothing unless the test writes it."""

from __future__ import annotations

import pytest


@pytest.fixture
def fresh_sources(tmp_path, monkeypatch, partition_cache):
    """No real dataset is searched, and nothing is cached from another test's files."""
    from fedlite.data import federated_data, load_dataset, sources

    monkeypatch.setattr(sources, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("FEDLITE_DATA_DIR", raising=False)
    load_dataset.cache_clear()
    federated_data.cache_clear()
    yield
    load_dataset.cache_clear()
    federated_data.cache_clear()
