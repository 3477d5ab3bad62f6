"""The run config's ``fedpara`` section, and applying it to a freshly built model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fedlite.hadamard.convert import ConversionReport, convert
from fedlite.hadamard.factors import FORMS
from fedlite.hadamard.keys import is_local_key

MODES = ("none", "fedpara", "pfedpara", "lowrank")


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of module names (``"fc2, classifier.4"``) as a tuple."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class FedParaConfig:
    """Run-config keys ``fedpara.*``; ``mode = "none"`` leaves the model dense."""

    mode: str = "none"
    gamma: float = 0.1
    conv_form: str = "prop3"
    tanh: bool = False
    exclude: str = ""  # "" = the library default: a conv net's classifier head stays dense
    include: str = ""  # "" = every Linear/Conv2d layer
    # pFedPara: W2's gradient is W1 * dL/dW, and W1's entries are small (~0.05 in the MLP), so
    # the personal factors barely move at the shared learning rate; this scales theirs.
    local_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        # Deferred: fedlite.config imports this module to declare the section.
        from fedlite.config import ConfigError

        if self.mode not in MODES:
            raise ConfigError(f"run config `fedpara.mode`: choose one of {', '.join(MODES)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"run config `fedpara.gamma`: must be in [0, 1] (the paper uses 0.1 "
                              f"for VGG16 and 0.5 for pFedPara), got {self.gamma}")
        if self.conv_form not in FORMS:
            raise ConfigError(f"run config `fedpara.conv-form`: choose one of {', '.join(FORMS)}")
        if not self.local_lr_scale > 0:
            raise ConfigError("run config `fedpara.local-lr-scale`: must be > 0 (1 = the "
                              "shared learning rate for pFedPara's local factors), got "
                              f"{self.local_lr_scale}")
        if self.tanh and self.mode == "lowrank":
            raise ConfigError("run config `fedpara.tanh`: not available with fedpara.mode=lowrank")


def local_factor_sgd(scale: float):
    """A ``make_optimizer`` for the training loop: the loop's SGD, with the learning rate of
    the local (``fedpara_local_*``) factors multiplied by ``scale``."""
    from fedlite.train.loop import scaled_lr_groups, sgd

    def make(model: nn.Module, settings):
        return sgd(model, settings, params=scaled_lr_groups(model, is_local_key, settings.lr,
                                                            scale))

    return make


def apply(model: nn.Module, settings: FedParaConfig) -> ConversionReport | None:
    """Convert ``model`` in place as the section asks; ``None`` when ``mode = "none"``.

    A bad ``include``/``exclude`` name becomes a ConfigError naming the key.
    """
    if settings.mode == "none":
        return None
    from fedlite.config import ConfigError

    try:
        return convert(model, settings.mode, gamma=settings.gamma,
                       include=names(settings.include) or None,
                       exclude=names(settings.exclude) or None,
                       conv_form=settings.conv_form, tanh=settings.tanh)
    except ValueError as err:
        key = next((k for k in ("include", "exclude") if str(err).startswith(k)), "mode")
        raise ConfigError(f"run config `fedpara.{key}`: {err}") from None
