"""Benchmarks: each runs a method and its baseline in one run on the same seeds, writes JSON."""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

BENCHMARKS = {"overhead": "simulations.bench.overhead", "fedpara": "simulations.bench.fedpara",
              "pfedpara": "simulations.bench.pfedpara", "skip": "simulations.bench.skip",
              "robust": "simulations.bench.robust", "scale": "simulations.bench.scale",
              "fsp": "simulations.bench.fsp", "continual": "simulations.bench.continual",
              "fedpara-lstm": "simulations.bench.fedpara_lstm",
              "skip-gpu": "simulations.bench.skip_gpu"}


def run_benchmark(name: str, *, quick: bool, out: str | None, argv: list[str]) -> dict[str, Any]:
    """Run benchmark ``name``, write its JSON with provenance, print a one-line summary last."""
    module = importlib.import_module(BENCHMARKS[name])
    # taken before the run: the benchmark's own outputs (PNGs) would make the tree look dirty
    origin = provenance(argv, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    result = module.run(quick=quick)
    record = {"benchmark": name, "quick": quick, **result, "provenance": origin}
    path = (Path(out) if out
            else Path("results") / "bench" / f"{name}{'-quick' if quick else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, path)
    print(f"wrote {path}")
    print(f"{name}: {module.summary_line(record)}")
    return record


def provenance(argv: list[str], started: str) -> dict[str, Any]:
    """The command, commit (and whether tracked files differed from it) and machine."""
    import torch

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[2],
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {"command": "fedlite " + " ".join(argv[1:]), "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "started": started, "machine": {
                "platform": platform.platform(), "processor": platform.processor(),
                # the kernels torch picks follow the CPU's vector ISA, and with them the last
                # bits of every sum: two machines can train the same seed to different curves
                "cpu_model": _cpu_model(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "cpus": os.cpu_count(), "python": platform.python_version(),
                "torch": torch.__version__, "flwr": _version("flwr"),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}


def _version(package: str) -> str | None:
    """An installed package's version; None where it is absent (a GPU machine running an
    in-process benchmark may have torch alone)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor`` is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
