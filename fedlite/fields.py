"""Run-config fields that carry their own help text, and the flat-key view of dataclasses.

Every setting is declared once, as a dataclass field made with ``setting(default, help)``
(the way PEFT's configs keep ``metadata={"help": ...}``): ``fedlite keys``, the docs' key tables
and the error messages all read the key names and help from there. Field ``foo_bar`` of a
section ``sec`` is run-config key ``sec.foo-bar`` (Flower's flattening of nested TOML tables);
a section named ``""`` puts its keys at the top level.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, get_type_hints

from fedlite.errors import ConfigError


def setting(default: Any, help: str) -> Any:  # noqa: A002 - the name dataclass users expect
    """A dataclass field with a default and the one-line help ``fedlite keys`` prints."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Key:
    """One flat run-config key of a settings dataclass."""

    name: str  # e.g. "skip.error-bound"
    attribute: str  # the dataclass field, e.g. "error_bound"
    kind: type
    default: Any
    help: str


def key_name(prefix: str, attribute: str) -> str:
    name = attribute.replace("_", "-")
    return f"{prefix}.{name}" if prefix else name


def keys_of(cls: type, prefix: str = "") -> Iterator[Key]:
    """The keys of a settings dataclass, in declaration order (fields without help are not
    run-config keys: they hold derived or structural values)."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        yield Key(key_name(prefix, f.name), f.name, hints[f.name], f.default, f.metadata["help"])


def coerce(key: str, value: Any, kind: Any) -> Any:
    """Accept what TOML, Flower and the command line give (strings for numbers, ints for floats)."""
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return lowered in ("true", "1")
            if isinstance(value, (int, float)) and value not in (0, 1):
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if isinstance(value, (dict, list)):  # a TOML table given for a JSON-valued key
            return json.dumps(value)
        return str(value)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"run config `{key}`: expected {name}, got {value!r}") from None


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of module names (``"fc2, classifier.4"``) as a tuple."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
