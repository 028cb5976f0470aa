"""Figures of notebook 07: the embedding map, nearest-neighbour galleries, open-set GAP against the threshold."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import data


def embedding_figure(coords: np.ndarray, landmarks: np.ndarray, known: np.ndarray, projection: str, title: str = ""):
    """The test queries' embeddings in 2-D: one colour per known landmark, held-out / no-landmark images as grey crosses.

    Args:
        coords: (N, 2) coordinates (``recognition.project_2d``).
        landmarks: (N,) true landmark per query (-1: none).
        known: (N,) whether the query's landmark was trained on.
        projection: ``"t-SNE"`` or ``"PCA"`` (axis labels).
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    landmarks = np.asarray(landmarks)
    known = np.asarray(known, bool)
    ids = sorted(set(landmarks[known].tolist()))
    cmap = plt.get_cmap("tab20", max(len(ids), 1))
    for i, lid in enumerate(ids):
        sel = known & (landmarks == lid)
        ax.scatter(coords[sel, 0], coords[sel, 1], s=16, color=cmap(i % cmap.N), alpha=0.85, linewidths=0)
    if (~known).any():
        ax.scatter(
            coords[~known, 0],
            coords[~known, 1],
            s=22,
            marker="x",
            color="0.45",
            label="no known landmark (open-set query)",
        )
        ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_xlabel(f"{projection} 1")
    ax.set_ylabel(f"{projection} 2")
    ax.set_title(title or f"Retrieval embeddings of the test images ({projection}); colour = landmark", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def _thumb(path: str, size: int) -> np.ndarray:
    return data.load_images([path], size, progress=False)[0]


def gallery_figure(rows: list[dict], size: int = 64):
    """Each query (left) with its nearest index images, their landmark and similarity; green = its answer was right."""
    if not rows:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no retrieval queries to show", ha="center", va="center")
        return fig
    k = max(len(r["neighbours"]) for r in rows)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.6 * (k + 1), 1.9 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        ax = axes[r, 0]
        ax.imshow(_thumb(row["query_path"], size))
        truth = row["true_landmark"] if row["true_landmark"] is not None else "none"
        if row["actual"] is None and row["true_landmark"] is not None:
            truth = f"{truth} (held out)"
        colour = "tab:green" if row["right"] else "tab:red"
        ax.set_title(f"query: {truth}\nanswer {row['predicted']} ({row['confidence']:.2f})", fontsize=7, color=colour)
        for c in range(k):
            ax = axes[r, c + 1]
            if c < len(row["neighbours"]):
                path, lid, sim = row["neighbours"][c]
                ax.imshow(_thumb(path, size))
                ax.set_title(f"{lid}  s={sim:.2f}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        for spine in axes[r, 0].spines.values():
            spine.set_visible(True)
            spine.set_color(colour)
            spine.set_linewidth(2)
    fig.tight_layout()
    return fig


def open_gap_figure(curves: dict[str, pd.DataFrame], thresholds: dict[str, float]):
    """Open-set GAP, answered share and precision of the answers against the threshold, one line per method.

    Args:
        curves: method -> ``openset.gap_curve``'s table.
        thresholds: method -> its chosen threshold (a marker on each curve).
    """
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for i, (name, curve) in enumerate(curves.items()):
        colour = plt.get_cmap("tab10")(i)
        for ax, column in zip(axes, ["gap", "answered_share", "precision_answered"]):
            ax.plot(curve["threshold"], curve[column], color=colour, label=name)
            t = thresholds.get(name)
            if t is not None:
                at = curve.iloc[int(np.argmin(np.abs(curve["threshold"].to_numpy() - t)))]
                ax.plot([t], [at[column]], "o", color=colour, markersize=5)
    for ax, label in zip(axes, ["open-set GAP", "answered share", "precision of the answers"]):
        ax.set_xlabel("confidence threshold")
        ax.set_title(label, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle("Open-set queries: what the threshold does (dots: each method's chosen threshold)", fontsize=10)
    fig.tight_layout()
    return fig
