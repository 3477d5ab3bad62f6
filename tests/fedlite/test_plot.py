"""Run plots: overlaid runs, labels from the settings that differ, skipped rounds, client spread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedlite import plot


def write_run(results: Path, run_id: str, config: dict, rounds: list[dict]) -> Path:
    """A run directory as the recorder leaves it: config.json and rounds.jsonl."""
    run_dir = results / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"config": config, "strategy": "FedAvg"}))
    total = 0
    lines = []
    for record in rounds:
        total += record.get("bytes-down", 0) + record.get("bytes-up", 0)
        lines.append(json.dumps({**record, "cumulative-bytes": total}))
    (run_dir / "rounds.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def plain_rounds(gain: float, skipped: int | None = None) -> list[dict]:
    out = [{"round": 0, "accuracy": 0.1, "loss": 2.3, "seconds": 0.5}]
    for r in (1, 2, 3):
        out.append({"round": r, "accuracy": 0.1 + gain * r, "loss": 2.3 - 0.5 * r,
                    "bytes-down": 1_000_000, "bytes-up": 500_000, "seconds": 2.0 * r,
                    "round-skipped": int(r == skipped)})
    return out


CONFIG = {"num-rounds": 3, "lr": 0.05, "model": "cnn", "strategy": "flwr.serverapp.strategy:FedAvg",
          "results-dir": "results", "run-name": "run", "seed": 0}


def curves(axis) -> list[str]:
    return [line.get_label() for line in axis.get_lines() if not line.get_label().startswith("_")]


def test_labels_name_the_settings_that_differ():
    other = CONFIG | {"lr": 0.1, "strategy": "flwr.serverapp.strategy:FedMedian",
                      "run-name": "mine", "results-dir": "elsewhere"}
    assert plot.run_labels([CONFIG, other], ["a", "b"]) == [
        "lr=0.05, strategy=FedAvg", "lr=0.1, strategy=FedMedian"]
    # where nothing but the place of the records differs: the run ids
    assert plot.run_labels([CONFIG, CONFIG | {"run-name": "x"}], ["a", "b"]) == ["a", "b"]
    # two runs with the same settings among others keep them apart by run id
    assert plot.run_labels([CONFIG, CONFIG, other], ["a", "b", "c"]) == [
        "lr=0.05, strategy=FedAvg (a)", "lr=0.05, strategy=FedAvg (b)",
        "lr=0.1, strategy=FedMedian"]
    # a key only one run has (an older record) counts as differing
    assert plot.run_labels([CONFIG, CONFIG | {"skip.enabled": True}], ["a", "b"]) == [
        "skip.enabled=unset", "skip.enabled=true"]


def test_overlay_has_one_curve_per_run_in_every_panel_and_marks_skipped_rounds(tmp_path):
    a = write_run(tmp_path, "a-1", CONFIG, plain_rounds(0.2))
    b = write_run(tmp_path, "b-2", CONFIG | {"lr": 0.1}, plain_rounds(0.1, skipped=2))
    runs = [plot.RecordedRun.read(a), plot.RecordedRun.read(b)]
    # Execute
    fig = plot.figure(runs)
    # Assert: 2 x 3 panels, each with both runs' curves named by their lr
    assert len(fig.axes) == 6
    for axis in fig.axes:
        assert curves(axis) == ["lr=0.05", "lr=0.1"]
    by_round, by_bytes, by_clock = fig.axes[:3]
    assert list(by_bytes.get_lines()[0].get_xdata()) == [0.0, 1.5, 3.0, 4.5]  # cumulative MB
    assert list(by_clock.get_lines()[0].get_xdata()) == [0.5, 2.5, 6.5, 12.5]  # cumulative s
    assert list(by_round.get_lines()[0].get_ydata()) == pytest.approx([10, 30, 50, 70])
    # the skipped round of b is marked where b's curve is, in every panel
    marks = [line for line in by_round.get_lines() if line.get_label() == "_skipped"]
    assert [list(m.get_xdata()) for m in marks] == [[2]]
    assert list(marks[0].get_ydata()) == pytest.approx([30.0])
    assert all(any(line.get_label() == "_skipped" for line in axis.get_lines())
               for axis in fig.axes)
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["lr=0.05", "lr=0.1", "skipped round (model unchanged)"]


def test_personalized_run_shows_the_clients_mean_and_spread(tmp_path):
    rounds = plain_rounds(0.2)
    for line in rounds[1:]:
        line |= {"client-accuracy-mean": 0.5 + 0.1 * line["round"], "client-accuracy-std": 0.05}
    personal = write_run(tmp_path, "p-1", CONFIG | {"fedpara.mode": "pfedpara"}, rounds)
    plain = write_run(tmp_path, "f-1", CONFIG | {"fedpara.mode": "none"}, plain_rounds(0.2))
    # Execute
    fig = plot.figure([plot.RecordedRun.read(personal), plot.RecordedRun.read(plain)])
    # Assert
    accuracy_by_round = fig.axes[0]
    assert curves(accuracy_by_round) == ["fedpara.mode=pfedpara",
                                         "fedpara.mode=pfedpara (clients' mean)",
                                         "fedpara.mode=none"]
    dashed = accuracy_by_round.get_lines()[1]
    assert dashed.get_linestyle() == "--"
    assert list(dashed.get_ydata()) == pytest.approx([60, 70, 80])
    [band] = accuracy_by_round.collections  # the spread: mean +- std, rounds 1..3
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == pytest.approx((55, 85))
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert "clients' own test splits: mean ± std" in legend


def test_default_paths_and_a_directory_that_is_not_a_run(tmp_path):
    a = write_run(tmp_path, "a-1", CONFIG, plain_rounds(0.2))
    b = write_run(tmp_path, "b-1", CONFIG | {"lr": 0.1}, plain_rounds(0.1))
    assert plot.plot_run(a) == a / "accuracy.png"
    assert plot.plot_runs([a, b]) == tmp_path / "comparison.png"
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match="rounds.jsonl"):
        plot.plot_runs([a, tmp_path / "missing"], tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()  # nothing drawn before every run was read


def test_a_broken_config_is_named(tmp_path):
    run_dir = write_run(tmp_path, "a-1", CONFIG, plain_rounds(0.2))
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"a-1/config.json: not valid JSON"):
        plot.plot_runs([run_dir], tmp_path / "never.png")
