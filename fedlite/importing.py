"""Objects named by import path: ``package.module:Name``, ``package.module.Name`` or
``/path/to/file.py:Name`` (strategies and user methods are given this way)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any


def import_object(path: str, what: str = "object") -> Any:
    """The object at ``path``; ``ValueError`` naming ``what`` and the fix when it is not there."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{what} {path!r} is not an import path: write 'package.module:Class' "
                         "or '/path/to/file.py:Class'")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError, SyntaxError) as err:
        raise ValueError(f"{what} {path!r}: cannot import {module_name!r} ({err}); check the "
                         "spelling, or that its directory is on PYTHONPATH") from None
    if not hasattr(module, attr):
        raise ValueError(f"{what} {path!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _import_file(path: Path):
    path = path.expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    name = f"fedlite_user_{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]  # one module object per file: its classes stay identical
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a failed import leaves no half-initialized module behind
        raise
    return module
