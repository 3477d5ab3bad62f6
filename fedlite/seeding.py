"""Every random stream of a run derives from (seed, round, client, stream).

Two runs of one seed then draw the same numbers whatever the order clients are trained in, the
process that trains them, or the rounds a resumed run skips.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """A use of randomness besides the batch order, which is ``derive_seed(seed, round,
    client)`` itself; each gets an independent stream ``derive_seed(seed, round, client, use)``."""

    STUDENT_SHUFFLE = 1  # continual: the student's batch order
    AUGMENT = 2  # continual: sampling augmented prototype points
    VECTORS = 4  # continual: the initial augmentation vectors of new prototypes
    PROBES = 5  # continual: the distilled student's feature probes around the prototypes
    HEAD_PROBES = 6  # continual: the probes the student's head distillation draws
    HEAD_STEPS = 7  # continual: that distillation's batches
    SERVER_HEAD = 8  # continual: the server's head step after aggregation (no client)
    ANCHOR_MIX = 9  # continual: the student's blends of stored samples and batch inputs


def derive_seed(seed: int, *parts: int) -> int:
    """An independent 63-bit seed for (run seed, round, client, ...)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(2, np.uint64)[0] >> 1)
