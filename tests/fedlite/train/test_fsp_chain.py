"""The progressive chain: growing sizes, the budget helper, and each run's checkpoint passed on
as the next network's teacher."""

from __future__ import annotations

import numpy as np
import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.train.fsp import check_chain, choose_intermediates
from simulations.chain import run_chain


def test_sizes_must_grow():
    assert check_chain("resnet8", ["resnet14", "resnet26"]) == ["resnet14", "resnet26"]
    with pytest.raises(ValueError, match="sizes must grow, but resnet14 follows resnet20"):
        check_chain("resnet8", ["resnet20", "resnet14"])
    with pytest.raises(ValueError, match="sizes must grow"):
        check_chain("resnet14", ["resnet14"])
    with pytest.raises(ValueError, match="not a registered ResNet"):
        check_chain("resnet8", ["vgg16"])


def test_intermediates_fill_the_budget_evenly():
    pick = lambda budget: choose_intermediates("resnet8", "resnet26", budget=budget,  # noqa: E731
                                               target_cost=10)
    assert pick(10) == []  # only the target fits
    assert pick(11) == ["resnet14"]  # one: nearest depth 17 (a tie, the smaller network)
    assert pick(12) == ["resnet14", "resnet20"]
    assert pick(100) == ["resnet14", "resnet20"]  # no more candidates than registered
    costs = {"resnet14": 3, "resnet20": 5}
    assert choose_intermediates("resnet8", "resnet26", budget=14, target_cost=10,
                                costs=costs) == ["resnet14"]
    assert choose_intermediates("resnet8", "resnet26", budget=18, target_cost=10,
                                costs=costs) == ["resnet14", "resnet20"]
    with pytest.raises(ValueError, match="must be larger"):
        choose_intermediates("resnet20", "resnet14", budget=10, target_cost=1)


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
