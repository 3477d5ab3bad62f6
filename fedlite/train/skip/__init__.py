"""Confidence-based backprop skipping with a dynamically chosen threshold.

Implementation based on Shin et al., "Prediction Confidence based Low Complexity Gradient
Computation for Accelerating DNN Training", DAC 2020,
https://doi.org/10.1109/DAC18072.2020.9218650, and its dynamic-threshold patent
US 12,307,363 B2, https://patents.google.com/patent/US12307363B2.

The method's four components:
- computation: ``computation.SelectionForward`` + ``labeled_confidence`` pick the samples
  worth a backward, ``guard.DroppedShareGuard`` keeps the measured dropped share within the
  bound as the period runs; ``batching`` hands the kept samples to the loop's forward +
  backward (refilled into full batches, or each mini-batch shrunk), which gives the
  approximate weight gradient;
- weight update: the loop's optimizer step, on the kept samples only (no step when a
  whole batch is skipped);
- control: ``control.SkipControl`` (batch size, bins, error bound, update period, the floor
  on tau, the batch form);
- threshold selection: ``threshold.ConfidenceHistogram`` (CF accumulation),
  ``interpolate_gradient`` (linear interpolation), ``choose_threshold`` (threshold decision).
``gate.SkipGate`` puts them together as a ``BatchGate`` for ``fedlite.train.train``;
``method.Skip`` is its entry in the method table, ``settings.SkipConfig`` its run-config keys.
"""

from fedlite.lazy import exports

_WHERE = {
    "batching": ["KeptQueue", "ShrinkNormalization", "ShrinkingBatches", "batch_form"],
    "computation": ["SelectionForward", "labeled_confidence", "selection_logits"],
    "control": ["SkipControl"],
    "gate": ["SkipGate"],
    "guard": ["DroppedShareGuard"],
    "settings": ["SkipConfig"],
    "threshold": ["ConfidenceHistogram", "choose_threshold", "dropped_share",
                  "interpolate_gradient"],
}
__all__ = sorted(name for names in _WHERE.values() for name in names)
__getattr__, __dir__ = exports(__name__, {n: m for m, names in _WHERE.items() for n in names})
