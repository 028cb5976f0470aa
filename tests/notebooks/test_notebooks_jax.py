"""Notebooks 03 and 07 under Keras on JAX (the GPU box's backend), tiny parameters, executed by papermill.

The kernel inherits ``KERAS_BACKEND=jax``. Each notebook must run through, train on JAX, and print no
warning (a warning in a notebook's output ends up in the HTML report; "Proceeding with
`jit_compile=False`" was one: every augmented training then ran op by op).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from conftest import nb07_tiny_parameters, write_tiny_folder

WARNING = re.compile(r"Warning\b|WARNING|warnings\.warn|jit_compile")


def warnings_in(notebook: Path) -> list[str]:
    """Every output line of an executed notebook that carries a warning."""
    found = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            text += "".join(output.get("data", {}).get("text/plain", "")) if "data" in output else ""
            found += [line for line in text.splitlines() if WARNING.search(line)]
    return found


@pytest.fixture
def jax_kernel():
    """Kernels started in the block run Keras on JAX (on the CPU)."""
    saved = {k: os.environ.get(k) for k in ("KERAS_BACKEND", "JAX_PLATFORMS")}
    os.environ.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


TINY = {"input_size": 32, "filters": [4, 4, 4, 4], "blocks": [1, 1, 1, 1], "dense_units": 8, "min_images": 2}


@pytest.mark.slow
def test_notebook_03_trains_every_augmentation_on_jax_without_a_warning(tmp_path, run_notebook, jax_kernel):
    reports = tmp_path / "reports"
    out = run_notebook(
        "03",
        tmp_path / "03.ipynb",
        {
            **TINY,
            "train_dir": str(write_tiny_folder(tmp_path / "train")),
            "models_dir": str(tmp_path / "models"),
            "reports_dir": str(reports),
            "val_fraction": 0.34,
            "seed": 3,
            "epochs": 2,
            "batch_size": 4,
            "variant_epochs": 2,
            "variants": [
                {"name": "baseline"},
                {"name": "augmentation", "augment": True},
                {"name": "added", "augment": "add"},
                {"name": "modern", "recipe": "modern", "warmup_epochs": 1},
            ],
        },
    )
    assert warnings_in(out) == []
    m = json.loads((reports / "metrics" / "03_res_incep.json").read_text())
    assert m["ran_on"].startswith("jax"), m["ran_on"]
    modes = {v["name"]: v["augment_mode"] for v in m["variants"]}
    assert modes == {"baseline": None, "augmentation": "replace", "added": "add", "modern": "photo"}
    for variant in m["variants"]:
        assert variant["epochs_run"] == 2 and variant["health"] in ("ok", "collapsed"), variant["name"]


@pytest.mark.slow
def test_notebook_07_trains_every_method_on_jax_without_a_warning(tmp_path, run_notebook, jax_kernel):
    reports = tmp_path / "reports"
    out = run_notebook("07", tmp_path / "07.ipynb", nb07_tiny_parameters(tmp_path))
    assert warnings_in(out) == []
    m = json.loads((reports / "metrics" / "07_beyond.json").read_text())
    assert list(m["methods"]) == ["study", "modern", "retrieval"]
    assert "photo augmentation" in m["methods"]["modern"]["recipe"] and "arcface" in m["methods"]["retrieval"]["recipe"]
