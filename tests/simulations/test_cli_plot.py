"""`fedlite plot A B`: one PNG with both runs' curves in every panel, named by what differs."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from fedlite import plot
from fedlite.records import RunRecorder
from simulations.cli import main


def recorded_run(results: Path, name: str, lr: float, gain: float) -> Path:
    """A finished run written by the recorder itself, as `fedlite run` leaves it."""
    recorder = RunRecorder(results, name, {"lr": lr, "model": "cnn", "run-name": name})
    recorder.log_round({"round": 0, "accuracy": 0.1, "loss": 2.3})
    for server_round in (1, 2):
        recorder.log_round({"round": server_round, "accuracy": 0.1 + gain * server_round,
                            "loss": 2.3 / (1 + server_round), "bytes-down": 1000,
                            "bytes-up": 500, "round-skipped": 0})
    return recorder.finish({"final-accuracy": 0.1 + 2 * gain})


def test_plot_two_runs_writes_one_png_with_two_labelled_curves_per_panel(tmp_path, monkeypatch,
                                                                         capsys):
    a = recorded_run(tmp_path / "results", "a", lr=0.05, gain=0.3)
    b = recorded_run(tmp_path / "results", "b", lr=0.1, gain=0.2)
    drawn = []
    real_figure = plot.figure
    monkeypatch.setattr(plot, "figure", lambda runs: drawn.append(real_figure(runs)) or drawn[-1])
    out = tmp_path / "plots" / "ab.png"
    # Execute
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    # Assert: the PNG, and in the figure it holds both runs in all six panels, by their lr
    assert capsys.readouterr().out.split() == [str(out)]
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > 1000 and height > 600
    [fig] = drawn
    assert len(fig.axes) == 6
    for axis in fig.axes:
        labels = [line.get_label() for line in axis.get_lines()
                  if not line.get_label().startswith("_")]
        assert labels == ["lr=0.05", "lr=0.1"], axis.get_title()
        assert all(len(line.get_xdata()) == 3 for line in axis.get_lines())
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["lr=0.05", "lr=0.1"]
    config = json.loads((a / "config.json").read_text())["config"]
    assert config["run-name"] == "a"  # the names differ, yet they name no setting


def test_plot_needs_a_run_directory(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot"])
    assert exit_.value.code == 2
    assert "RUN_DIR" in capsys.readouterr().err
