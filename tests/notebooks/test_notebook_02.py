"""Notebook 02 executed by papermill on a small hand-made catalog whose outcome is known."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from conftest import NB02_IMAGES as N_IMAGES
from conftest import NB02_TEST as N_TEST
from conftest import write_nb02_catalog as make_catalog

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_fetch_images.ipynb"


def test_notebook_is_committed_clean_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "landmarks"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for line in (
        'train_csv = "data/raw/sample/train.csv"',
        'test_csv = "data/raw/sample/test.csv"',
        'train_dir = "data/processed/default/train"',
        'test_dir = "data/processed/default/test"',
        'sample_dir = "data/raw/sample"',
        "n_images = 5000",
        "image_size = 96",
        'resize = "stretch"',
        "workers = 32",
        "timeout = 20.0",
        "retries = 2",
        'reports_dir = "reports"',
    ):
        assert line in tagged[0].source


@pytest.mark.slow
def test_notebook_02_fetches_and_reports(tmp_path, run_notebook):
    make_catalog(tmp_path / "raw")
    reports = tmp_path / "reports"
    executed = tmp_path / "02.ipynb"
    run_notebook(
        "02",
        executed,
        {
            "train_csv": str(tmp_path / "raw" / "train.csv"),
            "test_csv": str(tmp_path / "raw" / "test.csv"),
            "train_dir": str(tmp_path / "processed" / "train"),
            "test_dir": str(tmp_path / "processed" / "test"),
            "sample_dir": str(tmp_path / "sample"),
            "n_images": N_IMAGES,
            "image_size": 32,
            "resize": "stretch",
            "workers": 8,
            "timeout": 5.0,
            "retries": 1,
            "reports_dir": str(reports),
        },
        cwd=tmp_path,
    )

    m = json.loads((reports / "metrics" / "02_fetch.json").read_text())
    assert m["catalog"] == str(tmp_path / "raw" / "train.csv")
    assert m["out_dir"] == str(tmp_path / "processed" / "train")
    assert (m["image_size"], m["resize"], m["n_rows"]) == (32, "stretch", N_IMAGES)
    assert (m["ok"], m["failed"], m["skipped"]) == (N_IMAGES - 2, 2, 0)
    assert m["failed_by_reason"] == {"file not found": 1, "not an image": 1}
    assert m["empty_folders_removed"] == 0 and m["seconds"] > 0 and m["images_per_second"] > 0
    t = m["test"]
    assert (t["n_rows"], t["ok"], t["failed"]) == (N_TEST, N_TEST, 0)
    assert t["out_dir"] == str(tmp_path / "processed" / "test")
    assert not (tmp_path / "sample").exists()

    train_dir = tmp_path / "processed" / "train"
    jpgs = sorted(train_dir.rglob("*.jpg"))
    assert len(jpgs) == N_IMAGES - 2 and {p.parent.name for p in jpgs} == {"100", "101", "102", "103", "104"}
    assert not (train_dir / "101" / "tr080.jpg").exists()  # rows past n_images are not fetched
    with Image.open(jpgs[0]) as img:
        assert img.size == (32, 32) and img.mode == "RGB"
    test_jpgs = sorted(p.name for p in (tmp_path / "processed" / "test").glob("*.jpg"))
    assert test_jpgs == [f"te{i}.jpg" for i in range(N_TEST)]

    assert m["figures"] == ["figures/02_resize_comparison.png", "figures/02_train_grid.png"]
    for rel in m["figures"]:
        assert (reports / rel).stat().st_size > 1000
    nb = nbformat.read(executed, as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(shown) == len(m["figures"])


@pytest.mark.slow
def test_notebook_02_with_no_image_reports_why(tmp_path, run_notebook):
    """Dead hosts and bad rows only: the notebook runs through, reports 0 fetched and the reasons."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    raw = tmp_path / "raw"
    raw.mkdir()
    train = ["id,url,landmark_id"]
    train += [f"r{i},http://127.0.0.1:{port}/{i}.jpg,{i % 3}" for i in range(8)]
    train += [f"n{i},http://landmarks-nb02.invalid/{i}.jpg,{i % 3}" for i in range(8)]
    train += ["nourl,,1", "badlabel,http://landmarks-nb02.invalid/x.jpg,one"]
    (raw / "train.csv").write_text("\n".join(train) + "\n")
    (raw / "test.csv").write_text("id,url\n" + "".join(f"t{i},http://127.0.0.1:{port}/t{i}.jpg\n" for i in range(3)))
    reports = tmp_path / "reports"
    executed = tmp_path / "02.ipynb"
    run_notebook(
        "02",
        executed,
        {
            "train_csv": str(raw / "train.csv"),
            "test_csv": str(raw / "test.csv"),
            "train_dir": str(tmp_path / "processed" / "train"),
            "test_dir": str(tmp_path / "processed" / "test"),
            "sample_dir": str(tmp_path / "sample"),
            "n_images": 100,
            "image_size": 32,
            "workers": 4,
            "timeout": 2.0,
            "retries": 1,
            "reports_dir": str(reports),
        },
        cwd=tmp_path,
    )
    m = json.loads((reports / "metrics" / "02_fetch.json").read_text())
    assert (m["n_rows"], m["ok"], m["images_ok"], m["failed"], m["bad_rows"]) == (18, 0, 0, 18, 2)
    assert set(m["failed_by_reason"]) <= {
        "host unreachable",
        "connection refused",
        "DNS lookup failed",
        "no url",
        "bad landmark_id",
    }
    assert m["failed_by_reason"]["no url"] == 1 and m["failed_by_reason"]["bad landmark_id"] == 1
    assert m["failures"].startswith("18 of 18 rows failed: ")
    assert (m["test"]["ok"], m["test"]["failed"]) == (0, 3)
    assert m["figures"] == []
    nb = nbformat.read(executed, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "no training image: 18 of 18 rows failed" in text
    assert "WARNING" not in text and "Traceback" not in text
