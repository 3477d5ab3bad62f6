"""The progressive chain: growing sizes, and each run's checkpoint passed on as the next
network's teacher."""

from __future__ import annotations

import numpy as np
import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.train.fsp import check_chain
from simulations.chain import run_chain


def test_sizes_must_grow():
    assert check_chain("resnet8", ["resnet14", "resnet26"]) == ["resnet14", "resnet26"]
    with pytest.raises(ValueError, match="sizes must grow, but resnet14 follows resnet20"):
        check_chain("resnet8", ["resnet20", "resnet14"])
    with pytest.raises(ValueError, match="sizes must grow"):
        check_chain("resnet14", ["resnet14"])
    with pytest.raises(ValueError, match="not a registered ResNet"):
        check_chain("resnet8", ["vgg16"])


def test_each_run_teaches_the_next(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    np.savez(teacher / "checkpoint.npz", __round__=np.asarray(1))
    seen: list[RunConfig] = []

    def run_one(cfg: RunConfig):
        seen.append(cfg)
        run_dir = tmp_path / cfg.run_name
        run_dir.mkdir()
        return {"run-dir": str(run_dir), "final-accuracy": 0.5}

    cfg = RunConfig.from_mapping({"num-rounds": 6, "fsp.stage1-rounds": 2, "run-name": "c"})
    runs = run_chain(cfg, teacher=str(teacher), teacher_model="resnet8",
                     models=["resnet14", "resnet20", "resnet26"], run_one=run_one,
                     intermediate_rounds=3)
    assert [c.model for c in seen] == ["resnet14", "resnet20", "resnet26"]
    assert [c.fsp.teacher_model for c in seen] == ["resnet8", "resnet14", "resnet20"]
    assert [c.fsp.teacher for c in seen] == [str(teacher), str(tmp_path / "c-resnet14"),
                                             str(tmp_path / "c-resnet20")]
    assert [c.num_rounds for c in seen] == [3, 3, 6]  # intermediates shorter, target in full
    assert [r["model"] for r in runs] == ["resnet14", "resnet20", "resnet26"]


def test_bad_chains_fail_before_any_run(tmp_path):
    calls = []
    cfg = RunConfig.from_mapping({"num-rounds": 6, "fsp.stage1-rounds": 2})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_chain(cfg, teacher=str(tmp_path / "missing"), teacher_model="resnet8",
                  models=["resnet14"], run_one=calls.append)
    (tmp_path / "t").mkdir()
    np.savez(tmp_path / "t" / "checkpoint.npz", x=np.zeros(1))
    with pytest.raises(ConfigError, match="no stage-2 round"):
        run_chain(cfg, teacher=str(tmp_path / "t"), teacher_model="resnet8",
                  models=["resnet14", "resnet20"], run_one=calls.append, intermediate_rounds=2)
    assert calls == []


def _fake_runs(tmp_path, accuracy):
    seen: list[RunConfig] = []

    def run_one(cfg: RunConfig):
        seen.append(cfg)
        run_dir = tmp_path / cfg.run_name
        run_dir.mkdir()
        return {"run-dir": str(run_dir), "final-accuracy": accuracy[cfg.model],
                "seconds": 10.0 * cfg.num_rounds}

    return seen, run_one


def test_the_claim_8_chain_adds_intermediates_while_they_improve(tmp_path):
    from fedlite.train.fsp import Plan
    from simulations.chain import run_progressive

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    np.savez(teacher / "checkpoint.npz", __round__=np.asarray(1))
    cfg = RunConfig.from_mapping({"num-rounds": 6, "fsp.stage1-rounds": 1, "run-name": "c"})
    plan = Plan(target="resnet26", target_rounds=6, intermediate_rounds=3)
    seen, run_one = _fake_runs(tmp_path, {"resnet14": 0.72, "resnet20": 0.75, "resnet26": 0.8})
    runs = run_progressive(cfg, teacher=str(teacher), teacher_model="resnet8", plan=plan,
                           run_one=run_one, cost=lambda summary, rounds: summary["seconds"],
                           teacher_accuracy=0.73)
    # resnet14 (0.72) did not improve on the teacher (0.73): straight to the target
    assert [c.model for c in seen] == ["resnet14", "resnet26"]
    assert [c.num_rounds for c in seen] == [3, 6]
    assert seen[1].fsp.teacher == str(tmp_path / "c-resnet14")
    assert runs[1]["chosen-because"] == "resnet14 did not improve on resnet8"


def test_the_command_says_why_no_chain_fits_the_budget(tmp_path, capsys):
    from simulations.cli import main

    teacher = tmp_path / "t.npz"
    np.savez(teacher, __round__=np.asarray(1))
    code = main(["chain", "--teacher", str(teacher), "--target", "resnet20",
                 "--budget-rounds", "5", "num-rounds=4", "fsp.stage1-rounds=1"])
    err = capsys.readouterr().err
    assert code != 0
    assert "fedlite chain --budget-rounds: one intermediate (resnet14, 4 rounds)" in err
    assert "need about 8, over the budget of 5; raise --budget-rounds" in err and "--direct" in err
    assert main(["chain", "--teacher", str(teacher), "--models", "resnet20"]) != 0
    assert "a chain needs at least one intermediate" in capsys.readouterr().err
