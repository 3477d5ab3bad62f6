"""The progress line: what each method did, what failed, the strategy's own metrics, the ETA."""

from __future__ import annotations

import io

from simulations.progress import print_progress, round_parts


def test_progress_shows_what_a_method_did_this_round():
    plain = {"round": 2, "accuracy": 0.8, "loss": 0.5}
    skipping = plain | {"train/skip-backprop-fraction": 0.52, "train/skip-threshold": 0.91}
    fsp = plain | {"stage": 1, "train/fsp-loss": 0.4321}
    assert round_parts(plain, 5) == ["round   2/5", "accuracy 80.00%  loss 0.500"]
    assert round_parts(skipping, 5)[2:] == ["backprop 52.00%  tau 0.91"]
    assert round_parts(fsp, 5)[2:] == ["stage 1  fsp-loss 0.432"]


def test_rejected_replies_and_skipped_rounds_are_loud():
    line = {"round": 3, "bytes-down": 1e6, "bytes-up": 0, "replies-ok": 4, "replies-failed": 0,
            "replies-rejected": 4, "round-skipped": 1}
    parts = round_parts(line, 5)
    assert "4 REJECTED" in parts and "SKIPPED (model unchanged)" in parts


def test_a_strategys_own_metrics_show_and_averaged_client_metrics_do_not():
    line = {"round": 1, "train/train-loss": 0.7, "strategy/train-loss": 0.7,
            "strategy/server-velocity-norm": 0.123456}
    assert round_parts(line, 2)[1:] == ["server-velocity-norm 0.1235"]


def test_elapsed_time_and_eta_from_the_first_line():
    out, times = io.StringIO(), iter([100.0, 110.0, 130.0, 150.0])
    show = print_progress(3, stream=out, clock=lambda: next(times))
    for server_round in range(4):
        show({"round": server_round, "seconds": 1.0})
    lines = out.getvalue().splitlines()
    assert "eta" not in lines[0] and "elapsed" not in lines[0]
    assert lines[1].endswith("elapsed 10s  eta 20s")
    assert lines[2].endswith("elapsed 30s  eta 15s")
    assert lines[3].endswith("elapsed 50s")
