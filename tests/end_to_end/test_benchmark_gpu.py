"""benchmarks/gpu.py: its --smoke run writes the table (augmented and retrieval rows compiled by XLA on JAX); a
configuration whose train step is not compiled is refused; its wheel recipe pins this environment's versions."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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
    header = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| model")).split("|")]
    assert header[1:7] == ["model", "px", "precision", "augmentation", "XLA", "batch"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| res_")]
    rows += [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| retr")]
    # configuration, precision, augmentation: the plain Res-Incep at both precisions, the new ones at bfloat16
    assert [(cells[0].split(" (")[0], cells[2], cells[3]) for cells in rows] == [
        ("res_incep", "float32", "none"),
        ("res_incep", "mixed_bfloat16", "none"),
        ("res_incep_photo", "mixed_bfloat16", "photo"),
        ("retrieval: res_incep + GeM + arcface", "mixed_bfloat16", "photo"),
    ]
    for cells in rows:
        assert cells[4] == "yes", cells  # JAX: every train step compiled by XLA, the augmented ones included
        rates = [float(c.strip("*")) for c in (cells[6], cells[7], cells[8])]
        assert all(rate > 0 for rate in rates), cells  # training: decoding, cached, on device
        assert re.fullmatch(r"\d+%", cells[10]), cells  # input wait
        assert cells[12] == "n/a"  # JAX on the CPU reports no device memory
    for cells in rows[:2]:  # the plain ones also predict and validate
        assert float(cells[11]) > 0 and re.fullmatch(r"\d+\.\d%", cells[13]), cells
    for cells in rows[2:]:  # the augmented ones only train
        assert cells[11] == "-" and cells[13] == "n/a", cells
    assert "## Verdict" in text and "cached feed at" in text
    assert (
        "res_incep_photo mixed_bfloat16 (photo augmentation in the input pipeline): train step compiled by XLA" in text
    )
    assert "retrieval mixed_bfloat16 (photo augmentation in the input pipeline): train step compiled by XLA" in text
    assert "REFUSED" not in text
    assert ">= 1,500" not in text and ">= 2,500" not in text  # the GPU targets are not judged on a smoke run


def _load_script():
    spec = importlib.util.spec_from_file_location("benchmark_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(model, precision, backend="jax", jit_compile=True, refused=None):
    """What a worker returns (``measure``), without running one."""
    augmented = model in ("res_incep_photo", "retrieval")
    result = {
        "model": model,
        "backbone": "res_incep",
        "loss": "arcface" if model == "retrieval" else "crossentropy",
        "augmentation": "photo" if augmented else "none",
        "precision": precision,
        "params": 10_000,
        "input_size": 32,
        "batch_size": 8,
        "steps": 3,
        "runtime": {},
        "ran_on": f"{backend}, cpu, {precision}",
        "xla_expected": backend == "jax",
        "jit_compile": jit_compile,
    }
    if refused:
        return {**result, "refused": refused}
    return {
        **result,
        "epochs": [],
        "compile_seconds": 1.0,
        "train_decoding_img_s": 100.0,
        "train_cached_img_s": 120.0,
        "input_wait_share": 0.05,
        "on_device_img_s": 125.0,
        "predict_img_s": None if augmented else 300.0,
        "peak_memory_bytes": None,
        "val_top1": None if augmented else 0.25,
        "n_val": None if augmented else 16,
        "decode_workers": 2,
    }


def test_a_config_whose_train_step_is_not_compiled_is_refused(tmp_path, monkeypatch):
    gpu = _load_script()
    refusal = "model 'res_incep_retrieval' cannot be compiled by XLA on JAX (layers RandomRotation)"
    results = {
        "res_incep": _result("res_incep", "float32"),
        "res_incep_photo": _result("res_incep_photo", "mixed_bfloat16"),
        "retrieval": _result("retrieval", "mixed_bfloat16", jit_compile=False, refused=refusal),
    }
    monkeypatch.setattr(gpu, "_in_subprocess", lambda env=None, **options: results[options["model"]])
    report = tmp_path / "gpu.md"
    argv = ["--smoke", "--precisions", "float32", "--report", str(report), "--out-dir", str(tmp_path / "images")]
    assert gpu.main(argv + ["--models", "res_incep", "res_incep_photo", "retrieval"]) == 1  # the run fails...
    text = report.read_text()  # ...after writing its report
    row = next(line for line in text.splitlines() if line.startswith("| retrieval"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:5] == ["photo", "**NO**"] and cells[6] == "refused"
    assert f"retrieval mixed_bfloat16: REFUSED, the train step would run op by op ({refusal})" in text
    photo = next(line for line in text.splitlines() if line.startswith("| res_incep_photo"))
    assert [c.strip() for c in photo.strip("|").split("|")][3:5] == ["photo", "yes"]

    # TensorFlow on a CPU: Keras' "auto" leaves XLA off there; recorded as "no", not refused
    results["retrieval"] = _result("retrieval", "mixed_bfloat16", backend="tensorflow", jit_compile=False)
    assert gpu.main(argv + ["--models", "retrieval"]) == 0
    text = report.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| retrieval"))
    assert [c.strip() for c in row.strip("|").split("|")][3:5] == ["photo", "no"] and "REFUSED" not in text
    assert "train step not compiled (Keras' jit_compile='auto' on a TensorFlow CPU" in text


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
