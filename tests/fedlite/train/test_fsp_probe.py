"""``fsp.probe-head``: in stage 1 the classifier learns from the body's detached features while
the body's gradients stay the FSP loss's alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.arrays import state_arrays
from fedlite.config import RunConfig
from fedlite.federation import data_for, initial_model, local_round
from fedlite.train.fsp import FspTerm, load_teacher

BASE = {"dataset": "digits", "num-clients": 2, "partitioner": "iid", "model": "resnet8",
        "num-rounds": 3, "client-train-size": 120}


def teacher_dir(tmp_path):
    cfg = RunConfig.from_mapping({**BASE, "seed": 1})
    path = tmp_path / "teacher" / "checkpoint.npz"
    path.parent.mkdir()
    np.savez(path, __round__=np.asarray(1), **state_arrays(initial_model(cfg, data_for(cfg))))
    return path.parent


def gradients(student, teacher, x, y, probe_head):
    student.zero_grad(set_to_none=True)
    with FspTerm(student, teacher, probe_head=probe_head) as term:
        logits = student(x)
        term(student, x, y, logits).backward()
    return {name: None if p.grad is None else p.grad.clone()
            for name, p in student.named_parameters()}


def test_the_probe_trains_the_classifier_and_leaves_the_body_to_the_fsp_loss(tmp_path):
    teacher = load_teacher(teacher_dir(tmp_path), "resnet8", (1, 8, 8), 10)
    cfg = RunConfig.from_mapping(BASE)
    data = data_for(cfg)
    student = initial_model(cfg, data)
    x = torch.as_tensor(data.dataset.train_x[:16])
    y = torch.as_tensor(data.dataset.train_y[:16])
    plain = gradients(student, teacher, x, y, probe_head=False)
    probed = gradients(student, teacher, x, y, probe_head=True)
    body = [name for name in plain if not name.startswith("fc.")]
    for name in body:
        assert torch.equal(plain[name], probed[name]), name
    assert all(plain[name] is None or not plain[name].any() for name in ("fc.weight", "fc.bias"))
    assert probed["fc.weight"].abs().sum() > 0 and probed["fc.bias"].abs().sum() > 0


def test_a_probed_stage_1_fits_the_classifier_on_digits(tmp_path):
    keys = {**BASE, "fsp.teacher": str(teacher_dir(tmp_path)), "fsp.stage1-rounds": 2,
            "local-epochs": 6, "fsp.optimizer": "adam", "fsp.lr": 0.01}
    metrics = {}
    for probe in (False, True):
        cfg = RunConfig.from_mapping({**keys, "fsp.probe-head": probe})
        data = data_for(cfg)
        model = initial_model(cfg, data)
        first = local_round(model, data.client(0), cfg, 1, 0)
        second = local_round(model, data.client(0), cfg, 2, 0)
        metrics[probe] = (first, second)
    (plain1, plain2), (probe1, probe2) = metrics[False], metrics[True]
    assert "fsp-probe-loss" not in plain1.method_metrics
    assert probe2.method_metrics["fsp-probe-loss"] < probe1.method_metrics["fsp-probe-loss"]
    # the body learned the same FSP loss either way (its gradients do not see the probe)
    assert probe1.method_metrics["fsp-loss"] == pytest.approx(plain1.method_metrics["fsp-loss"])
    # the untrained stage-1 classifier stays at chance; the probed one learns
    assert probe2.accuracy > plain2.accuracy + 0.05


def test_a_student_without_a_head_is_refused():
    class Sectioned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sections = torch.nn.ModuleList([torch.nn.Identity()])

    with pytest.raises(ValueError, match="fsp.probe-head needs a student with `head"):
        FspTerm(Sectioned(), Sectioned(), probe_head=True)
