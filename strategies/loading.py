"""Build any Flower ``Strategy`` from an import path and keyword arguments."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from flwr.serverapp.strategy import Strategy


def import_object(path: str) -> Any:
    """``package.module:Name``, ``package.module.Name`` or ``/path/to/file.py:Name``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"strategy {path!r} is not an import path: write 'package.module:Class' "
                         "or '/path/to/file.py:Class'")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError, SyntaxError) as err:
        raise ValueError(f"strategy {path!r}: cannot import {module_name!r} ({err}); check the "
                         "spelling, or that its directory is on PYTHONPATH") from None
    if not hasattr(module, attr):
        raise ValueError(f"strategy {path!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def strategy_class(path: str) -> type[Strategy]:
    """The class at ``path``, checked to be a Flower ``Strategy``."""
    cls = import_object(path)
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise ValueError(f"strategy {path!r} is {cls!r}, not a subclass of "
                         "flwr.serverapp.strategy.Strategy")
    return cls


def load_strategy(path: str, kwargs: dict[str, Any]) -> Strategy:
    """Instantiate the strategy class at ``path`` with ``kwargs`` (its own argument names)."""
    cls = strategy_class(path)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:
        raise ValueError(f"strategy-kwargs do not fit {cls.__name__}: {err}") from None
    return cls(**kwargs)


def accepted_arguments(path: str) -> set[str]:
    """The keyword arguments the strategy's constructor takes by name.

    A subclass that forwards ``**kwargs`` (the usual way to extend FedAvg) also takes its
    parents' arguments, so the MRO is followed until a constructor without ``**kwargs``.
    """
    names: set[str] = set()
    for klass in strategy_class(path).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]  # drop self
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _import_file(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    name = f"fedlite_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a failed import leaves no half-initialized module behind
        raise
    return module
