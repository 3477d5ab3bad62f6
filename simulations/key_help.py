"""``fedlite keys``: every key a scenario takes, with its default and help, as TOML.

The run-config keys and their help come from their settings dataclasses (``fedlite.fields``);
the ``[federation]`` keys are the simulation's resources (``simulations.scenarios``).
"""

from __future__ import annotations

import json

FEDERATION_HELP = {
    "client-resources-num-cpus": "CPUs per client actor: Ray trains cores / this clients at a "
                                 "time",
    "client-resources-num-gpus": "GPUs per client actor (0.25 puts four clients on one GPU)",
    "ray-address": "an existing Ray cluster (host:port, as `ray start --head` prints); '' = "
                   "RAY_ADDRESS if set, else a private Ray on this machine",
}
FEDERATION_DEFAULTS = {"client-resources-num-cpus": 1.0, "client-resources-num-gpus": 0.0,
                       "ray-address": ""}


def toml_lines(flat: dict[str, object], helps: dict[str, str]) -> list[str]:
    """``key = value  # help`` lines that paste into a scenario's tables."""

    def key(name: str) -> str:
        return json.dumps(name) if "." in name else name

    def value(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else json.dumps(v)

    pairs = [f"{key(k)} = {value(v)}" for k, v in flat.items()]
    width = max(map(len, pairs), default=0) + 2
    return [f"{pair:<{width}}# {helps[k]}" for pair, k in zip(pairs, flat, strict=True)]


def keys_text() -> str:
    from fedlite.config import RunConfig, key_help

    return "\n".join(["[config]", *toml_lines(RunConfig().to_flat(), key_help()), "",
                      "[federation]", *toml_lines(FEDERATION_DEFAULTS, FEDERATION_HELP)])
