"""Scores and thresholds of landmark predictions (no Keras: a model runs in ``nets.inference``).

The competition's metric is Global Average Precision (GAP, also called micro-AP):
each test image gets at most one prediction ``(landmark_id, confidence)``; all
predictions are ranked by confidence, highest first, and

    GAP = 1/M * sum over ranks i of  P(i) * rel(i)

where ``P(i)`` is the precision of the first ``i`` predictions, ``rel(i)`` is 1
when prediction ``i`` is correct, and ``M`` is the number of test images that show
a landmark. A missing prediction only loses recall; a confident prediction on an
image without a landmark pushes every prediction below it down the ranking.

Functions:

    gap, accuracy, top_k_accuracy, strict_top_k, top_k_ids, confusion_matrix
    threshold_curve           GAP, coverage and precision as the threshold rises
    score                     all of the above for a prediction table and a solution CSV
    TTA_MODES, check_tta      the test-time augmentations a prediction may ask for
    timing_table              measured timings (``nets.inference.time_model``) beside the study's
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import catalog, config, scoring, study

DEFAULT_THRESHOLD = config.EvalConfig.threshold
"""The study printed a landmark only when its probability was above 4.5%."""
DEFAULT_TTA = config.EvalConfig.tta
"""The study answered each image as it is (no test-time augmentation)."""


# --------------------------------------------------------------------------- labels


def _label_keys(values) -> tuple[np.ndarray, np.ndarray]:
    """Landmark ids -> (canonical string keys, missing mask).

    ``None``, NaN, ``pd.NA`` and empty strings are missing. Integral numbers and
    digit strings share one key (``7``, ``7.0`` and ``"7"`` all become ``"7"``), so
    predictions read from one file compare equal to ground truth read from another.
    """
    s = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
    s = s.where(~s.map(lambda v: isinstance(v, str) and not v.strip()), None)
    missing = s.isna().to_numpy()
    num = pd.to_numeric(s.where(~missing), errors="coerce")
    integral = (num.notna() & (num == np.floor(num))).to_numpy()
    keys = s.astype(str).to_numpy(dtype=object)
    if integral.any():
        keys[integral] = num[integral].astype("int64").astype(str).to_numpy(dtype=object)
    keys[missing] = None
    return keys, missing


def _ranked_correct(predicted, confidence, actual, ids=None) -> tuple[np.ndarray, int]:
    """Correctness of the predictions in GAP order, and the number of landmark images.

    Returns:
        (correct flags of the predicted rows, sorted by confidence descending then
        id ascending; number of rows whose ``actual`` shows a landmark).
    """
    pred_keys, pred_missing = _label_keys(predicted)
    true_keys, true_missing = _label_keys(actual)
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    n = len(true_keys)
    if len(pred_keys) != n or len(conf) != n:
        raise ValueError(
            f"predicted ({len(pred_keys)}), confidence ({len(conf)}) and actual ({n}) "
            "must have one entry per test image"
        )
    has_pred = ~pred_missing
    bad = has_pred & ~np.isfinite(conf)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} predictions have no finite confidence (first at row {int(np.argmax(bad))})")
    correct = has_pred & ~true_missing & (pred_keys == true_keys)
    rows = np.flatnonzero(has_pred)
    order = np.lexsort((scoring.id_rank(ids, n)[rows], -conf[rows]))
    return correct[rows][order], int((~true_missing).sum())


def gap(predicted, confidence, actual, ids=None) -> float:
    """Global Average Precision of one prediction (or none) per test image.

    Args:
        predicted: predicted landmark id per image; ``None``/NaN/empty = no prediction.
        confidence: the prediction's confidence per image (ignored where there is no prediction).
        actual: true landmark id per image; ``None``/NaN/empty = the image shows no landmark.
        ids: image ids, used to break confidence ties (ascending); default: the index order.

    Returns:
        GAP in [0, 1]. Raises ``ValueError`` when no image shows a landmark.
    """
    correct_sorted, n_landmarks = _ranked_correct(predicted, confidence, actual, ids)
    return scoring.gap_from_ranked(correct_sorted, n_landmarks)


# --------------------------------------------------------------------------- accuracy


def accuracy(predicted, actual) -> float:
    """Share of images showing a landmark whose predicted landmark is the true one.

    Images without a landmark (``actual`` missing) are left out; a missing
    prediction counts as wrong. NaN when no image shows a landmark.
    """
    pred_keys, pred_missing = _label_keys(predicted)
    true_keys, true_missing = _label_keys(actual)
    keep = ~true_missing
    if not keep.any():
        return math.nan
    return float(((pred_keys == true_keys) & ~pred_missing)[keep].mean())


def _strict_rank(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each row's true class when classes are sorted by score, ties by class index.

    A class ranks ahead of the true one when its score is higher, or equal and its index lower.
    A label outside ``0..C-1`` or a true score that is not finite (a diverged model) ranks last (C).
    """
    n, c = probs.shape
    ranks = np.full(n, c, dtype=np.int64)
    valid = (labels >= 0) & (labels < c)
    index = np.arange(c)
    for start in range(0, n, 4096):  # bounded memory: 4096 x C comparisons at a time
        rows = np.arange(start, min(n, start + 4096))
        rows = rows[valid[rows]]
        if len(rows) == 0:
            continue
        p, y = probs[rows], labels[rows]
        truth = p[np.arange(len(rows)), y][:, None]
        ahead = (p > truth) | ((p == truth) & (index[None, :] < y[:, None]))
        ranks[rows] = np.where(np.isfinite(truth[:, 0]), ahead.sum(axis=1), c)
    return ranks


