"""Confidence-based backprop skipping with a dynamically chosen threshold.

Implementation based on Shin et al., "Prediction Confidence based Low Complexity Gradient
Computation for Accelerating DNN Training", DAC 2020,
https://doi.org/10.1109/DAC18072.2020.9218650, and its dynamic-threshold patent
US 12,307,363 B2, https://patents.google.com/patent/US12307363B2.

The patent's four modules, one component each:
- computation: ``computation.SelectionForward`` + ``labeled_confidence`` pick the samples
  worth a backward; ``queue.KeptQueue`` gathers them into full batches for the loop's
  forward + backward, which gives the approximate weight gradient;
- weight update: the loop's optimizer step, on the kept samples only (no step when a
  whole batch is skipped);
- control: ``control.SkipControl`` (batch size, bins, error bound, update period);
- threshold selection: ``threshold.ConfidenceHistogram`` (CF accumulation),
  ``interpolate_gradient`` (linear interpolation), ``choose_threshold`` (threshold decision).
``gate.SkipGate`` puts them together as a ``BatchGate`` for ``fedlite.train.train``.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np

from fedlite.config import RunConfig
from fedlite.train.skip.computation import (SelectionForward, labeled_confidence,
                                              selection_logits)
from fedlite.train.skip.control import SkipControl
from fedlite.train.skip.gate import SkipGate
from fedlite.train.skip.queue import KeptQueue
from fedlite.train.skip.threshold import (ConfidenceHistogram, choose_threshold, dropped_share,
                                          interpolate_gradient)


def skip_gate(cfg: RunConfig, state: MutableMapping[str, np.ndarray] | None,
              server_round: int | None = None) -> SkipGate | None:
    """The gate a run config asks for (``skip.enabled``), or None for plain training."""
    if not cfg.skip.enabled:
        return None
    return SkipGate(SkipControl.from_run_config(cfg), state, server_round)


__all__ = ["ConfidenceHistogram", "KeptQueue", "SelectionForward", "SkipControl", "SkipGate",
           "choose_threshold", "dropped_share", "interpolate_gradient", "labeled_confidence",
           "selection_logits", "skip_gate"]
