"""The FedPara benchmark's arithmetic: cumulative bytes when the target is first reached."""

from simulations.bench.fedpara import bytes_to

ROUNDS = [{"round": 0, "accuracy": 0.9, "cumulative-bytes": 0},  # round 0: before training
          {"round": 1, "accuracy": 0.5, "cumulative-bytes": 10},
          {"round": 2, "cumulative-bytes": 20},  # no central evaluation this round
          {"round": 3, "accuracy": 0.8, "cumulative-bytes": 30},
          {"round": 4, "accuracy": 0.9, "cumulative-bytes": 40}]


def test_bytes_to_target_counts_trained_rounds_only():
    assert bytes_to(ROUNDS, 0.8) == 30
    assert bytes_to(ROUNDS, 0.95) is None
