"""Notebook 07 (the modern recipe and retrieval, scored open-set) executed by papermill with tiny parameters."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import TINY_LANDMARKS as LANDMARKS
from conftest import nb07_tiny_parameters

ROOT = Path(__file__).resolve().parents[1]
NB07 = ROOT / "notebooks" / "07_beyond_the_study.ipynb"
METHOD_KEYS = (
    "recipe",
    "val_top1",
    "threshold",
    "closed_top1",
    "closed_top1_low",
    "closed_top1_high",
    "closed_top5",
    "closed_gap",
    "open_gap",
    "open_gap_low",
    "open_gap_high",
    "answered_share",
    "answered_precision",
)


def _parameters(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    tree = ast.parse(cells[0].source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


def test_notebook_07_is_committed_clean_and_its_defaults_match_the_default_params():
    nb = nbformat.read(NB07, as_version=4)
    assert nb.metadata.kernelspec.name == "landmarks" and nb.cells[0].source.startswith("# 07")
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    params = _parameters(NB07)
    defaults = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    assert {"holdout_landmarks", "beyond_epochs", "embedding_dim", "retrieval_k", "n_bootstrap"} <= set(defaults)
    assert {k: (params[k], defaults[k]) for k in params if k in defaults and params[k] != defaults[k]} == {}
    modern = yaml.safe_load((ROOT / "params" / "modern.yaml").read_text())
    assert (modern["optimizer"], modern["lr_schedule"], modern["augment"]) == ("adamw", "warmup_cosine", "photo")


@pytest.mark.slow
def test_notebook_07_trains_every_method_and_scores_them_open_set(tmp_path, run_notebook):
    reports = tmp_path / "reports"
    run_notebook("07", tmp_path / "07.ipynb", nb07_tiny_parameters(tmp_path))
    m = json.loads((reports / "metrics" / "07_beyond.json").read_text())
    assert len(m["held_out"]) == 1 and m["held_out"][0] in LANDMARKS
    assert (m["n_queries"], m["n_open"], m["n_closed"], m["n_known"]) == (12, 3, 9, 3)
    assert list(m["methods"]) == ["study", "modern", "retrieval"]
    for name, row in m["methods"].items():
        assert all(key in row for key in METHOD_KEYS), (name, [k for k in METHOD_KEYS if k not in row])
        assert row["closed_top1_low"] <= row["closed_top1"] <= row["closed_top1_high"]
        assert 0 <= row["closed_top1"] <= row["closed_top5"] <= 1 and 0 <= row["open_gap"] <= row["closed_gap"] + 1e-9
        assert ("open_gap_diff" in row) == (name != "study")
    assert "warmup" in m["methods"]["modern"]["recipe"] and "arcface" in m["methods"]["retrieval"]["recipe"]
    for name, curve in m["gap_curves"].items():
        gaps = [g for g in curve["gap"] if g is not None]
        assert all(a >= b - 1e-12 for a, b in zip(gaps, gaps[1:])), name  # GAP never rises with the threshold
    assert "NumPy" in m["index"] and m["projection"] in ("t-SNE", "PCA")
    assert sorted(Path(f).name for f in m["figures"]) == ["07_embeddings.png", "07_neighbours.png", "07_open_gap.png"]
    assert all((reports / f).is_file() for f in m["figures"])
    assert (tmp_path / "models" / "beyond" / "retrieval.index.npz").is_file()
    for name, sub in m["submissions"].items():
        rows = (reports / sub).read_text().splitlines()
        assert rows[0] == "id,landmarks" and len(rows) == 13, name
