"""FedPara / pFedPara / low-rank as an entry of the method table.

FedPara (Hyeon-Woo, Ye-Bin and Oh, ICLR 2022, https://arxiv.org/abs/2108.06098;
KR 10-2023-0065883): layers whose
weight is ``(X1 Y1^T) * (X2 Y2^T)``; only the factors travel. pFedPara keeps ``W2`` (the
``fedpara_local_*`` factors) on the client. The model is converted where it is built, so the
server and every client hold the same factorized architecture.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fedlite.errors import ConfigError
from fedlite.fields import names
from fedlite.hadamard.convert import ConversionReport, convert
from fedlite.hadamard.keys import is_local_key
from fedlite.hadamard.settings import FedParaConfig
from fedlite.methods import ClientRound, Method
from fedlite.train.loop import scaled_lr_groups, sgd


class FedPara(Method):
    name = "fedpara"
    settings = FedParaConfig
    label = "FedPara"

    def active(self, s: FedParaConfig) -> bool:
        return s.mode != "none"

    def prepare_model(self, s: FedParaConfig, model: nn.Module) -> ConversionReport:
        """Convert ``model`` in place; a bad ``include``/``exclude`` names its key."""
        try:
            return convert(model, s.mode, gamma=s.gamma, include=names(s.include) or None,
                           exclude=names(s.exclude) or None, conv_form=s.conv_form, tanh=s.tanh)
        except ValueError as err:
            key = next((k for k in ("include", "exclude") if str(err).startswith(k)), "mode")
            raise ConfigError(f"run config `fedpara.{key}`: {err}") from None

    def local_keys(self, s: FedParaConfig, model: nn.Module) -> list[str]:
        return [key for key in model.state_dict() if is_local_key(key)]

    def attach(self, s: FedParaConfig, rnd: ClientRound) -> None:
        if s.local_lr_scale != 1.0:  # pFedPara's personal factors learn at their own rate
            rnd.claim("make_optimizer", local_factor_sgd(s.local_lr_scale),
                      "fedpara.local-lr-scale")


def local_factor_sgd(scale: float):
    """A ``make_optimizer`` for the training loop: the loop's SGD, with the learning rate of
    the local (``fedpara_local_*``) factors multiplied by ``scale``."""

    def make(model: nn.Module, settings: Any):
        return sgd(model, settings, params=scaled_lr_groups(model, is_local_key, settings.lr,
                                                            scale))

    return make
