"""FSP stages in the local round: keys, stage from the round, stage 1 lowers the FSP loss on
digits, the teacher cache, and bad input caught before training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedlite.config import ConfigError, RunConfig
from fedlite.arrays import state_arrays
from fedlite.federation import data_for, initial_model, local_round, run_setup
from fedlite.models import build_model
from fedlite.train import TrainSettings
from fedlite.train.fsp import FspTerm, load_teacher
from fedlite.train.fsp.method import Fsp, round_lr, stage1_optimizer
from fedlite.train.fsp.settings import FspConfig

BASE = {"dataset": "digits", "num-clients": 2, "partitioner": "iid", "model": "resnet8",
        "num-rounds": 3, "client-train-size": 120}


def preflight(cfg: RunConfig, model) -> None:
    Fsp().check(cfg.section("fsp"), run_setup(cfg, data_for(cfg), model))


def lr_of(cfg: RunConfig, server_round: int) -> float:
    return round_lr(cfg.section("fsp"), cfg.rates(), server_round)


def save_teacher(tmp_path, model_name="resnet8", seed=1):
    cfg = RunConfig.from_mapping({**BASE, "model": model_name, "seed": seed})
    model = initial_model(cfg, data_for(cfg))
    path = tmp_path / "teacher" / "checkpoint.npz"
    path.parent.mkdir(exist_ok=True)
    np.savez(path, __round__=np.asarray(1), **state_arrays(model))
    return path.parent


def test_off_by_default_and_neutral():
    cfg = RunConfig.from_mapping({"lr": 0.1, "lr-decay": 0.5})
    assert not cfg.fsp.enabled and cfg.fsp.stage(1) == 0
    assert [lr_of(cfg, r) for r in (1, 2, 3)] == [cfg.lr_at(r) for r in (1, 2, 3)]


def test_stage_comes_from_the_round_and_stage_2_restarts_the_schedule():
    cfg = RunConfig.from_mapping({"fsp.teacher": "t", "fsp.stage1-rounds": 2, "fsp.lr": 0.01,
                                  "lr": 0.1, "lr-decay": 0.5})
    assert [cfg.fsp.stage(r) for r in (1, 2, 3, 4)] == [1, 1, 2, 2]
    assert [lr_of(cfg, r) for r in (1, 2, 3, 4)] == [0.01, 0.01, 0.1, 0.05]


def test_stage_1_runs_the_schedule_at_fsp_lr_and_stage_2_restarts_it():
    # 2 stage-1 rounds at fsp.lr, then 8 stage-2 rounds: each stage steps at 50 % and 75 %
    step = RunConfig.from_mapping({"fsp.teacher": "t", "fsp.stage1-rounds": 2, "fsp.lr": 0.001,
                                   "lr": 0.1, "num-rounds": 10, "lr-schedule": "step"})
    assert [lr_of(step, r) for r in range(1, 11)] == pytest.approx(
        [0.001, 0.0001] + [0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    cosine = step.with_keys({"lr-schedule": "cosine", "fsp.stage1-rounds": 4})
    stage1 = [0.001 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    stage2 = [0.1 * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert [lr_of(cosine, r) for r in range(1, 11)] == pytest.approx(stage1 + stage2)
    # constant: fsp.lr, then lr-decay restarted
    constant = step.with_keys({"lr-schedule": "constant", "lr-decay": 0.5})
    assert [lr_of(constant, r) for r in (1, 2, 3, 4)] == [0.001, 0.001, 0.1, 0.05]
    # fsp.lr-schedule gives stage 1 its own shape; stage 2 keeps the run's
    own = step.with_keys({"fsp.stage1-rounds": 3, "fsp.lr-schedule": "constant"})
    assert [lr_of(own, r) for r in range(1, 11)] == pytest.approx(
        [0.001] * 3 + [0.1] * 4 + [0.01] * 2 + [0.001])
    assert [lr_of(step.with_keys({"fsp.stage1-rounds": 3}), r) for r in (1, 2, 3)] == \
        pytest.approx([0.001, 0.001, 0.0001])
    # FSP off: the run's own schedule over all its rounds
    off = step.with_keys({"fsp.teacher": ""})
    assert [lr_of(off, r) for r in range(1, 11)] == [off.lr_at(r) for r in range(1, 11)]
    assert lr_of(off, 5) == 0.1 and lr_of(off, 6) == pytest.approx(0.01)


@pytest.mark.parametrize("optimizer", [{}, {"fsp.optimizer": "adam", "fsp.lr": 0.001}])
def test_stage_1_lowers_the_fsp_loss_on_digits(tmp_path, optimizer):
    teacher = save_teacher(tmp_path)
    cfg = RunConfig.from_mapping({**BASE, "fsp.teacher": str(teacher), "fsp.stage1-rounds": 2,
                                  "local-epochs": 2, **optimizer})
    data = data_for(cfg)
    model = initial_model(cfg, data)
    first = local_round(model, data.client(0), cfg, 1, 0)
    second = local_round(model, data.client(0), cfg, 2, 0)
    assert second.method_metrics["fsp-loss"] < first.method_metrics["fsp-loss"]
    assert first.method_metrics["fsp-seconds"] > 0
    # stage 2 is plain cross-entropy from these weights: no FSP metrics, hooks gone
    third = local_round(model, data.client(0), cfg, 3, 0)
    assert "fsp-loss" not in third.method_metrics
    assert all(not s._forward_hooks for s in model.sections)


def test_teacher_is_loaded_once_per_process(tmp_path):
    teacher = save_teacher(tmp_path)
    a = load_teacher(teacher, "resnet8", (1, 8, 8), 10)
    b = load_teacher(teacher / "checkpoint.npz", "resnet8", (1, 8, 8), 10)
    assert a is b and not any(p.requires_grad for p in a.parameters())


def test_term_removes_its_hooks(tmp_path):
    teacher = load_teacher(save_teacher(tmp_path), "resnet8", (1, 8, 8), 10)
    cfg = RunConfig.from_mapping(BASE)
    student = initial_model(cfg, data_for(cfg))
    with FspTerm(student, teacher):
        assert all(s._forward_hooks for s in student.sections)
    assert all(not s._forward_hooks for s in student.sections)


def test_missing_teacher_is_a_clear_error(tmp_path):
    cfg = RunConfig.from_mapping({**BASE, "fsp.teacher": str(tmp_path / "nowhere")})
    model = initial_model(cfg, data_for(cfg))
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*nowhere"):
        preflight(cfg, model)


def test_teacher_of_another_architecture_names_a_layer_and_both_shapes(tmp_path):
    teacher = save_teacher(tmp_path)
    path = teacher / "checkpoint.npz"
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["fc.weight"] = np.zeros((10, 32), np.float32)
    np.savez(path, **arrays)
    cfg = RunConfig.from_mapping({**BASE, "fsp.teacher": str(teacher)})
    model = initial_model(cfg, data_for(cfg))
    with pytest.raises(ValueError, match=r"`fc.weight` is \(10, 32\) in the checkpoint, "
                                         r"\(10, 64\) in the model"):
        preflight(cfg, model)
    with pytest.raises(ValueError, match="does not match fsp.teacher-model='resnet14'"):
        load_teacher(save_teacher(tmp_path), "resnet14", (1, 8, 8), 10)


def test_stage_1_optimizer_is_the_loops_sgd_or_adam():
    assert stage1_optimizer(RunConfig().section("fsp")) is None
    cfg = RunConfig.from_mapping({"fsp.teacher": "t", "fsp.optimizer": "adam", "fsp.lr": 1e-3})
    model = torch.nn.Linear(2, 2)
    optimizer = stage1_optimizer(cfg.section("fsp"))(model, TrainSettings(lr=lr_of(cfg, 1)))
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="`fsp.optimizer`"):
        RunConfig.from_mapping({"fsp.optimizer": "rmsprop"})


def test_unknown_stage_1_schedule_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match="`fsp.lr-schedule`.*constant, step, cosine.*'linear'"):
        RunConfig.from_mapping({"fsp.teacher": "t", "fsp.lr-schedule": "linear"})


def test_zero_length_stages_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="`fsp.stage1-rounds`"):
        RunConfig.from_mapping({"fsp.teacher": "t", "fsp.stage1-rounds": 0})
    cfg = RunConfig.from_mapping({**BASE, "fsp.teacher": str(save_teacher(tmp_path)),
                                  "fsp.stage1-rounds": 3})
    with pytest.raises(ConfigError, match="no stage-2 round"):
        preflight(cfg, initial_model(cfg, data_for(cfg)))


def test_student_without_sections_is_rejected(tmp_path):
    cfg = RunConfig.from_mapping({**BASE, "model": "cnn",
                                  "fsp.teacher": str(save_teacher(tmp_path))})
    with pytest.raises(ValueError, match="not a ResNet"):
        preflight(cfg, initial_model(cfg, data_for(cfg)))


def test_client_train_size_caps_each_client(tmp_path):
    data = data_for(RunConfig.from_mapping(BASE))
    assert len(data.client(0).train_y) == 120
    assert torch.is_tensor(torch.as_tensor(data.client(1).train_x))


def test_teacher_from_a_resumable_runs_checkpoint_ignores_its_bookkeeping(tmp_path):
    # Prepare: a checkpoint as the ServerApp writes it, strategy and RNG state included
    teacher_dir = save_teacher(tmp_path)
    with np.load(teacher_dir / "checkpoint.npz") as stored:
        arrays = {k: stored[k] for k in stored.files if not k.startswith("__")}
    np.savez(teacher_dir / "checkpoint.npz", __round__=np.asarray(3),
             __rng__=np.arange(4, dtype=np.uint8), __strategy__=np.zeros(2), **arrays)
    # Execute
    teacher = load_teacher(teacher_dir, "resnet8", (1, 8, 8), 10)
    # Assert: the weights are the run's, and the bookkeeping did not count as a layer
    for key, value in teacher.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), arrays[key])


def test_stage_1s_adam_takes_the_foreach_path_and_steps_as_the_per_tensor_form():
    # Prepare: two equal models, one under stage 1's Adam, one under torch's per-tensor Adam
    settings = TrainSettings(epochs=1, batch_size=8, lr=1e-3, weight_decay=5e-4)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("resnet8", (1, 28, 28), 10))
    ours = stage1_optimizer(FspConfig(optimizer="adam"))(models[0], settings)
    reference = torch.optim.Adam(models[1].parameters(), lr=1e-3, weight_decay=5e-4,
                                 foreach=False)
    # Execute: three steps on the same batches
    batches = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, 1, 28, 28, generator=batches)
        y = torch.randint(0, 10, (8,), generator=batches)
        for model, optimizer in zip(models, (ours, reference), strict=True):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    # Assert
    assert ours.param_groups[0]["foreach"] is True
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
