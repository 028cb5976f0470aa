"""Packaging: pyproject.toml and environment.yml list the same runtime packages; the `landmarks` command works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
# conda-only entries that are the environment itself, not a runtime package of the project
CONDA_ENVIRONMENT = {"python", "pip"}


def normalise(name: str) -> str:
    """PEP 503 name; ``tensorflow-cpu`` is the CPU build of ``tensorflow``: one package here."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return "tensorflow" if name in ("tensorflow-cpu", "tensorflow-gpu") else name


def pyproject_runtime() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {normalise(Requirement(r).name) for r in project["dependencies"]}


def environment_runtime() -> set[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    names = set()
    for entry in env["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in items:
            item = item.strip()
            if item.startswith("-"):  # pip options such as `-e .[dev]`: the project itself
                continue
            name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", item).group(0)
            if name not in CONDA_ENVIRONMENT:
                names.add(normalise(name))
    return names


def test_normalise_names():
    assert normalise("PyYAML") == "pyyaml" and normalise("jupyter_client") == normalise("Jupyter.Client")
    assert normalise("tensorflow-cpu") == normalise("tensorflow") == "tensorflow"


def test_pyproject_and_environment_list_the_same_runtime_packages():
    pyproject, environment = pyproject_runtime(), environment_runtime()
    assert {"tensorflow", "keras", "papermill", "nbconvert", "pyyaml"} <= pyproject
    assert pyproject - environment == set(), "in pyproject.toml only"
    assert environment - pyproject == set(), "in environment.yml only"


def test_environment_installs_the_project_itself():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(e["pip"] for e in env["dependencies"] if isinstance(e, dict))
    assert any(re.match(r"-e\s+\.(\[|$)", item) for item in pip)


def test_console_script_is_declared_and_installed():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"landmarks": "landmarklib.cli:main"}
    script = Path(sys.executable).parent / "landmarks"
    assert script.is_file(), f"{script} missing: run `make install` (pip install -e .)"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("sample", "fetch", "predict", "report"):
        assert re.search(rf"^\s+{command}\s", out.stdout, re.M), command


def test_the_command_line_does_not_import_tensorflow():
    code = ("import sys, landmarklib.cli as cli; cli.build_parser(); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
