"""Run records: config, rounds with cumulative bytes, checkpoints, the final rename, the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedlite.records import RunRecorder, load_checkpoint, read_rounds


@pytest.fixture
def recorder(tmp_path) -> RunRecorder:
    return RunRecorder(tmp_path / "results", "unit", {"num-rounds": 2, "lr": 0.1},
                       meta={"strategy": "FedAvg"})


def test_a_run_starts_partial_with_its_config(recorder, tmp_path):
    assert recorder.dir.name == recorder.run_id + ".partial"
    assert recorder.run_id.startswith("unit-")
    assert not recorder.final_dir.exists()
    config = json.loads((recorder.dir / "config.json").read_text())
    assert config == {"config": {"num-rounds": 2, "lr": 0.1}, "strategy": "FedAvg"}


def test_rounds_jsonl_cumulates_bytes(recorder):
    # Execute
    recorder.log_round({"round": 1, "accuracy": 0.5, "bytes-down": 100, "bytes-up": 40})
    recorder.log_round({"round": 2, "accuracy": 0.7, "bytes-down": 100, "bytes-up": 60})
    recorder.log_round({"round": 3, "accuracy": None})
    # Assert
    lines = read_rounds(recorder.dir)
    assert lines == recorder.rounds
    assert [line["cumulative-bytes-down"] for line in lines] == [100, 200, 200]
    assert [line["cumulative-bytes-up"] for line in lines] == [40, 100, 100]
    assert [line["cumulative-bytes"] for line in lines] == [140, 300, 300]
    assert all(line["seconds"] >= 0 for line in lines)
    assert lines[1]["accuracy"] == 0.7


def test_checkpoint_round_trip(recorder):
    # Prepare
    arrays = {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
              "fc.bias": np.array([1.5, -2.0], np.float32)}
    # Execute
    recorder.save_checkpoint({k: v * 0 for k, v in arrays.items()}, 1)
    recorder.save_checkpoint(arrays, 2)
    completed, loaded = load_checkpoint(recorder.dir)
    # Assert
    assert completed == 2
    assert loaded.keys() == arrays.keys()
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)
    assert sorted(p.name for p in recorder.dir.iterdir()) == ["checkpoint.npz", "config.json"]


def test_finish_renames_and_writes_summary(recorder):
    # Prepare
    recorder.log_round({"round": 1, "accuracy": 0.5, "loss": 1.0, "bytes-down": 10, "bytes-up": 10})
    recorder.save_checkpoint({"w": np.ones(2, np.float32)}, 1)
    partial = recorder.dir
    # Execute
    final = recorder.finish({"final-accuracy": 0.5})
    # Assert
    assert final == recorder.final_dir == recorder.dir and final.is_dir()
    assert not partial.exists()
    assert {p.name for p in final.iterdir()} == {"config.json", "rounds.jsonl", "summary.json",
                                                  "checkpoint.npz"}
    summary = json.loads((final / "summary.json").read_text())
    assert summary == {"run-id": recorder.run_id, "final-accuracy": 0.5}
    assert load_checkpoint(final)[0] == 1


def test_unfinished_run_stays_partial(tmp_path):
    results = tmp_path / "results"
    recorder = RunRecorder(results, "crash", {})
    recorder.log_round({"round": 1, "accuracy": 0.1})
    del recorder
    assert [p.name.endswith(".partial") for p in results.iterdir()] == [True]


def test_two_runs_get_distinct_dirs(tmp_path):
    a = RunRecorder(tmp_path, "same", {})
    b = RunRecorder(tmp_path, "same", {})
    assert a.run_id != b.run_id and a.dir != b.dir


def test_read_rounds_of_a_non_run_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="rounds.jsonl not found"):
        read_rounds(tmp_path)
