"""Packaging: the metadata is standard (SPDX license) and building it prints no setuptools warning.

The build runs setuptools' PEP 517 hooks in a fresh interpreter on a copy of the project, as pip
does for ``pip install -e .``, without network (the installed setuptools) or touching the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fedlite", "clients", "strategies", "simulations")

BUILD = """
import sys
from setuptools import build_meta
hook = getattr(build_meta, sys.argv[1])
print(hook(sys.argv[2]))
"""


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression():
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert "license-files" not in project or project["license-files"]


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def _required_setuptools() -> str:
    [requirement] = [r for r in _pyproject()["build-system"]["requires"]
                     if r.startswith("setuptools")]
    return requirement.removeprefix("setuptools>=")


@pytest.mark.parametrize("hook", ["prepare_metadata_for_build_editable", "build_editable",
                                  "build_wheel"])
def test_building_prints_no_setuptools_warning(project_copy, tmp_path, hook):
    setuptools = pytest.importorskip("setuptools")
    if tuple(map(int, setuptools.__version__.split(".")[:1])) < (int(_required_setuptools()),):
        pytest.skip(f"setuptools {setuptools.__version__} is older than the build requires")
    # Execute
    done = subprocess.run([sys.executable, "-c", BUILD, hook, str(tmp_path)], cwd=project_copy,
                          capture_output=True, text=True, timeout=120)
    # Assert: built, and nothing a user would read as a problem of this project
    assert done.returncode == 0, done.stderr
    built = tmp_path / done.stdout.strip().splitlines()[-1]
    assert built.exists()
    for word in ("Warning", "deprecated", "Deprecation"):
        assert word not in done.stderr, done.stderr
    if hook == "build_wheel":  # the wheel holds the four packages and nothing else of the tree
        import zipfile

        tops = {name.split("/")[0] for name in zipfile.ZipFile(built).namelist()}
        assert tops == {*PACKAGES, "fedlite-0.1.0.dist-info"}


def test_the_apps_run_config_is_fedlites_every_key_at_its_default():
    """Flower refuses a run-config override whose key the app's pyproject does not declare, so a
    setting missing there fails only once a run starts on the simulation engine."""
    from fedlite.config import RunConfig

    assert _pyproject()["tool"]["flwr"]["app"]["config"] == RunConfig().to_flat()
