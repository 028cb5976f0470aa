"""benchmarks/gpu.py: its --smoke run writes the table; its wheel recipe pins this environment's versions."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu.py"


@pytest.mark.slow
def test_smoke_run_writes_the_table(tmp_path):
    report = tmp_path / "gpu.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--report", str(report), "--out-dir", str(tmp_path / "images")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    assert "**Smoke run**" in text and "Ran on: jax, cpu, float32; jax, cpu, mixed_bfloat16" in text
    rows = [line for line in text.splitlines() if line.startswith("| res_incep")]
    assert [row.split("|")[3].strip() for row in rows] == ["float32", "mixed_bfloat16"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        rates = [float(c.strip("*")) for c in (cells[4], cells[5], cells[6], cells[9])]
        assert all(rate > 0 for rate in rates), row  # training (decoding, cached, on device) and prediction
        assert cells[10] == "n/a"  # JAX on the CPU reports no device memory
        assert re.fullmatch(r"\d+%", cells[8]) and re.fullmatch(r"\d+\.\d%", cells[11])
    assert "## Verdict" in text and "cached feed at" in text
    assert ">= 1,500" not in text and ">= 2,500" not in text  # the GPU targets are not judged on a smoke run


def test_wheel_recipe_pins_this_environment():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--wheel-recipe"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12")
    assert f"keras=={importlib.metadata.version('keras')}" in line.split()
    assert f"pillow=={importlib.metadata.version('pillow')}" in line.split() and "-d .whl" in line
    assert not any(name in line for name in ("tensorflow", "jax=="))  # the device has CUDA JAX, not TensorFlow
