"""The report's figures of both models on the test set (notebook 06): thresholds, confusion, examples.

Each function takes the ``ModelEvaluation`` of each model (``landmarklib.report.evaluate_models``)
and draws one panel per model.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import PercentFormatter

from .. import data, paths, predict, study
from ..report.content import ModelEvaluation, answer_text


def _panel_per_model(evaluations: dict[str, ModelEvaluation], width: float, height: float, **kwargs):
    """A figure with one axes per model, side by side; returns (figure, [(axes, evaluation)])."""
    n = max(1, len(evaluations))
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, **kwargs)
    return fig, list(zip(axes[0], evaluations.values()))


def threshold_figure(evaluations: dict[str, ModelEvaluation], threshold: float):
    """Answered share, precision of the answers and GAP against the threshold, one panel per model.

    The study's 4.5% is marked with a dashed line, this run's threshold (when different) dotted.

    Args:
        evaluations: model name -> its evaluation (``curve`` is drawn).
        threshold: this run's threshold.
    """
    fig, panels = _panel_per_model(evaluations, 5.5, 3.8, sharey=True)
    for ax, e in panels:
        c = e.curve
        ax.plot(c["threshold"], c["answered_share"], label="answered share", color="tab:blue")
        if getattr(e, "scored", True):  # without a solution file only the answered share is known
            ax.plot(c["threshold"], c["precision_answered"], label="precision of answers", color="tab:green")
            ax.plot(c["threshold"], c["gap"], label="GAP", color="tab:red")
        ax.axvline(study.THRESHOLD, color="k", linestyle="--", linewidth=1, label=f"the study's {study.THRESHOLD:.1%}")
        if abs(threshold - study.THRESHOLD) > 1e-9:
            ax.axvline(threshold, color="0.4", linestyle=":", linewidth=1.5, label=f"this run's {threshold:.1%}")
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("confidence threshold")
        ax.set_title(e.label)
        ax.grid(alpha=0.3)
    first = fig.axes[0]
    first.set_ylabel("share / score")
    first.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(evaluations: dict[str, ModelEvaluation]):
    """Confusion matrices (top-1, every image) over the ten most frequent test landmarks, one per model.

    Args:
        evaluations: model name -> its evaluation (``confusion`` is drawn).
    """
    fig, panels = _panel_per_model(evaluations, 5.2, 4.8)
    for ax, e in panels:
        m = e.confusion
        values = m.to_numpy()
        ax.imshow(values, cmap="Blues")
        ax.set_xticks(range(len(m.columns)), [str(c) for c in m.columns], rotation=90, fontsize=7)
        ax.set_yticks(range(len(m.index)), [str(i) for i in m.index], fontsize=7)
        for (i, j), v in np.ndenumerate(values):
            if v:
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > values.max() / 2 else "black",
                )
        ax.set_xlabel("predicted landmark")
        ax.set_ylabel("true landmark")
        ax.set_title(f"{e.label}: top-1 on the test set")
    fig.tight_layout()
    return fig


def examples_figure(
    examples: pd.DataFrame, evaluations: dict[str, ModelEvaluation], test_dir: str | os.PathLike, input_size: int
):
    """The example test images, each captioned with the true landmark and every model's answer.

    Args:
        examples: ``landmarklib.report.pick_examples``'s table.
        evaluations: model name -> its evaluation.
        test_dir: the fetched test folder.
        input_size: the side the images are shown at (the models' input).
    """
    images = predict.load_test_images(paths.resolve(test_dir), input_size, progress=False).set_index("id")
    pixels = data.load_images(images.loc[examples["id"], "path"].tolist(), input_size, progress=False)
    cols = min(5, max(1, len(examples)))
    rows = max(1, (len(examples) + cols - 1) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.6 * cols, (2.6 + 0.2 * len(evaluations)) * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (i, row) in zip(axes.ravel(), examples.iterrows()):
        ax.imshow(pixels[i])
        caption = [f"true: {'unknown' if row['actual'] is None else row['actual'] or 'no landmark'}"]
        caption += [
            f"{e.label}: "
            + answer_text(row[f"{e.name}_landmark"], row[f"{e.name}_confidence"], row[f"{e.name}_answered"])
            for e in evaluations.values()
        ]
        ax.set_title("\n".join(caption), fontsize=8)
    return fig


def confidence_figure(evaluations: dict[str, ModelEvaluation], threshold: float):
    """How confident each model's top answer is on the test images: a histogram, the threshold marked.

    Needs no solution file: it shows what share of the images a threshold answers.

    Args:
        evaluations: model name -> its evaluation (``predictions["confidence"]`` is drawn).
        threshold: this run's threshold.
    """
    fig, panels = _panel_per_model(evaluations, 5.0, 3.4, sharey=True)
    for ax, e in panels:
        conf = e.predictions["confidence"].astype(float).to_numpy()
        conf = conf[np.isfinite(conf)]
        ax.hist(conf, bins=np.linspace(0, 1, 41), color="tab:blue", alpha=0.8)
        ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:.1%}")
        answered = float((conf >= threshold).mean()) if len(conf) else float("nan")
        ax.set_title(f"{e.label}: {answered:.1%} of {len(conf):,} answered")
        ax.set_xlabel("confidence of the top answer")
        ax.legend(fontsize=8)
    fig.axes[0].set_ylabel("test images")
    fig.tight_layout()
    return fig
