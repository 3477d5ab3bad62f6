"""The run config's ``fedpara`` section (imports no torch: ``fedlite keys`` reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from fedlite.errors import require
from fedlite.fields import setting

MODES = ("none", "fedpara", "pfedpara", "lowrank")
CONV_FORMS = ("prop1", "prop3")  # fedlite.hadamard.factors.FORMS, kept torch-free here


@dataclass(frozen=True)
class FedParaConfig:
    """Run-config keys ``fedpara.*``; ``mode = "none"`` leaves the model dense."""

    mode: str = setting("none", "none, fedpara, pfedpara or lowrank")
    gamma: float = setting(0.1, "rank rule's gamma in [0, 1]: 0 = minimal rank, 1 = dense-sized")
    conv_form: str = setting("prop3", "convolution factors: prop3 (Tucker-2 cores) or prop1 "
                                      "(reshaped)")
    tanh: bool = setting(False, "W = tanh(W1) * tanh(W2) instead of W1 * W2")
    exclude: str = setting("", "module names kept dense; '' = a conv net's classifier head")
    include: str = setting("", "only these module names are factorized; '' = every "
                               "Linear/Conv2d")
    # pFedPara: W2's gradient is W1 * dL/dW, and W1's entries are small (~0.05 in the MLP), so
    # the personal factors barely move at the shared learning rate; this scales theirs.
    local_lr_scale: float = setting(1.0, "pFedPara: the local factors learn at lr times this")

    def __post_init__(self) -> None:
        require(self.mode in MODES, "fedpara.mode", f"choose one of {', '.join(MODES)}")
        require(0.0 <= self.gamma <= 1.0, "fedpara.gamma",
                f"must be in [0, 1] (the paper uses 0.1 for VGG16 and 0.5 for pFedPara), "
                f"got {self.gamma}")
        require(self.conv_form in CONV_FORMS, "fedpara.conv-form",
                f"choose one of {', '.join(CONV_FORMS)}")
        require(self.local_lr_scale > 0, "fedpara.local-lr-scale",
                "must be > 0 (1 = the shared learning rate for pFedPara's local factors), got "
                f"{self.local_lr_scale}")
        require(not (self.tanh and self.mode == "lowrank"), "fedpara.tanh",
                "not available with fedpara.mode=lowrank")