def top_k_accuracy(probs: np.ndarray, labels: Sequence[int], k: int = 5) -> float:
    """Share of rows whose true class is among the ``k`` most probable, ties broken by class index.

    Strict: with tied scores only ``k`` classes count (the lower indices first), unlike Keras'
    ``SparseTopKCategoricalAccuracy``, which counts every class tied with the k-th: a model that
    gives every class the same score would score 100% there, and ``k / C`` here.

    Args:
        probs: class probabilities, shape (N, C).
        labels: true class index per row; a negative index (a landmark the model
            has no class for) counts as a miss.
        k: how many of the most probable classes count.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, C) with N = len(labels); got {probs.shape} and {len(labels)}")
    if len(labels) == 0:
        return math.nan
    return float((_strict_rank(probs, labels) < k).mean())


def strict_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best class indexes per row, best first; equal scores ordered by class index (lower first)."""
    scores = np.asarray(scores)
    return np.argsort(-scores, axis=1, kind="stable")[:, : min(int(k), scores.shape[1])]


def top_k_ids(probs: np.ndarray, landmark_ids: Sequence[int], k: int = 5) -> np.ndarray:
    """The ``k`` most probable landmark ids per row, best first, ties by class index; shape (N, min(k, C))."""
    return np.asarray(landmark_ids)[strict_top_k(probs, k)]


def confusion_matrix(predicted, actual, top_n: int = 10) -> pd.DataFrame:
    """Counts of (true, predicted) landmark for the ``top_n`` most frequent true landmarks.

    Every other landmark, and a missing prediction, is folded into ``"other"``.
    Images without a true landmark are left out. Rows: true; columns: predicted.
    """
    pred_keys, pred_missing = _label_keys(predicted)
    true_keys, true_missing = _label_keys(actual)
    keep = ~true_missing
    counts = pd.Series(true_keys[keep]).value_counts(sort=False)
    counts = counts.reset_index().set_axis(["key", "n"], axis=1)
    counts["order"] = _as_int_if_possible(counts["key"])
    top = counts.sort_values(["n", "order"], ascending=[False, True], kind="mergesort")["key"].head(top_n).tolist()
    labels = [*_as_int_if_possible(pd.Series(top, dtype=object)).tolist(), "other"]
    index = {key: i for i, key in enumerate(top)}
    other = len(top)
    rows = np.array([index.get(k, other) for k in true_keys[keep]], dtype=np.int64)
    cols = np.array(
        [other if m else index.get(k, other) for k, m in zip(pred_keys[keep], pred_missing[keep])], dtype=np.int64
    )
    matrix = np.zeros((other + 1, other + 1), dtype=np.int64)
    np.add.at(matrix, (rows, cols), 1)
    return pd.DataFrame(
        matrix,
        index=pd.Index(labels, name="true", dtype=object),
        columns=pd.Index(labels, name="predicted", dtype=object),
    )


