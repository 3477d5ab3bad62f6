"""TensorBoard tracking, read back with TensorBoard's own event reader."""

from __future__ import annotations

import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.records import RunRecorder
from fedlite.tracking import TB_DIR

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _events(run_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / TB_DIR))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def _scalars(run_dir) -> dict[str, dict[int, float]]:
    return {tag: dict(events) for tag, events in _events(run_dir).items()}


def _round(n: int) -> dict:
    return {"round": n, "accuracy": 0.1 * n, "loss": 2.0 / (n + 1), "bytes-down": 1000,
            "bytes-up": 400, "train/train-loss": 1.5, "client-accuracy-mean": None,
            "stage": "task"}  # None and text are not scalars


def test_every_round_scalar_reaches_tensorboard(tmp_path):
    # Prepare
    recorder = RunRecorder(tmp_path, "tb", {"tracking": "tensorboard", "lr": 0.1})
    # Execute
    for n in range(4):  # round 0: the initial model
        recorder.log_round(_round(n))
    run_dir = recorder.finish({"final-accuracy": 0.3})
    # Assert: in the final run directory, every round's accuracy and the other scalars
    scalars = _scalars(run_dir)
    assert scalars["accuracy"] == pytest.approx({n: 0.1 * n for n in range(4)})
    assert set(scalars) >= {"loss", "bytes-down", "bytes-up", "cumulative-bytes", "seconds",
                            "train/train-loss"}
    assert scalars["cumulative-bytes"][3] == 4 * 1400
    assert ("client-accuracy-mean" not in scalars and "stage" not in scalars
            and "round" not in scalars)


def test_off_by_default(tmp_path):
    recorder = RunRecorder(tmp_path, "plain", RunConfig().to_flat())
    recorder.log_round(_round(1))
    assert recorder.tracker is None and not (recorder.finish({}) / TB_DIR).exists()


def test_a_resumed_run_hides_the_rounds_it_runs_again(tmp_path):
    # Prepare: a run killed after round 3 whose last checkpoint is round 2
    recorder = RunRecorder(tmp_path, "tb", {"tracking": "tensorboard"})
    for n in range(4):
        recorder.log_round(_round(n))
        if n <= 2:
            recorder.save_checkpoint({}, n)
    recorder.tracker.close()
    # Execute: resume; round 3 is run again with another accuracy
    resumed = RunRecorder.reopen(recorder.dir)
    resumed.log_round({**_round(3), "accuracy": 0.9})
    run_dir = resumed.finish({})
    # Assert: one event per round, the rerun's for round 3
    accuracy = _events(run_dir)["accuracy"]
    assert [step for step, _ in accuracy] == [0, 1, 2, 3]
    assert dict(accuracy) == pytest.approx({0: 0.0, 1: 0.1, 2: 0.2, 3: 0.9})


def test_tracking_values_are_checked():
    with pytest.raises(ConfigError, match="run config `tracking`: choose one of none, tensorboard"):
        RunConfig(tracking="wandb")


def test_tensorboard_missing_is_a_clear_error(monkeypatch):
    from fedlite import config

    monkeypatch.setattr(config, "_installed", lambda package: package != "tensorboard")
    with pytest.raises(ConfigError, match="tensorboard is not installed.*fedlite\\[tensorboard\\]"):
        RunConfig(tracking="tensorboard")
