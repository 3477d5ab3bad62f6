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
