"""Each training sample's last known confidence, for selecting on stale confidences (Stale-SB).

With ``skip.selection-every = n > 1`` a fresh selection forward runs only every n-th local
epoch of a client; in between, a sample's confidence is the one from its last selection
forward or, when it was kept, from its last training forward (free: the loop shows the gate
those logits). Kept in the client's state across rounds: two float32 per training sample.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np

CONFIDENCE, GRAD_NORM, EPOCHS = "skip/confidence", "skip/grad-norm", "skip/epochs"


class ConfidenceMemory:
    def __init__(self, state: MutableMapping[str, np.ndarray], size: int, every: int) -> None:
        self.state = state
        known = state.get(CONFIDENCE)
        valid = known is not None and len(known) == size and not np.isnan(known).any()
        self.confidence = known.copy() if valid else np.full(size, np.nan, np.float32)
        self.grad_norm = state[GRAD_NORM].copy() if valid else np.full(size, np.nan, np.float32)
        self.epochs = int(state.get(EPOCHS, np.zeros(1))[0])
        # A new client, or a training set of another size, has nothing to reuse yet.
        self.fresh = not valid or self.epochs % every == 0

    def lookup(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.confidence[index], self.grad_norm[index]

    def store(self, index: np.ndarray, confidence: np.ndarray, grad_norm: np.ndarray) -> None:
        self.confidence[index], self.grad_norm[index] = confidence, grad_norm

    def save(self) -> None:
        """End of an epoch: persist what is known, and count the epoch."""
        self.state[CONFIDENCE], self.state[GRAD_NORM] = self.confidence, self.grad_norm
        self.state[EPOCHS] = np.array([self.epochs + 1])
