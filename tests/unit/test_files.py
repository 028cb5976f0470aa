"""Atomic writes and displayed paths (landmarklib.files)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from landmarklib import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    files.write_csv(pd.DataFrame({"a": [1, 2]}), path)
    assert path.read_text() == "a\n1\n2\n"
    with pytest.raises(RuntimeError), files.atomic_path(path) as tmp:
        tmp.write_text("half of a")
        raise RuntimeError("killed")
    assert path.read_text() == "a\n1\n2\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.csv"]


def test_text_and_json(tmp_path):
    assert (
        files.write_json(tmp_path / "x.json", {"b": [1, None]}).read_text()
        == json.dumps({"b": [1, None]}, indent=2) + "\n"
    )
    assert files.write_text(tmp_path / "x.json", "é").read_text(encoding="utf-8") == "é"


def test_display_path_is_relative_inside_the_project_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKS_ROOT", str(tmp_path))
    assert files.display_path(tmp_path / "models" / "a.keras") == "models/a.keras"
    assert files.display_path("/elsewhere/a.keras") == "/elsewhere/a.keras"
