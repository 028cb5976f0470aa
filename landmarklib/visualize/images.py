"""Figures of images: fetched images with their landmark ids, and what resizing does (notebook 02).

image_grid          a grid of fetched images captioned with their landmark ids
resize_comparison   a raw source image beside its square versions (stretch, crop, pad):
                    the study's "before/after resize" figure
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .. import images, manifest


def fetched_images(out_dir: str | os.PathLike) -> list[dict[str, str]]:
    """The ``ok`` rows of ``out_dir/manifest.csv`` whose image exists, each with its ``path``.

    Args:
        out_dir: a folder written by ``landmarks fetch``.
    """
    out = Path(out_dir)
    rows = []
    for row in manifest.one_per_id(manifest.read(out, only_ok=True)).to_dict("records"):
        path = manifest.image_path(out, row["id"], row["landmark_id"])
        if path.is_file():
            rows.append({**row, "path": str(path)})
    return rows


def image_grid(
    out_dir: str | os.PathLike, n: int = 24, columns: int = 8, seed: int | None = 0, title: str | None = None
):
    """A grid of fetched images, each captioned with its landmark id (or its id, without labels).

    Args:
        out_dir: a folder written by ``landmarks fetch`` (read through its manifest).
        n: how many images at most.
        columns: images per row.
        seed: which images: a seeded random choice, or the first ``n`` when None.
        title: the figure title; a default says how many images are shown.
    """
    rows = fetched_images(out_dir)
    if seed is not None and len(rows) > n:
        rows = sorted(random.Random(seed).sample(rows, n), key=lambda r: (r["landmark_id"], r["id"]))
    rows = rows[:n]
    columns = max(1, min(columns, len(rows)))
    lines = max(1, math.ceil(len(rows) / columns))
    fig, axes = plt.subplots(lines, columns, figsize=(1.6 * columns, 1.8 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        ax.imshow(np.asarray(images.load_rgb(row["path"])))
        ax.set_title(f"landmark {row['landmark_id']}" if row["landmark_id"] else row["id"], fontsize=8)
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no fetched images", ha="center", va="center")
    fig.suptitle(title or f"{len(rows)} fetched images", fontsize=10)
    fig.tight_layout()
    return fig


def resize_comparison(source, size: int = 250, modes: tuple[str, ...] = images.RESIZE_MODES, title: str | None = None):
    """A raw image beside its ``size`` x ``size`` versions, one per resize mode.

    Args:
        source: encoded bytes or a path of the raw image.
        size: the side of the square versions (the study's was 250).
        modes: resize modes to show (``stretch`` is the study's).
        title: the figure title.
    """
    raw = images.load_rgb(source)
    panels = [(raw, f"source {raw.width}x{raw.height}")]
    panels += [(images.resize_square(raw, size, mode), f"{mode} {size}x{size}") for mode in modes]
    ratio = raw.width / raw.height
    widths = [max(ratio, 0.5)] + [1.0] * len(modes)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * sum(widths), 2.9), gridspec_kw={"width_ratios": widths})
    for ax, (img, caption) in zip(np.atleast_1d(axes), panels):
        ax.imshow(np.asarray(img))
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.suptitle(title or "Before and after resizing", fontsize=10)
    fig.tight_layout()
    return fig
