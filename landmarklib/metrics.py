"""Each notebook's key numbers, as JSON files the report notebook reads and tests assert on.

Files, written under ``<reports_dir>/metrics/``:

    01_explore.json     catalog exploration (notebook 01)
    02_fetch.json       fetch summary (notebook 02)
    03_res_incep.json   Res-Incep training and validation (notebook 03)
    04_resnet50.json    ResNet-50 benchmark (notebook 04)
    05_visualize.json   what notebook 05 drew
    06_report.json      evaluation on the test set: GAP, thresholds, timing (notebook 06)

Every file holds plain JSON (numbers, strings, lists, dicts). A key ``figures``
lists the figure files the notebook wrote, relative to ``reports_dir``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from . import paths


def _plain(value: Any) -> Any:
    """numpy/pandas/Path values -> plain JSON values (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    elif hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def save(name: str, data: dict, reports_dir: str | os.PathLike = "reports") -> Path:
    """Write ``data`` to ``<reports_dir>/metrics/<name>.json`` (atomically) and return the path.

    Args:
        name: file stem, e.g. ``"01_explore"``.
        data: the numbers; numpy scalars and arrays are converted.
        reports_dir: the reports folder (relative to the project root or absolute).
    """
    path = paths.metrics_dir(reports_dir) / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_plain(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def load(name: str, reports_dir: str | os.PathLike = "reports") -> dict:
    """Read ``<reports_dir>/metrics/<name>.json``."""
    return json.loads((paths.metrics_dir(reports_dir) / f"{name}.json").read_text())


def load_all(reports_dir: str | os.PathLike = "reports") -> dict[str, dict]:
    """Every metrics file present, keyed by stem (``"01_explore"`` ...)."""
    d = paths.metrics_dir(reports_dir)
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))}
