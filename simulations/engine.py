"""Run a fedlite configuration on Flower's Simulation Runtime (Ray), in this process.

The ServerApp and ClientApps get the same run config as under ``flwr run .`` (through
``simulations.flower_runtime``, the one place that touches Flower's internals), and the driver
sees every round as it ends.
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
RAY_STOP_SECONDS = 5.0  # how long an interrupted run waits for Ray to shut down
# The ServerApp pulls replies as soon as the engine has stored one (``REPLY_STORED``), and
# otherwise at most this long after its last pull. Flower's grid pulls every 0.1 s, so each
# round waited 0.05 s on average past its last reply, a tenth of a 1,000-client cohort round
# (bench scale, paired runs: 0.563 -> 0.483 s a round at 1,000 clients, 0.364 -> 0.303 at
# 10,000, with a 0.01 s timer). The timer stays as a bound for replies the LinkState makes
# itself (a message whose time to live ran out).
REPLY_POLL_SECONDS = 0.1
RAY_INLINE_BYTES = 1 << 20  # messages up to this size travel inline in Ray's calls (see below)
# SuperNodes per client actor in a cohort simulation: two keep an actor busy while the other
# node's message is packed or unpacked, and even out hosts whose sampled clients differ in size
NODES_PER_ACTOR = 2


@dataclass(frozen=True)
class Resources:
    """Per-client resources handed to Ray: one actor per ``num_cpus`` share."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    ray_address: str = ""  # an existing Ray cluster; "" = RAY_ADDRESS if set, else a fresh Ray

    @property
    def cluster(self) -> str:
        """The Ray cluster to attach to, or "" to start a private Ray on this machine."""
        return self.ray_address or os.environ.get("RAY_ADDRESS", "")

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError("client-resources-num-cpus must be > 0")
        if self.num_gpus < 0:
            raise ValueError("client-resources-num-gpus must be >= 0")

    def actors(self, cpus: int | None, gpus: int) -> int:
        """How many client actors Ray starts on this machine."""
        count = int((cpus or 1) // self.num_cpus)
        if self.num_gpus > 0:
            count = min(count, int(gpus // self.num_gpus))
        return max(count, 1)

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

    def check_device(self, device: str) -> None:
        """Raise where clients must train on cuda but their actors ask Ray for no GPU: Ray
        hides every GPU from such an actor, so each client would fail in round 1."""
        if device == "cuda" and self.num_gpus == 0:
            raise ValueError("device=cuda but client-resources-num-gpus=0, and Ray hides the "
                             "GPUs from a client actor that asks for none: give each client a "
                             "GPU share (e.g. client-resources-num-gpus=0.25), or set "
                             "device=auto")


def simulate(cfg: RunConfig, resources: Resources = Resources(), *, verbose: bool = False,
             on_round: Callable[[dict[str, Any]], None] | None = None,
             on_start: Callable[[Path, int], None] | None = None) -> dict[str, Any]:
    """Run ``cfg`` on Flower's simulation engine; returns the run summary. ``on_round`` and
    ``on_start`` are ``run_federation``'s. With ``simulation-nodes = 0`` the engine starts
    ``NODES_PER_ACTOR`` SuperNodes per client actor (at most one per client), each hosting a
    fixed share of the clients (``strategies.cohort``).

    Raises ``fedlite.errors.RunFailed`` (after the records are written) when no round after
    the first changed the model. On ``KeyboardInterrupt`` the ServerApp stops at its next
    poll and Ray is shut down (at most ``RAY_STOP_SECONDS``) before it propagates; the run's
    ``.partial`` directory keeps its last checkpoint, so it can be resumed.
    """
    import torch
    from flwr.serverapp import ServerApp

    from clients.client_app import app as client_app
    from simulations.flower_runtime import PromptGrid, run_in_process
    from strategies.failure import RunFailed
    from strategies.server_app import preflight, run_federation

    if resources.cluster:
        cpus, gpus = cluster_capacity(resources.cluster)
    else:
        cpus, gpus = os.cpu_count(), torch.cuda.device_count()
    resources.check_fits(cpus, gpus)
    resources.check_device(cfg.device)
    if not cfg.simulation_nodes:  # a few SuperNodes per Ray actor, however many clients
        cfg = cfg.replace(simulation_nodes=min(cfg.num_clients,
                                               NODES_PER_ACTOR * resources.actors(cpus, gpus)))
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
        summaries.append(run_federation(PromptGrid(grid, failed, REPLY_POLL_SECONDS), cfg,
                                        on_round, on_start))

    flwr_logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray nices its workers by 15 below the driver; here the workers do the training and the
    # driver mostly waits, so they keep the driver's priority (docs/experiments/overhead.md).
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Ray passes an argument or result above 100 KB through its shared-memory object store, at
    # a few extra milliseconds a call; up to about 1 MB, passing it inline in the call is
    # faster (an actor echoing 0.9 MB: 7.0 -> 4.8 ms; at 1.6 MB inline is slower). A message
    # of the small CNN (0.83 MB of arrays) is such a call, one per node a round each way.
    os.environ.setdefault("RAY_max_direct_call_object_size", str(RAY_INLINE_BYTES))
    warnings.filterwarnings("ignore", message=".*RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*")
    previous = _quiet_on_interrupt(flwr_logger)
    try:
        run_in_process(num_supernodes=cfg.nodes, client_app=client_app,
                       server_app=server_app, run_config=cfg.to_flower(),
                       backend_config=backend_config(resources, verbose),
                       app_dir=str(PROJECT_ROOT),
                       verbose=verbose)
    except KeyboardInterrupt:
        failed.set()
        stop_ray(RAY_STOP_SECONDS)
        raise
    except BaseException:
        failed.set()
        raise
    finally:
        _restore_interrupt(previous)
        flwr_logger.setLevel(level)
    if not summaries:
        raise RuntimeError("the simulation ended without completing the run; rerun with "
                           "--verbose to see Flower's and Ray's logs")
    if summaries[0].get("failure"):
        raise RunFailed(f"{summaries[0]['failure']} (records in {summaries[0]['run-dir']})")
    return summaries[0]


def backend_config(resources: Resources, verbose: bool = False) -> dict[str, Any]:
    """Flower's Ray backend config for ``resources``."""
    return {"client_resources": {"num_cpus": resources.num_cpus,
                                 "num_gpus": resources.num_gpus},
            # "local" always starts a private Ray: without an address Ray would join whatever
            # cluster `ray start` last recorded on this machine, stale or not
            "init_args": {"address": resources.cluster or "local", "include_dashboard": False,
                          "logging_level": logging.DEBUG if verbose else logging.ERROR,
                          "log_to_driver": verbose}}


def cluster_capacity(address: str) -> tuple[int, int]:
    """CPUs and GPUs of the Ray cluster at ``address``, asked by a short-lived driver of its
    own so that this process joins the cluster only once, through Flower's runtime."""
    import json
    import subprocess
    import sys

    probe = (f"import json, ray; ray.init(address={address!r}, include_dashboard=False, "
             "logging_level='ERROR', log_to_driver=False); r = ray.cluster_resources(); "
             "print(json.dumps([r.get('CPU', 0), r.get('GPU', 0)]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"cannot reach the Ray cluster at ray-address={address!r} (or "
                         f"RAY_ADDRESS): {why}; "
                         "start it with `ray start --head`, or leave ray-address empty and "
                         "unset RAY_ADDRESS to run on this machine")
    cpus, gpus = json.loads(done.stdout.strip().splitlines()[-1])
    return int(cpus), int(gpus)


def _quiet_on_interrupt(flwr_logger: logging.Logger) -> Any:
    """Ctrl-C silences Flower's logger before it stops the run: the runtime's worker threads
    then log the messages that Ray's shutdown cuts off, each with a traceback, and the user
    asked for the stop. Returns the handler to restore (None off the main thread)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupted(signum, frame):
        flwr_logger.setLevel(logging.CRITICAL)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, interrupted)


def _restore_interrupt(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def stop_ray(timeout: float) -> None:
    """Shut this process's Ray down (its local cluster's processes with it), waiting at most
    ``timeout`` seconds: Flower's runtime usually has done so already on its way out."""
    import ray

    if not ray.is_initialized():
        return
    stopper = threading.Thread(target=ray.shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout)
