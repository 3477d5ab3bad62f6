"""The FSP benchmark's arithmetic: when a curve first reaches the target, and how it reads."""

from simulations.bench.fsp import first_round, summary_line


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
