"""The FSP benchmark's arithmetic: when a curve first reaches the target, and how it reads."""

from simulations.bench.fsp import first_round, fraction_of_scratch, reach, summary_line


def test_first_round_is_one_based_and_skips_missing_evaluations():
    assert first_round([0.1, None, 0.5, 0.7], 0.5) == 3
    assert first_round([0.1, 0.2], 0.5) is None


def _record(progressive_rounds):
    reached = progressive_rounds is not None
    return {"target": 0.7, "rounds_to_target_scratch": 12,
            "client_seconds_to_target_scratch": 900.0,
            "rounds_to_target_progressive": progressive_rounds,
            "client_seconds_to_target_progressive": 400.0 if reached else None,
            "rounds_fraction": progressive_rounds / 12 if reached else None,
            "client_seconds_fraction": 400 / 900 if reached else None}


def test_summary_says_when_the_chain_never_reached_the_target():
    line = summary_line(_record(None))
    assert "scratch in 12 rounds / 900.0 client s" in line
    assert "progressive never reached it" in line and "fractions" not in line


def test_summary_gives_both_fractions_when_the_chain_reached_it():
    line = summary_line(_record(6))
    assert "progressive in 6 rounds / 400.0 client s" in line and "fractions 0.5 and" in line


def _run(accuracy, seconds):
    return {"series": {"accuracy": accuracy, "client_seconds": seconds,
                       "wall_seconds": [2 * s for s in seconds]}}


def test_reach_counts_every_round_of_the_networks_before_the_target():
    runs = [_run([0.1, 0.2], [5.0, 5.0]), _run([0.1, 0.4, 0.8, 0.9], [10.0, 10.0, 10.0, 10.0])]
    assert reach(runs, 0.75) == {"rounds_to_target": 5, "client_seconds_to_target": 40.0,
                                 "wall_seconds_to_target": 80.0}
    assert reach(runs[1:], 0.75)["rounds_to_target"] == 3  # no intermediate
    assert reach(runs, 0.95) == dict.fromkeys(
        ("rounds_to_target", "client_seconds_to_target", "wall_seconds_to_target"))


def test_fractions_are_against_scratch_and_absent_when_not_reached():
    reached = {"rounds_to_target": 6, "client_seconds_to_target": 450.0}
    assert fraction_of_scratch(reached, 12, {"client_seconds": 900.0}) == {
        "rounds_fraction": 0.5, "client_seconds_fraction": 0.5}
    assert fraction_of_scratch({"rounds_to_target": None}, 12, {"client_seconds": 900.0}) == {}


def test_summary_reports_the_direct_arm():
    record = _record(13) | {"direct": {"rounds_to_target": 9, "client_seconds_to_target": 300.0}}
    assert summary_line(record).endswith("direct (no intermediate): 9 rounds / 300.0 client s")
