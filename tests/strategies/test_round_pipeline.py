"""Central evaluation overlapping the next round: the same records, in order, while the next
round is already out; its failures still fail the run."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fedlite.config import RunConfig
from fedlite.records import load_checkpoint
from strategies.round_pipeline import RoundPipeline
from strategies.server_app import CentralEvaluation

FLAT = {"dataset": "digits", "num-clients": 6, "num-rounds": 3, "partitioner": "dirichlet",
        "dirichlet-alpha": 0.5, "seed": 3, "fraction-train": 0.67}


def lines_of(summary: dict) -> list[dict]:
    text = (Path(summary["run-dir"]) / "rounds.jsonl").read_text()
    return [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
            for line in text.splitlines()]


def test_overlapped_and_in_line_runs_write_the_same_records_and_arrays(tmp_path, in_process):
    runs = {}
    for overlap in (True, False):
        cfg = RunConfig.from_mapping({**FLAT, "central-eval-overlap": overlap,
                                      "results-dir": str(tmp_path / str(overlap))})
        seen: list[int] = []
        runs[overlap] = (in_process(cfg, on_round=lambda line, seen=seen:
                                    seen.append(line["round"])), seen)
    (fast, fast_rounds), (slow, slow_rounds) = runs[True], runs[False]
    assert fast_rounds == slow_rounds == [0, 1, 2, 3]  # every round, in order
    assert lines_of(fast) == lines_of(slow)
    # each line holds its own round's model's figures, not a neighbour's
    losses = [line["loss"] for line in lines_of(fast)]
    assert len(set(losses)) == 4 and losses[-1] < losses[0]
    (done_a, arrays_a), (done_b, arrays_b) = load_checkpoint(fast["run-dir"]), \
        load_checkpoint(slow["run-dir"])
    assert done_a == done_b == 3
    assert all(arrays_a[k].tobytes() == arrays_b[k].tobytes() for k in arrays_a)


class SignallingGrid:
    """Sets ``sent`` when the ServerApp sends the round after ``after``'s training messages."""

    def __init__(self, inner, after: int) -> None:
        self.inner, self.after, self.rounds = inner, after, 0
        self.sent = threading.Event()

    def get_node_ids(self):
        return self.inner.get_node_ids()

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if any(m.metadata.message_type == "query.cohort" for m in messages) or \
                any(m.metadata.message_type == "train" for m in messages):
            self.rounds += 1
            if self.rounds == self.after + 1:
                self.sent.set()
        return self.inner.send_and_receive(messages, timeout=timeout)


@pytest.mark.parametrize("overlap", [True, False])
def test_round_one_is_evaluated_while_round_two_is_out(overlap, tmp_path, in_process,
                                                       in_process_grid, monkeypatch):
    cfg = RunConfig.from_mapping({**FLAT, "central-eval-overlap": overlap,
                                  "results-dir": str(tmp_path)})
    grid = SignallingGrid(in_process_grid(cfg), after=1)
    sent_during: dict[int, bool] = {}
    evaluate = CentralEvaluation.round_metrics

    def round_metrics(self, model, server_round):
        if server_round == 1:  # waits, in vain if in line, for round 2's messages to go out
            sent_during[1] = grid.sent.wait(timeout=0 if not overlap else 30)
        return evaluate(self, model, server_round)

    monkeypatch.setattr(CentralEvaluation, "round_metrics", round_metrics)
    in_process(cfg, grid=grid)
    assert sent_during == {1: overlap}


def test_an_evaluation_that_raises_fails_the_run_and_the_rounds_before_are_kept(
        tmp_path, in_process, monkeypatch):
    cfg = RunConfig.from_mapping({**FLAT, "results-dir": str(tmp_path)})
    assert cfg.central_eval_overlap
    evaluate = CentralEvaluation.round_metrics

    def round_metrics(self, model, server_round):
        if server_round == 2:
            raise RuntimeError("the test set went away")
        return evaluate(self, model, server_round)

    monkeypatch.setattr(CentralEvaluation, "round_metrics", round_metrics)
    with pytest.raises(RuntimeError, match="the test set went away"):
        in_process(cfg)
    (partial,) = tmp_path.glob("*.partial")
    rounds = [json.loads(line)["round"] for line in (partial / "rounds.jsonl").read_text()
              .splitlines()]
    assert rounds == [0, 1]
    assert load_checkpoint(partial)[0] == 1  # a resume reruns round 2


def test_the_run_error_wins_and_the_round_in_flight_is_still_recorded():
    done: list[int] = []
    with pytest.raises(KeyError):
        with RoundPipeline(overlap=True) as pipeline:
            assert pipeline.submit(lambda: done.append(1)) is None
            raise KeyError("the strategy failed")
    assert done == [1]

    with pytest.raises(ValueError):  # a failed record surfaces at the end of a clean run
        with RoundPipeline(overlap=True) as pipeline:
            pipeline.submit(lambda: (_ for _ in ()).throw(ValueError("disk full")))


def test_in_line_the_record_is_returned_at_once():
    with RoundPipeline(overlap=False) as pipeline:
        assert pipeline.submit(lambda: 7) == 7
        assert not pipeline.overlaps


@pytest.mark.parametrize("overlap", [True, False])
def test_flower_gets_a_metric_record_for_every_round(overlap, tmp_path, in_process,
                                                      monkeypatch):
    """What Flower logs and keeps in its Result: never None, the round's number and traffic;
    in line also the evaluation's figures."""
    import strategies.server_app as server_app

    returned: dict[int, object] = {}

    def spy(evaluate_fn, done):
        inner = shifted(evaluate_fn, done)

        def evaluate_fn_spy(server_round, arrays):
            returned[server_round] = inner(server_round, arrays)
            return returned[server_round]
        return evaluate_fn_spy

    shifted = server_app.shifted
    monkeypatch.setattr(server_app, "shifted", spy)
    cfg = RunConfig.from_mapping({**FLAT, "central-eval-overlap": overlap,
                                  "results-dir": str(tmp_path)})
    in_process(cfg)
    assert sorted(returned) == [0, 1, 2, 3]
    for server_round, record in returned.items():
        assert record is not None and record["round"] == server_round
    assert ("accuracy" in returned[3]) is not overlap
    assert returned[3]["transport-messages"] > 0
