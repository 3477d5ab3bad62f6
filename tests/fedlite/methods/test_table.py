"""The method table: a method of one's own joins it from its own file and is validated,
attached to every client's round, recorded and shown, with no other module edited."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.methods import table
from simulations.progress import print_progress

TOY = textwrap.dedent('''
    """A toy method: an L2 penalty on the logits, with a counter of the batches it saw."""
    from dataclasses import dataclass

    from fedlite.errors import require
    from fedlite.fields import setting
    from fedlite.methods import Method


    @dataclass(frozen=True)
    class ToyConfig:
        scale: float = setting(0.0, "weight of an L2 penalty on the logits; 0 = off")

        def __post_init__(self):
            require(self.scale >= 0, "toy.scale", "must be >= 0")


    class LogitPenalty:
        def __init__(self, scale):
            self.scale, self.calls = scale, 0

        def __call__(self, model, x, y, logits):
            self.calls += 1
            return self.scale * logits.pow(2).mean()

        def on_epoch_end(self, epoch):
            pass

        def on_round_end(self):
            return {"toy-calls": float(self.calls)}


    class Toy(Method):
        name = "toy"
        settings = ToyConfig
        label = "toy penalty"

        def active(self, s):
            return s.scale > 0

        def check(self, s, setup):
            require(setup.num_clients >= 2, "toy.scale", "needs at least two clients")

        def attach(self, s, rnd):
            term = LogitPenalty(s.scale)
            rnd.loss_terms.append(term)
            rnd.callbacks.append(term)

        def round_metrics(self, s, server_round):
            return {"toy/server-round": server_round}

        def progress(self, line):
            calls = line.get("train/toy-calls")
            return [] if calls is None else [f"toy {calls:.0f} calls"]
''')


@pytest.fixture
def toy(tmp_path):
    """The toy method's file; the table forgets it again after the test."""
    path = tmp_path / "toy_method.py"
    path.write_text(TOY)
    yield f"{path}:Toy"
    table.unregister("toy")
    table._loaded.discard(f"{path}:Toy")


def config(toy_path: str, tmp_path: Path, **keys) -> RunConfig:
    return RunConfig.from_mapping({"methods": toy_path, "dataset": "digits", "num-clients": 2,
                                   "num-rounds": 2, "partitioner": "iid",
                                   "client-train-size": 80, "central-eval-size": 100,
                                   "results-dir": str(tmp_path / "results"), **keys})


def test_its_keys_are_validated_like_any_key(toy, tmp_path):
    with pytest.raises(ConfigError, match=r"`toy.scale`: must be >= 0"):
        config(toy, tmp_path, **{"toy.scale": -1})
    with pytest.raises(ConfigError, match=r"did you mean `toy.scale`"):
        config(toy, tmp_path, **{"toy.scal": 1})
    assert config(toy, tmp_path).to_flat()["toy.scale"] == 0.0


def test_its_keys_travel_packed_through_flowers_run_config(toy, tmp_path):
    # Flower's run config takes only the keys pyproject declares; the toy's go in one of them
    import tomllib

    declared = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    cfg = config(toy, tmp_path, **{"toy.scale": 0.25})
    flower = cfg.to_flower()
    assert set(flower) <= set(declared["tool"]["flwr"]["app"]["config"])
    assert json.loads(flower["methods-config"]) == {"toy.scale": 0.25}
    assert RunConfig.from_mapping(flower) == cfg
    with pytest.raises(ConfigError, match="`methods-config`: expected a JSON object"):
        RunConfig.from_mapping({**flower, "methods-config": "[1]"})


def test_its_preflight_check_runs_before_any_round(toy, tmp_path, in_process):
    with pytest.raises(ConfigError, match="needs at least two clients"):
        in_process(config(toy, tmp_path, **{"toy.scale": 0.1, "num-clients": 1}))


def test_it_attaches_to_every_round_and_is_recorded_and_shown(toy, tmp_path, in_process):
    cfg = config(toy, tmp_path, **{"toy.scale": 0.1})
    shown = io.StringIO()
    summary = in_process(cfg, on_round=print_progress(cfg.num_rounds, stream=shown))
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    trained = [line for line in lines if line["round"] >= 1]
    assert [line["toy/server-round"] for line in trained] == [1, 2]
    assert all(line["train/toy-calls"] > 0 for line in trained)
    assert shown.getvalue().count(" calls") == 2
    off = in_process(config(toy, tmp_path))  # neutral: attaches nothing
    assert "train/toy-calls" not in json.loads(
        (Path(off["run-dir"]) / "rounds.jsonl").read_text().splitlines()[-1])


def test_a_name_that_is_taken_is_refused(toy):
    table.load(toy)
    with pytest.raises(ValueError, match="already in the table"):
        table.register(table.entry("toy").method)


def test_a_path_that_is_not_a_method_is_a_clear_error(tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match=r"`methods`: .*not a subclass of"):
        RunConfig.from_mapping({"methods": f"{path}:x"})
