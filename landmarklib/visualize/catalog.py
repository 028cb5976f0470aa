"""Figures of landmark frequencies (notebook 01).

Each function takes a table from ``landmarklib.catalog`` and returns a matplotlib Figure:

    top_k_bars          the most frequent landmarks as labelled bars (the study's figure 3)
    rank_frequency      images per landmark against rank, log-log: the long tail
    images_per_landmark histogram of images per landmark
    coverage            how many landmarks hold a given share of the images
    min_images_filter   what dropping landmarks with fewer than K images keeps
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

_COLOR = "#3a6ea5"


def top_k_bars(top: pd.DataFrame, title: str | None = None):
    """Bar chart of the most frequent landmarks, each bar labelled with its count.

    Args:
        top: ``landmark_id``, ``count`` (as from ``catalog.top_k``), most frequent first.
        title: the axes title; a default names how many landmarks are shown.
    """
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(top) + 2), 4.2))
    categories = top["landmark_id"].astype(str).tolist()
    sns.barplot(x=categories, y=top["count"].to_numpy(), order=categories, color=_COLOR, ax=ax)
    ax.bar_label(ax.containers[0], fontsize=8, padding=2)
    ax.set_xlabel("landmark_id")
    ax.set_ylabel("images")
    ax.tick_params(axis="x", labelrotation=60)
    ax.set_title(title or f"The {len(top)} most frequent landmarks")
    ax.margins(y=0.12)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def rank_frequency(freq: pd.DataFrame, title: str = "Images per landmark by rank"):
    """Images per landmark against the landmark's rank, on log-log axes.

    Args:
        freq: ``landmark_id``, ``count`` (as from ``catalog.frequencies``).
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ranks = np.arange(1, len(freq) + 1)
    sns.lineplot(x=ranks, y=freq["count"].to_numpy(), drawstyle="steps-post", color=_COLOR, ax=ax)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("landmark rank (1 = most images)")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def images_per_landmark(freq: pd.DataFrame, title: str = "How many images a landmark has"):
    """Histogram of images per landmark (log-spaced bins when counts span a wide range).

    Args:
        freq: ``landmark_id``, ``count`` (as from ``catalog.frequencies``).
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    counts = freq["count"].to_numpy()
    wide = bool(counts.size and counts.max() > 50)
    sns.histplot(x=counts, log_scale=wide, discrete=not wide, color=_COLOR, ax=ax)
    ax.set_xlabel("images per landmark")
    ax.set_ylabel("landmarks")
    ax.set_title(title)
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def coverage(curve: pd.DataFrame, marks: tuple[float, ...] = (0.5, 0.9), title: str | None = None):
    """Share of images held by the N most frequent landmarks, with ``marks`` shown.

    Args:
        curve: ``landmarks``, ``images``, ``share`` (as from ``catalog.coverage_curve``).
        marks: shares to mark with how many landmarks reach them.
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    x = curve["landmarks"].to_numpy()
    share = curve["share"].to_numpy()
    sns.lineplot(x=np.r_[0, x], y=np.r_[0.0, share] * 100, color=_COLOR, ax=ax)
    for mark in marks:
        if not share.size:
            break
        n = int(x[np.searchsorted(share, mark * (1 - 1e-12))])
        ax.axhline(mark * 100, color="0.6", lw=0.8, ls="--")
        ax.plot([n], [mark * 100], "o", color="#c0392b")
        ax.annotate(
            f"{n} landmarks: {mark:.0%}",
            (n, mark * 100),
            xytext=(8, -14),
            textcoords="offset points",
            fontsize=9,
        )
    ax.set_xlabel("most frequent landmarks taken")
    ax.set_ylabel("images covered (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(0, max(int(x[-1]) if x.size else 1, 1))
    ax.set_title(title or f"Coverage of {int(curve['images'].iat[-1]) if len(curve) else 0} images")
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig


def min_images_filter(effect: pd.DataFrame, chosen: int | None = None, title: str | None = None):
    """Share of landmarks and of images kept when landmarks with fewer than K images are dropped.

    Args:
        effect: ``min_images``, ``share_landmarks_kept``, ``share_images_kept``
            (as from ``catalog.min_images_effect``).
        chosen: the threshold in use, marked with a vertical line.
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(6, 4.2))
    long = effect.melt(
        id_vars="min_images",
        value_vars=["share_landmarks_kept", "share_images_kept"],
        var_name="kept",
        value_name="share",
    )
    long["kept"] = long["kept"].map({"share_landmarks_kept": "landmarks", "share_images_kept": "images"})
    long["share"] *= 100
    sns.lineplot(data=long, x="min_images", y="share", hue="kept", marker="o", ax=ax)
    if chosen is not None:
        ax.axvline(chosen, color="0.4", lw=0.8, ls="--")
        ax.annotate(f"min_images = {chosen}", (chosen, 4), xytext=(4, 0), textcoords="offset points", fontsize=9)
    ax.legend(title="kept", loc="lower left")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("min_images (landmarks with fewer images are dropped)")
    ax.set_ylabel("kept (%)")
    ax.set_ylim(0, 102)
    ax.set_title(title or "Effect of the min_images filter")
    sns.despine(fig=fig)
    fig.tight_layout()
    return fig
