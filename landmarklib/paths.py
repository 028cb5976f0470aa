"""Project folders, and paths given relative to the project root.

Parameters files and notebooks give paths relative to the project root, so a
notebook runs the same from JupyterLab (working folder ``notebooks/``), from
papermill, or from a test with absolute temporary paths.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The project root: ``$LANDMARKS_ROOT``, else the checkout holding this package, else the cwd."""
    env = os.environ.get("LANDMARKS_ROOT")
    if env:
        return Path(env).resolve()
    if (_PACKAGE_PARENT / "pyproject.toml").is_file() and (_PACKAGE_PARENT / "notebooks").is_dir():
        return _PACKAGE_PARENT
    return Path.cwd().resolve()


def resolve(path: str | os.PathLike | None) -> Path | None:
    """An absolute path: relative paths are taken from the project root. ``None`` stays ``None``."""
    if path is None:
        return None
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else (project_root() / p)


def metrics_dir(reports_dir: str | os.PathLike = "reports") -> Path:
    """``<reports_dir>/metrics``, created if missing."""
    d = resolve(reports_dir) / "metrics"
    d.mkdir(parents=True, exist_ok=True)
    return d


def figures_dir(reports_dir: str | os.PathLike = "reports") -> Path:
    """``<reports_dir>/figures``, created if missing."""
    d = resolve(reports_dir) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d
