"""Notebook 01 executed by papermill on a hand-made catalog whose numbers are known."""

import hashlib
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_explore_frequencies.ipynb"

# First 10 rows: landmark 7 x4, 3 x3, 5 x2, 9 x1. Rows 11-12 fall outside n_images=10.
ROWS = [7, 3, 7, 5, 3, 9, 7, 5, 3, 7, 9, 11]
# Then one bad row of each kind: left out of the numbers, counted apart.
BAD_LINES = [
    '"b1","","3","x"',
    '"b2","None","3","x"',
    '"b3","images/b3.jpg","abc","x"',
    '"../b4","images/b4.jpg","3","x"',
    '"0000e1","images/other.jpg","4","x"',
]


def test_notebook_is_committed_clean_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "landmarks"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for line in (
        'train_csv = "data/raw/sample/train.csv"',
        "n_images = 5000",
        "top_k = 15",
        "min_images = 2",
        'reports_dir = "reports"',
        'sample_dir = "data/raw/sample"',
    ):
        assert line in tagged[0].source


@pytest.mark.slow
def test_notebook_01_numbers_and_figures(tmp_path, run_notebook):
    csv = tmp_path / "train.csv"
    lines = ['\ufeff"id","url","landmark_id","note"']
    lines += [f'"{i:04d}e1","images/{i}.jpg","{lid}","x"' for i, lid in enumerate(ROWS)]
    lines += BAD_LINES
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reports = tmp_path / "reports"
    executed = tmp_path / "01.ipynb"

    run_notebook(
        "01",
        executed,
        {
            "train_csv": str(csv),
            "sample_dir": str(tmp_path / "sample"),
            "n_images": 10,
            "top_k": 3,
            "min_images": 2,
            "reports_dir": str(reports),
        },
        cwd=tmp_path,
    )

    m = json.loads((reports / "metrics" / "01_explore.json").read_text())
    assert m["catalog"] == str(csv)
    assert m["n_bad_rows"] == 5
    assert m["bad_rows"] == {"no url": 2, "bad landmark_id": 1, "unsafe id": 1, "duplicate id": 1}
    source = m["data_source"]
    assert {k: source[k] for k in ("name", "kind", "path", "rows", "landmarks")} == {
        "name": tmp_path.name,
        "kind": "folder",
        "path": str(csv),
        "rows": 17,
        "landmarks": 5,
    }
    assert source["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert m["n_rows_total"] == 12 and m["n_landmarks_total"] == 5
    assert m["n_images"] == 10 and m["n_landmarks"] == 4
    assert m["top_k"] == [
        {"landmark_id": 7, "count": 4},
        {"landmark_id": 3, "count": 3},
        {"landmark_id": 5, "count": 2},
    ]
    assert m["single_image_landmarks"] == 1
    assert m["landmarks_covering_50pct"] == 2  # 4 + 3 = 7 of 10 images >= 5
    assert m["landmarks_covering_90pct"] == 3  # 4 + 3 + 2 = 9 >= 9
    assert (m["min_images"], m["landmarks_kept"], m["images_kept"]) == (2, 3, 9)
    assert m["long_tail"]["max_images_per_landmark"] == 4
    assert not (tmp_path / "sample").exists()

    assert len(m["figures"]) == 5
    for rel in m["figures"]:
        assert (reports / rel).stat().st_size > 1000
    nb = nbformat.read(executed, as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(m["figures"])
