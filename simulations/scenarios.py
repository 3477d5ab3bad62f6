"""Scenario files: a description, a ``[config]`` table of run-config keys, a ``[federation]``
table of simulation resources and an optional ``[digits]`` table of config keys used when the
run's data is scikit-learn's digits. ``key=value`` overrides go to whichever table knows the key
and win over ``[digits]``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedlite.config import ConfigError, RunConfig
from fedlite.data.sources import resolve_name
from simulations.engine import Resources

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
FEDERATION_KEYS = {"client-resources-num-cpus": "num_cpus", "client-resources-num-gpus": "num_gpus",
                   "ray-address": "ray_address"}
TEXT_KEYS = {"ray-address"}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    config: RunConfig
    resources: Resources
    notes: tuple[str, ...] = ()


def scenario_names() -> list[str]:
    return sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))


def scenario_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        return path
    candidate = SCENARIO_DIR / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    raise ConfigError(f"no scenario {name_or_path!r}: choose one of {', '.join(scenario_names())} "
                      f"(`fedlite list`), or give the path of a .toml file")


def load_scenario(name_or_path: str, overrides: list[str] = ()) -> Scenario:
    """Read a scenario and apply ``key=value`` overrides; every key and value is validated."""
    path = scenario_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    unknown = set(data) - {"description", "config", "federation", "digits"}
    if unknown:
        raise ConfigError(f"{path}: unknown tables {sorted(unknown)}; a scenario has "
                          "`description`, `[config]`, `[federation]` and optionally `[digits]`")
    config, federation = dict(data.get("config", {})), dict(data.get("federation", {}))
    for key in federation:
        if key not in FEDERATION_KEYS:
            raise ConfigError(f"{path}: unknown [federation] key `{key}`; known: "
                              f"{', '.join(FEDERATION_KEYS)}")
    overridden = set()
    for item in overrides:
        key, value = parse_override(item)
        (federation if key in FEDERATION_KEYS else config)[key] = value
        overridden.add(key)
    notes = _apply_digits_table(config, dict(data.get("digits", {})), overridden)
    for key, value in federation.items():
        if key in TEXT_KEYS:
            federation[key] = str(value)
            continue
        try:
            federation[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"[federation] `{key}`: expected a number, got {value!r}") from None
    try:
        resources = Resources(**{FEDERATION_KEYS[k]: v for k, v in federation.items()})
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return Scenario(path.stem, str(data.get("description", "")), RunConfig.from_mapping(config),
                    resources, notes)


def _apply_digits_table(config: dict, digits: dict, overridden: set[str]) -> tuple[str, ...]:
    """Digits has 1,797 images, 30x fewer than Fashion-MNIST: a scenario sized for the latter
    gives each client only a few batches a round, so it may name more local work for digits."""
    if not digits:
        return ()
    try:
        dataset = resolve_name(str(config.get("dataset", "auto")), config.get("data-dir") or None)
    except ValueError as err:
        raise ConfigError(f"run config `dataset`: {err}") from None
    if dataset != "digits":
        return ()
    applied = {k: v for k, v in digits.items() if k not in overridden}
    config.update(applied)
    if not applied:
        return ()
    settings = ", ".join(f"{k}={v}" for k, v in applied.items())
    return (f"data is digits, so the scenario's [digits] settings apply: {settings}",)


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with a TOML value (``lr=0.1``, ``model=cnn``, ``central-eval=false``)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not key=value (e.g. num-rounds=5)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare words such as model=cnn
    return key.strip(), value
