"""State-dict key contract of FedPara layers: which keys are factors, which stay local."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FACTOR_PREFIX = "fedpara_"
"""Every factor parameter's name starts with this (``features.0.fedpara_x1``)."""

LOCAL_PREFIX = "fedpara_local_"
"""pFedPara's personal factors (W2) start with this; they never leave the client."""


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def is_factor_key(key: str) -> bool:
    """Return True if the last dotted component of ``key`` names a FedPara factor."""
    return _leaf(key).startswith(FACTOR_PREFIX)


def is_local_key(key: str) -> bool:
    """Return True if the last dotted component of ``key`` names a personal (local) factor."""
    return _leaf(key).startswith(LOCAL_PREFIX)


def _under(key: str, module: str) -> bool:
    return key == module or key.startswith(module + ".")


def module_names(keys: Iterable[str]) -> list[str]:
    """List every module path that owns at least one of ``keys`` (sorted, no duplicates)."""
    names = set()
    for key in keys:
        parts = key.split(".")[:-1]
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(names)


def split_state(state_dict: Mapping[str, Any],
                local_modules: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a state dict into what goes on the wire and what stays on the client.

    Parameters
    ----------
    state_dict : Mapping[str, Any]
        Tensors or numpy arrays keyed by state-dict name; values are not copied.
    local_modules : Iterable[str], default ()
        Module paths (``"fc2"``, ``"classifier.6"``) whose keys all stay local, as in
        FedPer. pFedPara's ``fedpara_local_*`` keys are always local.

    Returns
    -------
    wire, local : dict, dict
        Two dicts that partition ``state_dict``, each in its original key order.

    Raises
    ------
    ValueError
        If a name in ``local_modules`` owns no key.
    """
    local_modules = tuple(local_modules)
    unknown = [m for m in local_modules if not any(_under(k, m) for k in state_dict)]
    if unknown:
        raise ValueError(f"local_modules {unknown} match no key; modules in the state dict: "
                         f"{', '.join(module_names(state_dict))}")
    wire, local = {}, {}
    for key, value in state_dict.items():
        keep = is_local_key(key) or any(_under(key, m) for m in local_modules)
        (local if keep else wire)[key] = value
    return wire, local
