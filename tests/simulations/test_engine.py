"""Per-client resources that no actor could get stop the run before Ray starts."""

from __future__ import annotations

import os

import pytest

from fedlite.config import RunConfig
from simulations.engine import Resources, simulate


@pytest.mark.parametrize("resources, key", [
    (Resources(num_cpus=(os.cpu_count() or 1) + 1), "client-resources-num-cpus"),
    (Resources(num_cpus=1, num_gpus=0.25), "client-resources-num-gpus"),
])
def test_resources_no_actor_could_get_are_refused_before_ray_starts(resources, key, tmp_path):
    if key.endswith("gpus"):
        torch = pytest.importorskip("torch")
        if torch.cuda.device_count():
            pytest.skip("this machine has a GPU")
    cfg = RunConfig(dataset="digits", num_clients=2, num_rounds=1, results_dir=str(tmp_path))
    with pytest.raises(ValueError, match=key):
        simulate(cfg, resources)
    assert not any(tmp_path.iterdir())  # nothing written


def test_cuda_clients_without_a_gpu_share_are_refused_before_ray_starts(tmp_path):
    cfg = RunConfig(dataset="digits", num_clients=2, num_rounds=1, device="cuda",
                    results_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"device=cuda but client-resources-num-gpus=0"):
        simulate(cfg, Resources(num_cpus=1))
    assert not any(tmp_path.iterdir())
    Resources(num_cpus=1, num_gpus=0.5).check_device("cuda")  # a share: the actor sees a GPU
    Resources(num_cpus=1).check_device("auto")


def test_resources_that_fit_pass():
    Resources(num_cpus=1, num_gpus=0.25).check_fits(cpus=2, gpus=1)
    Resources(num_cpus=2).check_fits(cpus=2, gpus=0)


def test_ray_starts_its_own_instance_unless_an_address_says_otherwise(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert Resources().cluster == ""  # the engine then passes "local", never a stale cluster
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert Resources().cluster == "10.0.0.5:6379"
    assert Resources(ray_address="127.0.0.1:6380").cluster == "127.0.0.1:6380"  # key wins
