"""Package boundaries: the core never imports Flower or Ray; pyproject mirrors RunConfig."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from fedlite.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]

WALK_AND_REPORT = """
import importlib, json, pkgutil, sys
import fedlite
names = ["fedlite"]
for info in pkgutil.walk_packages(fedlite.__path__, "fedlite."):
    importlib.import_module(info.name)
    names.append(info.name)
print(json.dumps({"imported": names,
                  "framework": sorted(m for m in sys.modules
                                      if m.split(".")[0] in ("flwr", "ray"))}))
"""


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_fedlite_core_imports_neither_flwr_nor_ray():
    # Execute: a fresh interpreter, so modules imported by other tests do not count
    done = subprocess.run([sys.executable, "-c", WALK_AND_REPORT], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    # Assert
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"fedlite.config", "fedlite.data.partition", "fedlite.data.sources",
            "fedlite.models.resnet", "fedlite.train.loop", "fedlite.federation",
            "fedlite.records", "fedlite.plot"} <= set(report["imported"])
    assert report["framework"] == []  # flwr_datasets is a separate top-level package


def test_pyproject_config_equals_runconfig_defaults():
    # Prepare
    declared = _pyproject()["tool"]["flwr"]["app"]["config"]
    expected = RunConfig().to_flat()
    # Assert: same keys in the same order, same values and types
    assert list(declared) == list(expected)
    for key, value in expected.items():
        assert declared[key] == value, key
        assert type(declared[key]) is type(value), key


def test_pyproject_declares_console_script_and_components():
    project = _pyproject()
    assert project["project"]["scripts"]["fedlite"] == "simulations.cli:main"
    components = project["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "strategies.server_app:app",
                          "clientapp": "clients.client_app:app"}


def _module_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Every import (late ones included) between the project's own modules."""
    import ast

    files = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                found = resolve(target)
                if found and found != module:
                    graph[module].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_the_packages():
    graph = _module_graph(("fedlite", "clients", "strategies", "simulations"))
    assert len(graph) > 50  # the scan found the modules
    assert _cycles(graph) == []


def test_the_cycle_scan_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_reading_the_run_config_imports_no_torch():
    # `fedlite keys`, `fedlite --help` and the scenarios read every settings class
    code = ("import sys; from fedlite.config import RunConfig; RunConfig().to_flat(); "
            "import simulations.cli; print(any(m.split('.')[0] == 'torch' for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
