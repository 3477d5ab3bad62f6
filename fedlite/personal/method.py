"""FedPer and Local as an entry of the method table: which state-dict keys stay on the client."""

from __future__ import annotations

from torch import nn

from fedlite.errors import ConfigError
from fedlite.fields import names
from fedlite.hadamard.keys import split_state
from fedlite.methods import Method, RunSetup
from fedlite.personal.settings import PersonalConfig


class Personalization(Method):
    name = ""  # its keys are top-level: local-modules, federated
    settings = PersonalConfig
    label = "personalization"

    def active(self, s: PersonalConfig) -> bool:
        return bool(names(s.local_modules)) or not s.federated

    def check(self, s: PersonalConfig, setup: RunSetup) -> None:
        self.local_keys(s, setup.model)

    def local_keys(self, s: PersonalConfig, model: nn.Module) -> list[str]:
        state = model.state_dict()
        if not s.federated:
            return list(state)
        try:
            return list(split_state(state, names(s.local_modules))[1])
        except ValueError as err:
            raise ConfigError(f"run config `local-modules`: {err}") from None

    def refuses(self, s: PersonalConfig, other: str, other_settings: object) -> str | None:
        if not s.federated and other == "attack":
            return ("attack.fraction > 0 with federated = false: nothing travels, so there "
                    "is no update to poison; set attack.fraction = 0 or federated = true")
        return None
