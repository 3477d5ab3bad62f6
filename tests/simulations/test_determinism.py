"""One seed, one result: two runs through Flower's simulation engine, with clients of unequal
size on two Ray actors (so replies arrive in different orders), write the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedlite.config import RunConfig
from fedlite.records import load_checkpoint
from simulations.engine import Resources, simulate

TIMINGS = ("seconds", "train-seconds")  # wall-clock figures, the only ones allowed to differ


def without_timings(line: dict) -> dict:
    return {k: v for k, v in line.items() if not any(t in k for t in TIMINGS)}


@pytest.mark.integration
def test_two_runs_of_one_seed_write_identical_arrays_and_records(tmp_path):
    # Dirichlet alpha 0.3 gives the 8 clients unequal shares (97 to 203 samples here), so they
    # finish in any order
    flat = {"dataset": "digits", "num-clients": 8, "num-rounds": 3, "partitioner": "dirichlet",
            "dirichlet-alpha": 0.3, "seed": 7, "fraction-train": 0.75}
    runs = []
    for name in ("first", "second"):
        cfg = RunConfig.from_mapping({**flat, "results-dir": str(tmp_path / name)})
        runs.append(simulate(cfg, Resources(num_cpus=1)))
    (done_a, arrays_a), (done_b, arrays_b) = (load_checkpoint(r["run-dir"]) for r in runs)
    assert done_a == done_b == 3 and arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert arrays_a[key].tobytes() == arrays_b[key].tobytes(), key
    lines = [[json.loads(line) for line in (Path(r["run-dir"]) / "rounds.jsonl").read_text()
              .splitlines()] for r in runs]
    assert [without_timings(x) for x in lines[0]] == [without_timings(x) for x in lines[1]]
    assert lines[0][1]["replies-ok"] == 6  # a sample of the clients trains, the same in both


def test_the_clients_are_of_unequal_size():
    from fedlite.federation import data_for

    cfg = RunConfig.from_mapping({"dataset": "digits", "num-clients": 8,
                                  "partitioner": "dirichlet", "dirichlet-alpha": 0.3,
                                  "seed": 7})
    sizes = [len(data_for(cfg).client(i).train_y) for i in range(8)]
    assert max(sizes) > 1.5 * min(sizes), sizes
