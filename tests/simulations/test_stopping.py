"""Stopping a run: one Ctrl-C ends it within 10 s with exit 130, a resumable ``.partial``
directory and no Ray process left; after a real SIGKILL, ``--resume`` ends with the arrays of
an uninterrupted run, bit for bit, and says which round it continues from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedlite.records import CHECKPOINT, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def fedlite(*args: str, out: Path) -> subprocess.Popen:
    log = open(out, "w")
    return subprocess.Popen([sys.executable, "-m", "simulations.cli", "run", "digits-smoke",
                             *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: the signal is ours alone


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Ray's raylet, GCS and workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def wait_for_round(results: Path, server_round: int, process: subprocess.Popen,
                   timeout: float = 300) -> Path:
    """The run's .partial directory once it has checkpointed ``server_round``. The checkpoint,
    not rounds.jsonl, says what a resume continues from: a round's line is written before its
    checkpoint, so a kill between the two leaves the round before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped"
        for partial in results.glob("*.partial"):
            # the checkpoint is replaced atomically, so a read sees a whole one
            if (partial / CHECKPOINT).is_file() and load_checkpoint(partial)[0] >= server_round:
                return partial
        time.sleep(0.05)
    raise TimeoutError(f"round {server_round} was not checkpointed within {timeout}s")


def kill_all(pids: set[int]) -> None:
    for pid in alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_one_ctrl_c_stops_the_run_cleanly(tmp_path):
    results = tmp_path / "results"
    process = fedlite("num-rounds=50", f"results-dir={results}", out=tmp_path / "out.txt")
    try:
        partial = wait_for_round(results, 1, process)
        ray = descendants(process.pid)
        assert ray, "no Ray processes under the run"
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        stopped = time.monotonic() - start
        deadline = time.monotonic() + 10
        while alive(ray) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = alive(ray)
    finally:
        kill_all(descendants(process.pid) | (ray if "ray" in locals() else set()))
        process.kill()
    out = (tmp_path / "out.txt").read_text()
    assert code == 130, out
    assert stopped <= 10, f"took {stopped:.1f}s"
    assert left == set(), f"Ray processes left behind: {sorted(left)}"
    assert (partial / "checkpoint.npz").is_file()
    assert f"continue it with --resume {partial}" in out
    assert "Traceback" not in out


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_arrays(tmp_path, in_process):
    from simulations.scenarios import load_scenario

    # the uninterrupted run in process: one seed gives one result on any grid (test_cohort)
    # at one torch thread, as in a Ray actor of one CPU (the README's thread-count caveat)
    import torch

    # digits-smoke rounds take ~65 ms under Ray: the victim needs rounds enough to outlast the
    # poll that catches it at round 2, or it can finish first
    rounds = 30
    whole = load_scenario("digits-smoke", [f"num-rounds={rounds}",
                                           f"results-dir={tmp_path / 'whole'}"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected_dir = Path(in_process(whole.config)["run-dir"])
    finally:
        torch.set_num_threads(threads)

    results = tmp_path / "killed"
    victim = fedlite(f"num-rounds={rounds}", f"results-dir={results}", out=tmp_path / "b.txt")
    try:
        partial = wait_for_round(results, 2, victim)
        ray = descendants(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        time.sleep(1)
        kill_all(ray if "ray" in locals() else set())
    done, _ = load_checkpoint(partial)
    assert 2 <= done < rounds

    resumed = fedlite(f"num-rounds={rounds}", f"results-dir={results}", "--resume", str(partial),
                      out=tmp_path / "c.txt")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "c.txt").read_text()
    out = (tmp_path / "c.txt").read_text()
    assert f"continuing after round {done} of {rounds}" in out
    final = partial.with_name(partial.name.removesuffix(".partial"))
    (_, expected), (ended, got) = load_checkpoint(expected_dir), load_checkpoint(final)
    assert ended == rounds and expected.keys() == got.keys()
    for key in expected:
        assert expected[key].tobytes() == got[key].tobytes(), key
    recorded = [json.loads(line)["round"] for line in (final / "rounds.jsonl").read_text()
                .splitlines()]
    assert recorded == list(range(rounds + 1))
