"""The personalization keys (top level: ``local-modules``, ``federated``)."""

from __future__ import annotations

from dataclasses import dataclass

from fedlite.fields import setting


@dataclass(frozen=True)
class PersonalConfig:
    local_modules: str = setting("", "module names kept on each client (FedPer: fc2)")
    federated: bool = setting(True, "false = Local: every client trains alone, nothing on the "
                                    "wire")
