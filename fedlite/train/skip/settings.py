"""The run config's ``skip`` section (imports no torch: ``fedlite keys`` reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from fedlite.errors import require
from fedlite.fields import setting

SKIP_PERIODS = ("epoch", "round")
SKIP_BATCHINGS = ("refill", "shrink")


@dataclass(frozen=True)
class SkipConfig:
    """Confidence-based backprop skipping: run-config keys ``skip.*``."""

    enabled: bool = setting(False, "confidence-based backprop skipping")
    # share of the estimated gradient mass that skipping may drop
    error_bound: float = setting(0.1, "share of estimated gradient mass skipping may drop; 0 "
                                      "skips nothing")
    bins: int = setting(10, "confidence bins over [0, 1]; the threshold is one of their edges")
    period: str = setting("round", "re-choose the threshold every epoch or every round")
    # a fresh selection forward every n-th local epoch; in between each sample's last
    # confidence is reused (Stale-SB). 1 = the method as published: a selection forward for
    # every mini-batch
    selection_every: int = setting(1, "fresh selection forward every n-th epoch (1 = every "
                                      "mini-batch)")
    # a measurement, not a speed-up: with stale selection the guard sees only remembered
    # ||p - e_y||; this also runs the selection forward in stale epochs so that the share of
    # fresh gradient mass the skipped samples carried is reported (skip-dropped-gradient-fresh)
    audit_stale: bool = setting(False, "stale epochs also run the selection forward, to report "
                                       "the dropped share on fresh confidences (costs what "
                                       "stale selection saves)")
    # with period "round" the first round skips nothing (no threshold yet), so 0 and 1 behave
    # alike; with period "epoch" round 1's second epoch already has a threshold
    warmup_rounds: int = setting(0, "the run's first n rounds skip nothing (the histogram still "
                                    "fills)")
    # p_y > 0.5 means the labeled class wins the argmax: above the floor a skipped sample is
    # one the model already classifies correctly; at or below it, it may be a mistake
    min_threshold: float = setting(0.5, "floor on the threshold: a sample whose labeled-class "
                                        "probability is at most this is always backpropagated")
    batching: str = setting("refill", "refill: kept samples queued into full batches; shrink: "
                                      "each mini-batch's kept samples make that step's batch")
    # between the two forms: refilled batches smaller than batch-size give more optimizer
    # steps an epoch (closer to plain training's count) while each backward stays large enough
    # to run efficiently; each step's gradient is scaled by rows / batch-size, so every kept
    # sample weighs what it does in plain training
    refill_size: int = setting(0, "refill: rows per refilled batch, each step's gradient scaled "
                                  "by rows / batch-size; 0 = batch-size")
    # the kept samples' gradient carries 1 - d of the period's gradient mass (d the measured
    # dropped share, at most the bound), so an epoch moves the weights less than plain
    # training's; scaling each step by 1 / (1 - d) restores that mass in size (the kept
    # samples' direction stands in for the skipped ones', which were small)
    compensate: bool = setting(False, "scale each step's gradient by 1 / (1 - the period's "
                                      "measured dropped share)")
    # the selection forward is inference only: on the CPU torch.compile makes the small CNN's
    # about a fifth cheaper in the federation (the same logits, bit for bit) while a compiled
    # training step is 2.4x dearer, so only the selection is compiled; it costs a compile
    # (seconds) once per process
    compile_selection: bool = setting(False, "run the selection forward through torch.compile "
                                             "(full mini-batches; the epoch's last, shorter one "
                                             "runs eagerly)")

    def __post_init__(self) -> None:
        require(0.0 <= self.error_bound < 1.0, "skip.error-bound",
                "must be in [0, 1): the share of gradient mass that may be dropped "
                "(0 skips nothing)")
        require(self.bins >= 1, "skip.bins",
                "must be a positive integer (number of confidence bins over [0, 1])")
        require(self.period in SKIP_PERIODS, "skip.period",
                f"choose one of {', '.join(SKIP_PERIODS)} (when the threshold is re-chosen)")
        require(isinstance(self.selection_every, int) and self.selection_every >= 1,
                "skip.selection-every",
                "must be a positive integer (1: a selection forward for every mini-batch)")
        require(isinstance(self.warmup_rounds, int) and self.warmup_rounds >= 0,
                "skip.warmup-rounds",
                "must be a whole number of rounds >= 0 (0: skip from the first threshold on)")
        require(0.0 <= self.min_threshold <= 1.0, "skip.min-threshold",
                "must be in [0, 1]: samples whose labeled-class probability is at most this "
                "are always backpropagated (0.5: every sample the model may misclassify)")
        require(isinstance(self.refill_size, int) and self.refill_size >= 0,
                "skip.refill-size",
                "must be a whole number of rows >= 0 (0: refill into batches of batch-size)")
        require(self.batching in SKIP_BATCHINGS, "skip.batching",
                f"choose one of {', '.join(SKIP_BATCHINGS)} (refill: kept samples queued into "
                "full batches; shrink: one smaller step per mini-batch)")
