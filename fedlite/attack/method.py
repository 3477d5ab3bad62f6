"""The attack as an entry of the method table: it changes only what an attacker sends."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedlite.attack.settings import AttackConfig
from fedlite.methods import Method


class Attack(Method):
    name = "attack"
    settings = AttackConfig
    label = "attack"

    def active(self, s: AttackConfig) -> bool:
        return s.fraction > 0

    def outgoing(self, s: AttackConfig, client_id: int, num_clients: int,
                 sent: Mapping[str, np.ndarray], reply: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
        return poisoned(s, num_clients, client_id, sent, reply)


def poisoned(s: AttackConfig, num_clients: int, client_id: int, sent: Mapping[str, np.ndarray],
             trained: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What client ``client_id`` replies: its trained arrays, or a poisoned version of them."""
    if client_id >= s.attackers(num_clients):
        return trained
    out = {}
    for key, value in trained.items():
        if value.dtype.kind != "f" or key not in sent:
            out[key] = value
            continue
        start = np.asarray(sent[key], dtype=value.dtype)
        out[key] = (start + value.dtype.type(s.scale) * (value - start)).astype(value.dtype)
    return out
