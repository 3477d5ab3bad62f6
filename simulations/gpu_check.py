"""Run fedlite's training loop, FedPara layers, backprop skipping, FSP and continual learning
once on a GPU, without Flower (sequential FedAvg in process for the last two).

Usage on a machine with CUDA and torch (flwr not needed):
    PYTHONPATH=. python3 simulations/gpu_check.py
"""
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fedlite.data.sources import load_dataset
from fedlite.models import build_model
from fedlite.train import TrainSettings, train, evaluate
from fedlite.hadamard.convert import convert
from fedlite.hadamard import HadamardConv2d, HadamardLinear, PersonalHadamardLinear
from fedlite.config import RunConfig
from fedlite.train.skip import skip_gate
from fedlite.federation import data_for, run_sequential_fedavg
from fedlite.continual.evaluation import ContinualTracker
from simulations.bench.continual import workload as continual_workload

out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
d = load_dataset("digits")
for device in ("cpu", "cuda"):
    for mode in ("dense", "fedpara"):
        torch.manual_seed(0)
        m = build_model("cnn", d.input_shape, 10)
        if mode == "fedpara":
            convert(m, mode="fedpara", gamma=0.5)
        t = time.perf_counter()
        r = train(m, d.train_x, d.train_y,
                  TrainSettings(epochs=5, batch_size=32, lr=0.05, seed=1), device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        loss, acc = evaluate(m, d.test_x, d.test_y, device=device)
        out[f"{device}-{mode}"] = {"train_loss": round(r.loss, 4), "test_acc": round(acc, 4),
                                   "seconds": round(time.perf_counter() - t, 2)}
# skip gate on cuda
cfg = RunConfig.from_mapping({"skip.enabled": True, "skip.error-bound": 0.2,
                              "skip.period": "epoch", "dataset": "digits"})
state = {}
torch.manual_seed(0)
m = build_model("cnn", d.input_shape, 10)
gate = skip_gate(cfg, state)
r = train(m, d.train_x, d.train_y, TrainSettings(epochs=5, batch_size=32, lr=0.05, seed=1),
          device="cuda", gate=gate, callbacks=[gate])
out["cuda-skip-test-acc"] = round(evaluate(m, d.test_x, d.test_y, device="cuda")[1], 4)
out["cuda-skip"] = {"backprop_fraction": round(r.samples_backprop / r.samples_seen, 3),
                    "train_loss": round(r.loss, 4),
                    **{k: round(v, 4) for k, v in r.method_metrics.items()}}
# gradcheck of Hadamard layers on cuda, float64
ok = {}
for name, layer, x in [
    ("linear", HadamardLinear(6, 5, 2), torch.randn(3, 6)),
    ("personal-linear", PersonalHadamardLinear(6, 5, 2), torch.randn(3, 6)),
    ("conv-prop3", HadamardConv2d(3, 4, 3, 2, padding=1, form="prop3"), torch.randn(2, 3, 5, 5)),
    ("conv-prop1", HadamardConv2d(3, 4, 3, 2, stride=2, form="prop1"), torch.randn(2, 3, 5, 5)),
]:
    layer = layer.double().cuda()
    x = x.double().cuda().requires_grad_(True)
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters())

    def fn(inp, *ps, layer=layer, names=names):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (inp,))

    ok[name] = {"params": names,
                "gradcheck": bool(torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-4,
                                                           nondet_tol=1e-9))}
out["gradcheck_cuda"] = ok


def sequential(keys: dict) -> tuple[list[float], dict, float]:
    cfg = RunConfig.from_mapping({"dataset": "digits", "num-clients": 4, "device": "cuda", **keys})
    t = time.perf_counter()
    result = run_sequential_fedavg(cfg)
    return [round(a, 4) for a in result.accuracy], result.arrays, round(time.perf_counter() - t, 1)


# FSP on cuda: a resnet8 teacher, then resnet14 with one FSP round (stage 1) and CE rounds
with tempfile.TemporaryDirectory() as tmp:
    accuracy, arrays, seconds = sequential({"model": "resnet8", "num-rounds": 3, "local-epochs": 2})
    out["cuda-fsp-teacher-resnet8"] = {"accuracy": accuracy, "seconds": seconds}
    np.savez(Path(tmp) / "teacher.npz", **arrays)
    accuracy, _, seconds = sequential({"model": "resnet14", "num-rounds": 3, "local-epochs": 2,
                                       "fsp.teacher": str(Path(tmp) / "teacher.npz"),
                                       "fsp.teacher-model": "resnet8", "fsp.stage1-rounds": 1})
    out["cuda-fsp-student-resnet14"] = {"accuracy (round 1: FSP stage)": accuracy,
                                        "seconds": seconds}
# continual learning on cuda: the continual benchmark's quick workload (digits, 5 tasks)
keys = {**continual_workload(True, "adaptive").to_flat(), "device": "cuda",
        "results-dir": tempfile.gettempdir()}
cfg = RunConfig.from_mapping(keys)
tracker = ContinualTracker(cfg, data_for(cfg))
t = time.perf_counter()
run_sequential_fedavg(cfg, after_round=lambda model, r: tracker.round_metrics(model, r))
summary = tracker.summary()
out["cuda-continual"] = {"seconds": round(time.perf_counter() - t, 1), **{
    branch: {k: round(summary[branch][k], 4) for k in
             ("average_incremental_accuracy", "final_accuracy", "forgetting")}
    for branch in ("teacher", "student") if branch in summary}}
print(json.dumps(out, indent=1))
