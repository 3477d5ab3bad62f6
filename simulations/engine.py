"""Run a fedlite configuration on Flower's Simulation Runtime (Ray), in this process.

This is the path Flower's own ``flwr-simulation`` takes (``_run_simulation`` with a ``Run``
whose override config is fused with the app's pyproject defaults), minus the SuperLink:
the ServerApp and ClientApps get the same run config as under ``flwr run .``, and the
driver sees every round as it ends.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedlite.config import RunConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Resources:
    """Per-client resources handed to Ray: one actor per ``num_cpus`` share."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError("client-resources-num-cpus must be > 0")
        if self.num_gpus < 0:
            raise ValueError("client-resources-num-gpus must be >= 0")

    def check_fits(self, cpus: int | None, gpus: int) -> None:
        """Raise unless one client actor fits this machine: Ray would start and then find
        it cannot host a single client."""
        if cpus is not None and self.num_cpus > cpus:
            raise ValueError(f"client-resources-num-cpus={self.num_cpus:g} is more than this "
                             f"machine's {cpus} CPUs, so Ray could not start one client: "
                             f"set it to at most {cpus} (1 trains {cpus} clients at a time)")
        if self.num_gpus > gpus:
            raise ValueError(f"client-resources-num-gpus={self.num_gpus:g} but torch sees "
                             f"{gpus} GPU(s) here: set it to 0 on a CPU machine, or to a "
                             "fraction such as 0.25 to share one GPU among four clients")


def simulate(cfg: RunConfig, resources: Resources = Resources(), *, verbose: bool = False,
             on_round: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``cfg`` with one SuperNode per client; returns the run summary."""
    from flwr.app import Context, RecordDict
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.constant import NOOP_FEDERATION_ID
    from flwr.supercore.telemetry import EventType
    from flwr.serverapp import ServerApp
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    from clients.client_app import app as client_app
    from strategies.grids import StoppableGrid
    from strategies.server_app import preflight, run_federation

    import torch

    resources.check_fits(os.cpu_count(), torch.cuda.device_count())
    if not (PROJECT_ROOT / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{PROJECT_ROOT}/pyproject.toml not found: run fedlite from a "
                                "checkout installed with `pip install -e .`")
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.DEBUG if verbose else logging.ERROR)
    try:
        cfg = preflight(cfg)  # bad input fails here, before Ray starts
    finally:
        flwr_logger.setLevel(level)
    summaries: list[dict[str, Any]] = []
    server_app = ServerApp()
    failed = threading.Event()  # the runtime failed: the ServerApp thread must not wait on

    @server_app.main()
    def _main(grid, context) -> None:
        summaries.append(run_federation(StoppableGrid(grid, failed), cfg, on_round))

    run = Run.create_empty(run_id=_random_id())
    run.primary_task_id = _random_id()
    run.federation_id = NOOP_FEDERATION_ID
    run.override_config = cfg.to_flat()
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run.run_id, SUPERLINK_NODE_ID
    context = Context(run_id=run.run_id, node_id=0, node_config={}, state=RecordDict(),
                      run_config=cfg.to_flat())
    backend_config = {"client_resources": {"num_cpus": resources.num_cpus,
                                           "num_gpus": resources.num_gpus},
                      "init_args": {"address": ray_address(), "include_dashboard": False,
                                    "logging_level": logging.DEBUG if verbose else logging.ERROR,
                                    "log_to_driver": verbose}}
    flwr_logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray nices its workers by 15 below the driver; here the workers do the training and the
    # driver mostly waits, so they keep the driver's priority (docs/BENCHMARKS.md, overhead).
    os.environ.setdefault("RAY_worker_niceness", "0")
    warnings.filterwarnings("ignore", message=".*RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*")
    try:
        _run_simulation(num_supernodes=cfg.num_clients,
                        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
                        client_app=client_app, server_app=server_app, backend_name="ray",
                        backend_config=backend_config, app_dir=str(PROJECT_ROOT), run=run,
                        server_app_context=context, is_app=True, verbose_logging=verbose)
    except BaseException:
        failed.set()
        raise
    finally:
        flwr_logger.setLevel(level)
    if not summaries:
        raise RuntimeError("the simulation ended without completing the run; rerun with "
                           "--verbose to see Flower's and Ray's logs")
    return summaries[0]


def ray_address() -> str:
    """A Ray instance of the run's own, unless ``RAY_ADDRESS`` names a cluster to join.

    Left to itself, ``ray.init()`` joins the cluster that ``/tmp/ray/ray_current_cluster``
    last recorded (any ``ray start`` on the machine), and waits forever when that cluster has
    since died; ``"local"`` always starts a fresh instance.
    """
    return os.environ.get("RAY_ADDRESS") or "local"


def _random_id() -> int:
    import secrets

    return secrets.randbits(63)
