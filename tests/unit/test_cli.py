"""The command line starts fast: `landmarks --help`, `fetch` and `score` never import TensorFlow, Keras or JAX."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO

HEAVY = ("tensorflow", "keras", "jax", "torch")


def _run(argv: list[str], cwd: Path) -> dict:
    """``cli.main(argv)`` in a fresh interpreter: its exit code and the heavy modules it imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from landmarklib import cli
        try:
            rc = cli.main({argv!r})
        except SystemExit as exit:
            rc = exit.code
        print(json.dumps({{"rc": rc, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv", [["--help"], *([c, "--help"] for c in ("sample", "fetch", "predict", "score", "report"))]
)
def test_help_imports_no_deep_learning_framework(argv, tmp_path):
    assert _run(argv, tmp_path) == {"rc": 0, "heavy": []}


def test_fetch_imports_no_deep_learning_framework(tmp_path):
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "a.jpg")
    (tmp_path / "train.csv").write_text("id,url,landmark_id\na,a.jpg,7\nb,missing.jpg,7\n")
    result = _run(
        ["fetch", str(tmp_path / "train.csv"), "--out", str(tmp_path / "out"), "--size", "16", "--quiet"], REPO
    )
    assert result["heavy"] == []
    assert (tmp_path / "out" / "7" / "a.jpg").is_file()


def test_score_imports_no_deep_learning_framework(tmp_path):
    (tmp_path / "solution.csv").write_text("id,landmark_id\na,7\nb,\nc,9\n")
    (tmp_path / "submission.csv").write_text("id,landmarks\na,7 0.9\nb,7 0.2\nc,\n")
    result = _run(["score", str(tmp_path / "submission.csv"), str(tmp_path / "solution.csv")], tmp_path)
    assert result == {"rc": 0, "heavy": []}
