"""Few or no images: notebooks 03-06 stop (or, 06, report) with one line naming the cause, never a traceback."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmarklib import manifest, nodata, report

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ["id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds"]


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    return folder


def unreachable(n: int, labelled: bool = True) -> list[dict]:
    return [
        {
            "id": f"{i:016x}",
            "url": f"https://images{i % 2}.invalid/{i}.jpg",
            "landmark_id": str(100 + i % 3) if labelled else "",
            "status": "failed",
            "error": f"host unreachable: images{i % 2}.invalid (Name or service not known)",
        }
        for i in range(n)
    ]


def test_failed_rows_are_counted_by_reason_from_the_manifest(tmp_path):
    rows = unreachable(5) + [
        {"id": "a1", "status": "failed", "error": "HTTP 404: Not Found"},
        {"id": "a2", "status": "failed", "error": ""},
        {"id": "a3", "status": "ok"},
    ]
    write_manifest(tmp_path, rows)
    assert manifest.describe_failures(tmp_path) == "7 of 8 rows failed: host unreachable (5), HTTP 404 (1), failed (1)"
    assert manifest.describe_failures(tmp_path, top=1) == "7 of 8 rows failed: host unreachable (5), other (2)"
    assert manifest.describe_failures(tmp_path / "nowhere").startswith("no manifest.csv in ")


def test_require_split_names_why_there_is_nothing_to_train_on(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    folder = write_manifest(tmp_path / "data" / "train", unreachable(4))
    with pytest.raises(nodata.NoData) as err:
        nodata.require_split("data/train")
    assert str(err.value) == "no images in data/train: 4 of 4 rows failed: host unreachable (4)"
    assert err.value._render_traceback_() == [f"NoData: {err.value}"]  # what IPython shows: one line
    with pytest.raises(nodata.NoData, match="the folder does not exist"):
        nodata.require_images("data/absent")
    # three images of three landmarks: nothing left for validation, or for min_images=2
    rows = []
    for i, lid in enumerate((7, 8, 9)):
        (folder / str(lid)).mkdir()
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / str(lid) / f"x{i}.jpg")
        rows.append({"id": f"x{i}", "landmark_id": str(lid), "status": "ok"})
    write_manifest(folder, rows)
    with pytest.raises(nodata.NoData, match=r"too few images in data/train for a validation split: 3 images of 3"):
        nodata.require_split("data/train", min_images=1)
    with pytest.raises(nodata.NoData, match=r"no landmark has min_images=2 images \(3 images of 3 landmarks"):
        nodata.require_split("data/train", min_images=2)


@pytest.mark.slow
def test_notebooks_03_to_06_without_images_stop_with_one_line(tmp_path, capsys):
    write_manifest(tmp_path / "data" / "processed" / "t" / "train", unreachable(5))
    write_manifest(tmp_path / "data" / "processed" / "t" / "test", unreachable(5, labelled=False))
    params = tmp_path / "params.yaml"
    params.write_text(
        "run_name: offline\ntrain_dir: data/processed/t/train\ntest_dir: data/processed/t/test\n"
        "models_dir: models/t\ntest_solution_csv: ''\ntrain_csv: data/raw/x/train.csv\ninput_size: 32\n"
        "epochs: 1\nbenchmark_epochs: 1\nbenchmark_weights: null\nweights_download_timeout: 0\n"
        "variants: []\nreports_dir: reports\n"
    )
    runs = report.run_report(
        params, only=["03", "04", "05", "06"], root=tmp_path, notebooks_dir=REPO / "notebooks", progress=False
    )
    line = "no images in data/processed/t/train: 5 of 5 rows failed: host unreachable (5)"
    assert [(r.name[:2], r.status, r.error) for r in runs] == [
        ("03", "stopped", line),
        ("04", "stopped", line),
        ("05", "stopped", line),
        ("06", "ok", ""),
    ]
    out = capsys.readouterr()
    assert f"STOPPED 03_build_res_incep: {line}" in out.err and f"stopped: {line}" in out.out
    html = tmp_path / "reports" / "html"
    index = (html / "index.html").read_text()
    assert index.count(line) == 3 and 'class="stopped"' in index
    page = (html / "03_build_res_incep.html").read_text()
    assert f"NoData: {line}" in page and "Traceback" not in page and "site-packages" not in page
    body = (html / "report.html").read_text()
    body = body[body.index("<main>") :]
    assert "no images in data/processed/t/test: 5 of 5 rows failed: host unreachable (5)" in body
    assert "Traceback" not in body


def test_the_report_command_exits_1_when_a_notebook_stopped(monkeypatch, tmp_path):
    import argparse

    from landmarklib.report import NotebookRun, _cli

    def fake(status):
        return lambda *a, **k: [NotebookRun("03_x", tmp_path, tmp_path, tmp_path, status=status, error="no images")]

    args = argparse.Namespace(params=None, out=None, only=None, overrides=[], kernel="landmarks", no_progress=True)
    monkeypatch.setattr("landmarklib.report.run_report", fake("stopped"))
    assert _cli(args) == 1
    monkeypatch.setattr("landmarklib.report.run_report", fake("ok"))
    assert _cli(args) == 0
