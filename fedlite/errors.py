"""The error every bad run-config value raises, and the one check that raises it.

A leaf module: settings dataclasses all over the package validate with it, so it imports
nothing of fedlite's.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A run-config key has a bad value or is unknown; the message names the key and the fix."""


def require(ok: bool, key: str, message: str) -> None:
    """Raise ``ConfigError`` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"run config `{key}`: {message}")


class RunFailed(RuntimeError):
    """A run ended without training anything (every round after the first skipped); its
    records are kept and the message names the first cause and its fix."""
