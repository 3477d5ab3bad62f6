"""THE method table: every method fedlite attaches to a run, in the order it attaches.

One line per method: its section (the run-config key prefix), its settings class and its
``Method`` class, both by import path so that reading a run config (``fedlite keys``, the CLI)
imports only the small settings modules, never torch. The client's round, the server's
preflight and round end, and the progress line iterate over this table; nothing outside a
method's own package reads its settings.

Order matters where parts interact: FSP's stage 1 drops the task loss before skipping looks
for one; continual learning narrows the model before the proximal term picks its parameters.
Methods of a user's own (run-config key ``methods``) are appended after these.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fedlite.importing import import_object
from fedlite.methods.base import Method

BUILTIN = (
    # section      settings class                                   Method class
    ("fedpara", "fedlite.hadamard.settings:FedParaConfig", "fedlite.hadamard.method:FedPara"),
    ("", "fedlite.personal.settings:PersonalConfig", "fedlite.personal.method:Personalization"),
    ("fsp", "fedlite.train.fsp.settings:FspConfig", "fedlite.train.fsp.method:Fsp"),
    ("continual", "fedlite.continual.settings:ContinualConfig",
     "fedlite.continual.method:Continual"),
    ("skip", "fedlite.train.skip.settings:SkipConfig", "fedlite.train.skip.method:Skip"),
    ("proximal", None, "fedlite.train.proximal:FedProx"),
    ("attack", "fedlite.attack.settings:AttackConfig", "fedlite.attack.method:Attack"),
)


@dataclass
class Entry:
    """A table line; the classes are imported on first use."""

    name: str
    settings_path: str | None
    method_path: str | None = None
    _settings: type | None = None
    _method: Method | None = field(default=None, repr=False)

    @property
    def settings(self) -> type | None:
        if self._settings is None and self.settings_path:
            self._settings = import_object(self.settings_path, "method settings")
        return self._settings

    @property
    def method(self) -> Method:
        if self._method is None:
            self._method = import_object(self.method_path, "method")()
        return self._method


ENTRIES: list[Entry] = [Entry(name, settings, method) for name, settings, method in BUILTIN]
_loaded: set[str] = set()  # the import paths of user methods already in the table


def register(method: type[Method] | Method) -> Entry:
    """Append a method to the table (a user's own, or a test's); its ``name`` must be new."""
    instance = method() if isinstance(method, type) else method
    if any(entry.name == instance.name for entry in ENTRIES):
        raise ValueError(f"a method with section {instance.name!r} is already in the table")
    entry = Entry(instance.name, None, None, instance.settings, instance)
    ENTRIES.append(entry)
    return entry


def unregister(name: str) -> None:
    ENTRIES[:] = [entry for entry in ENTRIES if entry.name != name]


def load(paths: str) -> None:
    """Register the user methods named in the run-config key ``methods`` (comma-separated
    import paths of ``Method`` subclasses); each path is loaded once per process."""
    for path in (part.strip() for part in paths.split(",")):
        if not path or path in _loaded:
            continue
        cls = import_object(path, "method")
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise ValueError(f"method {path!r} is {cls!r}, not a subclass of "
                             "fedlite.methods.Method")
        if not any(entry.name == cls.name for entry in ENTRIES):
            register(cls)
        _loaded.add(path)


def is_builtin(section: str) -> bool:
    """Whether ``section`` belongs to one of fedlite's own methods (its keys are in
    pyproject's defaults), not to a method a run loaded with ``methods``."""
    return any(name == section for name, _, _ in BUILTIN)


def sections() -> Iterator[tuple[str, type]]:
    """(section name, settings class) of every method that has settings, in table order."""
    for entry in ENTRIES:
        if entry.settings is not None:
            yield entry.name, entry.settings


def entry(name: str) -> Entry:
    for candidate in ENTRIES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no method {name!r} in the table")


def methods() -> Iterator[Method]:
    for candidate in ENTRIES:
        yield candidate.method


def active(cfg: Any) -> list[tuple[Method, Any]]:
    """(method, its settings) for every method that changes something in ``cfg``'s run."""
    chosen = []
    for candidate in ENTRIES:
        settings = cfg.section(candidate.name) if candidate.settings is not None else None
        method = candidate.method
        if method.active(settings):
            chosen.append((method, settings))
    return chosen


def server_steps(cfg: Any) -> list[tuple[Method, Any]]:
    """The active methods that change the global model after aggregation."""
    return [(method, settings) for method, settings in active(cfg)
            if method.has_server_step(settings)]


def refusals(cfg: Any) -> list[str]:
    """Why pairs of the run's active methods cannot run together (empty: they can)."""
    pairs = active(cfg)
    reasons = []
    for i, (first, first_settings) in enumerate(pairs):
        for second, second_settings in pairs[i + 1:]:
            reason = (first.refuses(first_settings, second.name, second_settings)
                      or second.refuses(second_settings, first.name, first_settings))
            if reason:
                reasons.append(reason)
    return reasons
