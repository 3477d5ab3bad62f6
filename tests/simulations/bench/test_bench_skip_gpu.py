"""The GPU form of the skipping benchmark: its workload, its refusal on a machine without a
GPU, and the data it carries to a machine with torch alone."""

from __future__ import annotations

import pytest
import torch

from simulations.bench import skip, skip_gpu


def test_gpu_workload_is_the_default_scenario_with_a_larger_network_on_cuda():
    cfg = skip_gpu.workload(quick=False)
    assert (cfg.dataset, cfg.model, cfg.device) == ("fashion-mnist", skip_gpu.MODEL, "cuda")
    assert (cfg.num_clients, cfg.local_epochs, cfg.batch_size) == (20, 1, 32)
    assert cfg.num_rounds == skip_gpu.ROUNDS
    # the arms are the CPU benchmark's own settings, not new ones
    assert skip.HEADLINE in skip_gpu.GPU_ARMS and set(skip_gpu.GPU_ARMS) <= set(skip.ARMS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_full_form_needs_a_gpu_and_says_how_to_run_the_small_one():
    with pytest.raises(RuntimeError, match=r"needs a GPU.*--quick"):
        skip_gpu.run(quick=False)


def test_prepare_refuses_a_cache_dir_the_device_would_not_read(tmp_path):
    with pytest.raises(SystemExit, match=rf"FEDLITE_CACHE_DIR={tmp_path / 'gpu' / 'cache'}"):
        skip_gpu.prepare(tmp_path / "gpu")
    assert not (tmp_path / "gpu").exists()  # nothing half-written
