"""Figure functions, one submodule per family of figures.

    visualize.catalog    landmark frequencies: top-K bars, rank/frequency, coverage (notebook 01)
    visualize.images     image grids, before/after resize (notebook 02, the report)
    visualize.training   loss/accuracy curves, variant comparison, block diagram (notebooks 03-04)
    visualize.network    filters, feature maps, class activation maps (notebook 05)
    visualize.evaluation threshold curve, confusion matrix, example predictions (notebook 06)

Every function returns a matplotlib Figure; ``save_figure`` writes it under ``<reports_dir>/figures``.
"""

from __future__ import annotations

import os

from .. import paths


def save_figure(fig, name: str, reports_dir: str | os.PathLike = "reports", dpi: int = 110) -> str:
    """Save ``fig`` as ``<reports_dir>/figures/<name>.png``; return the path relative to ``reports_dir``.

    Args:
        fig: a matplotlib Figure.
        name: file stem (letters, digits, ``_``, ``-``).
        reports_dir: the reports folder (relative to the project root or absolute).
        dpi: resolution of the PNG.
    """
    path = paths.figures_dir(reports_dir) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return f"figures/{name}.png"
