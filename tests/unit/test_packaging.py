"""Packaging: pyproject.toml and environment.yml list the same runtime packages; the `landmarks` command works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
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


def test_ruff_holds_one_line_length_and_make_test_lints_first():
    ruff = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["line-length"] == 120
    assert {"E", "F", "I", "UP", "B"} <= set(ruff["lint"]["select"])
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(Requirement(r).name == "ruff" for r in dev)
    make = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = [line for line in make.stdout.splitlines() if "ruff" in line or "pytest" in line]
    assert [line.split()[0].rsplit("/", 1)[-1] + " " + line.split()[1] for line in lines] == [
        "ruff check",
        "ruff format",
        "python -m",
    ], make.stdout


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")
def test_make_clean_removes_outputs_and_leaves_every_tracked_file(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    shutil.copy(REPO / "Makefile", clone / "Makefile")  # this checkout's Makefile, committed or not
    subprocess.run(["git", "-C", str(clone), "update-index", "--assume-unchanged", "Makefile"], check=True)
    outputs = [
        "data/raw/sample/train.csv",
        "data/processed/default/train/7/a.jpg",
        "models/default/res_incep.keras",
        "reports/metrics/01_explore.json",
        "reports/figures/01_top_k.png",
        "reports/html/report.html",
        "reports/notebooks/01_explore_frequencies.ipynb",
    ]
    for rel in outputs:
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text("generated")
    done = subprocess.run(["make", "clean"], cwd=clone, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [rel for rel in outputs if (clone / rel).exists()] == []
    status = subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain", "--ignored"], capture_output=True, text=True, check=True
    ).stdout
    assert status == "", status  # every tracked file in place, nothing generated left