def _as_int_if_possible(values: pd.Series) -> pd.Series:
    """Canonical string keys back to ints when they all are integers."""
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().all() and (num == np.floor(num)).all():
        return num.astype("int64")
    return values


# --------------------------------------------------------------------------- thresholds


def threshold_curve(
    confidence,
    correct,
    thresholds: Sequence[float],
    n_landmarks: int | None = None,
    ids=None,
) -> pd.DataFrame:
    """What a confidence threshold does: coverage, precision of the answers, GAP.

    A prediction is *answered* when its confidence is at or above the threshold
    (NaN confidence = no prediction). The study printed a landmark only above 4.5%.

    Why a threshold cannot raise GAP: GAP sums ``P(i)`` over the correct
    predictions, ranked by confidence. Raising the threshold drops the
    lowest-confidence predictions, i.e. a tail of the ranking (ties go together,
    since they share one confidence). Dropping a tail does not change the rank,
    hence the precision ``P(i)``, of any prediction above it; it only removes the
    terms of the dropped correct predictions, each >= 0. So GAP is non-increasing
    as the threshold rises; the best GAP is always "answer everything". What a
    threshold buys is a higher precision of the answers that are shown, at the
    cost of coverage, which is what a person reading the output cares about.

    Args:
        confidence: confidence of each image's prediction (NaN = none).
        correct: whether each image's prediction is right (bool per image).
        thresholds: the thresholds to evaluate.
        n_landmarks: number of test images that show a landmark (GAP's
            denominator); default: every image.
        ids: image ids for the GAP tie-break; default: index order.

    Returns:
        DataFrame(threshold, answered, answered_share, precision_answered, gap).
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=bool).ravel()
    if len(conf) != len(hit):
        raise ValueError(f"confidence ({len(conf)}) and correct ({len(hit)}) differ in length")
    n = len(conf)
    m = n if n_landmarks is None else int(n_landmarks)
    has = np.isfinite(conf)
    rows = np.flatnonzero(has)
    order = rows[np.lexsort((scoring.id_rank(ids, n)[rows], -conf[rows]))]
    ranked_conf, ranked_hit = conf[order], hit[order]
    records = []
    for t in thresholds:
        kept = int((ranked_conf >= t).sum())  # ranked_conf descends: answers are a prefix
        records.append(
            {
                "threshold": float(t),
                "answered": kept,
                "answered_share": kept / n if n else math.nan,
                "precision_answered": float(ranked_hit[:kept].mean()) if kept else math.nan,
                "gap": scoring.gap_from_ranked(ranked_hit[:kept], m),
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["threshold", "answered", "answered_share", "precision_answered", "gap"]
    )


# --------------------------------------------------------------------------- scoring


def score(pred: pd.DataFrame, solution, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Every test-set number for one prediction table (the output of ``predict``).

    Args:
        pred: DataFrame with id, landmark_id, confidence (and top_ids for top-5).
        solution: ``test_solution.csv`` path (read by ``catalog.read_solution``: ``id,landmark_id``
            or ``id,landmarks[,Usage]``), or a DataFrame with id, landmark_id (and optionally
            landmarks, every true landmark: an answer is right when it is any of them).
            Every solution id is scored; an id missing from ``pred`` has no prediction.
        threshold: predictions below it are not answered.

    Returns:
        dict: gap (answers at or above the threshold), gap_all (every prediction),
        threshold, answered_share, answered_precision, top1, top5 (among images
        that show a landmark), n_test, n_landmark_images, n_answered.
    """
    truth = solution if isinstance(solution, pd.DataFrame) else catalog.read_solution(solution)
    truth = truth.astype({"id": str})
    if "usage" in truth:  # a 2019-2021 solution: Ignored images are scored by neither leaderboard
        truth = truth[truth["usage"] != "Ignored"]
    if "landmarks" not in truth:  # one landmark per image (id,landmark_id)
        truth = truth.assign(landmarks=[[] if pd.isna(v) else [v] for v in truth["landmark_id"]])
    table = truth[["id", "landmarks"]].merge(pred.astype({"id": str}), on="id", how="left", validate="one_to_one")
    conf = table["confidence"].astype("float64").to_numpy()
    ids = table["id"].to_numpy()
    answered = np.isfinite(conf) & (conf >= threshold)
    predicted_all = table["landmark_id"].astype(object).where(np.isfinite(conf), None)
    predicted = predicted_all.where(answered, None)
    # Several landmarks per image (2019-2021, GLDv2): an answer is right when it is any of them. As each image
    # has one answer, its "actual" is the answered landmark when that is one of them, else the first.
    pred_keys, _ = _label_keys(predicted_all)
    exploded = table["landmarks"].reset_index(drop=True).explode()  # one canonicalisation for every landmark
    truth_keys: list[set] = [set() for _ in range(len(table))]
    for row, key in zip(exploded.index, _label_keys(exploded.to_numpy())[0]):
        if key is not None:
            truth_keys[row].add(key)
    table["actual"] = [
        k if k is not None and k in t else (min(t) if t else None) for k, t in zip(pred_keys, truth_keys)
    ]
    true_keys, true_missing = _label_keys(table["actual"])
    hit = (pred_keys == true_keys) & ~true_missing
    result = {
        "gap": gap(predicted, conf, table["actual"], ids),
        "gap_all": gap(predicted_all, conf, table["actual"], ids),
        "threshold": float(threshold),
        "answered_share": float(answered.mean()) if len(table) else math.nan,
        "answered_precision": float(hit[answered].mean()) if answered.any() else math.nan,
        "top1": accuracy(predicted_all, table["actual"]),
        "top5": math.nan,
        "n_test": int(len(table)),
        "n_landmark_images": int((~true_missing).sum()),
        "n_answered": int(answered.sum()),
    }
    if "top_ids" in table.columns and (~true_missing).any():
        tops = table["top_ids"].astype(object).where(table["top_ids"].notna(), "").astype(str).str.split().explode()
        rows = tops.index.to_numpy()
        top_keys = _label_keys(tops.to_numpy())[0]
        match = np.array([k in truth_keys[r] for k, r in zip(top_keys, rows)], bool) & ~true_missing[rows]
        in_top = pd.Series(match).groupby(rows).any().reindex(range(len(table)), fill_value=False).to_numpy()
        result["top5"] = float(in_top[~true_missing].mean())
    return result


TTA_MODES = ("none", "flip")
"""Test-time augmentation: ``none``, or ``flip``: the mean of the model's outputs for each image and
its mirror image (left-right; landmarks are photographed from both sides, never upside down)."""


def check_tta(tta: str) -> str:
    """``tta`` if it is one of ``TTA_MODES``, else ``ValueError`` naming them."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, not {tta!r}")
    return tta


# --------------------------------------------------------------------------- timing


def timing_table(timings: dict[str, dict]) -> pd.DataFrame:
    """Measured timings per model beside the study's seconds per image.

    Args:
        timings: model name (``res_incep``, ``resnet50``, ...) -> ``time_model`` result.

    Returns:
        DataFrame indexed by model: load_seconds, latency_median_ms, latency_p90_ms,
        batch_images_per_second, study_seconds_per_image, study_over_measured
        (how many times faster one image goes through now than in the study).
    """
    rows = []
    for name, t in timings.items():
        published = study.SECONDS_PER_IMAGE.get(name, math.nan)
        rows.append(
            {
                "model": name,
                "load_seconds": t["load_seconds"],
                "latency_median_ms": t["latency_median_ms"],
                "latency_p90_ms": t["latency_p90_ms"],
                "batch_images_per_second": t["batch_images_per_second"],
                "study_seconds_per_image": published,
                "study_over_measured": published * 1000 / t["latency_median_ms"],
            }
        )
    return pd.DataFrame.from_records(rows).set_index("model")
