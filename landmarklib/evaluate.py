"""Scores, thresholds, prediction and timing for trained landmark models (`landmarks predict`).

The competition's metric is Global Average Precision (GAP, also called micro-AP):
each test image gets at most one prediction ``(landmark_id, confidence)``; all
predictions are ranked by confidence, highest first, and

    GAP = 1/M * sum over ranks i of  P(i) * rel(i)

where ``P(i)`` is the precision of the first ``i`` predictions, ``rel(i)`` is 1
when prediction ``i`` is correct, and ``M`` is the number of test images that show
a landmark. A missing prediction only loses recall; a confident prediction on an
image without a landmark pushes every prediction below it down the ranking.

Functions:

    gap, accuracy, top_k_accuracy, confusion_matrix
    threshold_curve           GAP, coverage and precision as the threshold rises
    score                     all of the above for a prediction table and a solution CSV
    load_test_images          a fetched folder, an image folder or a CSV -> ids and paths
    predict, write_submission the Kaggle submission ``id,landmarks``
    time_model, timing_table  load time, single-image latency, batched throughput

Keras (through ``data`` and ``models``) is imported inside the functions that need it, so that
``landmarks predict --help`` starts without TensorFlow.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog, config, files, paths, scoring, study

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


def top_k_ids(probs: np.ndarray, landmark_ids: Sequence[int], k: int = 5) -> np.ndarray:
    """The ``k`` most probable landmark ids per row, best first, ties by class index; shape (N, min(k, C))."""
    probs = np.asarray(probs)
    n, c = probs.shape
    k = min(k, c)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # stable: equal scores keep index order
    return np.asarray(landmark_ids)[top]


@functools.cache
def strict_top_k_metric_class() -> type:
    """``StrictTopKAccuracy``: a Keras metric counting the true class in the top k, ties by class index.

    Defined on first use (importing this module does not import Keras) and registered with Keras,
    so a saved model compiled with it loads (``models.load`` calls this first).
    """
    import keras
    from keras import ops

    def strict_sparse_top_k(y_true, y_pred, k=5):
        y_pred = ops.convert_to_tensor(y_pred)
        n_classes = ops.shape(y_pred)[-1]
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        valid = ops.logical_and(y_true >= 0, y_true < n_classes)
        y_safe = ops.where(valid, y_true, ops.zeros_like(y_true))
        truth = ops.take_along_axis(y_pred, y_safe[:, None], axis=-1)
        index = ops.arange(n_classes, dtype="int32")[None, :]
        ahead = ops.logical_or(
            ops.greater(y_pred, truth), ops.logical_and(ops.equal(y_pred, truth), ops.less(index, y_safe[:, None]))
        )
        rank = ops.sum(ops.cast(ahead, "int32"), axis=-1)
        hit = ops.logical_and(ops.logical_and(rank < k, valid), ops.isfinite(truth[:, 0]))
        return ops.cast(hit, "float32")

    @keras.saving.register_keras_serializable(package="landmarklib")
    class StrictTopKAccuracy(keras.metrics.MeanMetricWrapper):
        """Top-k accuracy with integer labels, ties broken by class index (see ``top_k_accuracy``)."""

        def __init__(self, k: int = 5, name: str = "top5", dtype=None):
            super().__init__(fn=strict_sparse_top_k, name=name, dtype=dtype, k=k)
            self.k = k

        def get_config(self):
            return {"name": self.name, "dtype": self.dtype, "k": self.k}

    return StrictTopKAccuracy


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


# --------------------------------------------------------------------------- test images


def _folder_images(folder: Path) -> pd.DataFrame:
    """A fetched folder (manifest.csv) or an image folder -> DataFrame(id, path, landmark_id, error)."""
    from . import data, manifest

    if manifest.path_of(folder).is_file():
        rows = manifest.one_per_id(manifest.read(folder))
        records = []
        for row in rows.itertuples(index=False):
            candidates = [folder / row.landmark_id / f"{row.id}.jpg"] if row.landmark_id else []
            candidates.append(folder / f"{row.id}.jpg")
            found = next((p for p in candidates if p.is_file()), None)
            error = ""
            if row.status not in ("ok", "skipped"):  # skipped: fetched ok by an earlier run
                error = getattr(row, "error", "") or row.status
            elif found is None:
                error = "file missing"
            records.append(
                {
                    "id": row.id,
                    "path": str(found) if found and not error else None,
                    "landmark_id": row.landmark_id or None,
                    "error": error,
                }
            )
        return pd.DataFrame.from_records(records, columns=["id", "path", "landmark_id", "error"])
    records = []
    for p in sorted([*folder.glob("*"), *folder.glob("*/*")]):
        rel = p.relative_to(folder)
        if (
            p.suffix.lower() not in data.IMAGE_EXTENSIONS
            or any(part.startswith(".") for part in rel.parts)
            or not p.is_file()
        ):
            continue
        label = rel.parts[0] if len(rel.parts) == 2 else None
        records.append({"id": p.stem, "path": str(p), "landmark_id": label, "error": ""})
    if not records:
        raise ValueError(f"{folder}: no manifest.csv and no images (*.jpg, <landmark_id>/*.jpg)")
    return pd.DataFrame.from_records(records, columns=["id", "path", "landmark_id", "error"])


def load_test_images(
    images: str | os.PathLike,
    input_size: int,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    fetcher=None,
) -> pd.DataFrame:
    """The test images to predict: DataFrame(id, path, landmark_id, error), one row per test id.

    Args:
        images: a fetched folder (``DIR/manifest.csv`` with ``DIR/<id>.jpg`` or
            ``DIR/<landmark_id>/<id>.jpg``), a folder of images (``DIR/<id>.jpg`` or
            ``DIR/<landmark_id>/<id>.jpg``), or a catalog CSV (``id,url``), which is
            fetched first with ``landmarklib.fetch.fetch_catalog`` (resumable).
        input_size: the model's input size; a CSV is fetched at this size.
        fetch_dir: where a CSV's images go; default ``<csv folder>/<csv stem>_<size>px``.
        progress: show the fetch progress bar.
        fetcher: what fetches a CSV (default ``fetch.fetch_catalog``; the Dask engine passes its own).

    Rows whose image failed to fetch keep their id with ``path`` None and the
    reason in ``error``, so that a submission still lists every test id.
    """
    source = paths.resolve(images)
    if source.is_file() and source.suffix.lower() == ".csv":
        from . import fetch

        out = paths.resolve(fetch_dir) if fetch_dir else source.parent / f"{source.stem}_{input_size}px"
        (fetcher or fetch.fetch_catalog)(source, out, image_size=input_size, n_images=None, progress=progress)
        return _folder_images(out)
    if source.is_dir():
        return _folder_images(source)
    raise FileNotFoundError(f"{source}: neither a folder of images nor a CSV file")


# --------------------------------------------------------------------------- prediction


_INFERENCE = weakref.WeakKeyDictionary()  # model -> its traced inference function


def inference_function(model):
    """``x -> (probabilities, features)`` for ``model`` in inference mode, traced once for any batch size.

    Keras' ``predict``/``predict_on_batch`` trace a new graph for each new batch shape (the
    last, partial batch; one image for timing) and per loaded model; a few such calls in a
    row made TensorFlow log "triggered tf.function retracing" into the report. On TensorFlow
    this is one ``tf.function`` with an unknown batch dimension, traced once per model; on
    other backends, ``predict_on_batch``.

    ``features`` is the input of the final softmax ``Dense`` layer (named ``predictions``),
    from which ``log_probabilities`` computes exact log-probabilities; ``None`` when the model
    does not end in one.
    """
    cached = _INFERENCE.get(model)
    if cached is not None:
        return cached
    import keras

    head = model.layers[-1]
    ends_in_softmax = isinstance(head, keras.layers.Dense) and getattr(head.activation, "__name__", "") == "softmax"
    outputs = [model.outputs[0], head.input] if ends_in_softmax else [model.outputs[0]]
    both = keras.Model(model.inputs, outputs, name=f"{model.name}_inference")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        traced = tf.function(lambda x: both(x, training=False), input_signature=[spec], reduce_retracing=True)

        def run(x):
            out = traced(tf.convert_to_tensor(x, tf.float32))
            return [np.asarray(t) for t in (out if isinstance(out, (list, tuple)) else [out])]  # one output: a tensor

        traces = traced.experimental_get_tracing_count
    else:
        traces = None

        def run(x):
            out = both.predict_on_batch(np.asarray(x, dtype=np.float32))
            return [np.asarray(t) for t in (out if isinstance(out, (list, tuple)) else [out])]

    def fn(x):
        out = run(x)
        return out[0], (out[1] if ends_in_softmax else None)

    fn.head = head if ends_in_softmax else None
    fn.tracing_count = traces  # TensorFlow: how many graphs were traced (one, whatever the batch sizes)
    _INFERENCE[model] = fn
    return fn


def log_probabilities(model, probs: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    """Exact log-probabilities (float64), as the training loss sees them.

    Keras' cross-entropy on a softmax output uses the logits behind it, so a true class of
    probability 1e-13 costs 29.9; ``-log`` of the float32 probability, clipped at 1e-7 (Keras'
    epsilon), would cost at most 16.1 (the cause of issue 8's 6.89 against 10.11). With the
    softmax layer's input, the logits are recomputed here in float64; without it (a model not
    ending in a softmax ``Dense``), the clipped ``log`` of the probabilities is the best there is.
    """
    fn = inference_function(model)
    if features is None or fn.head is None:
        return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0))
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in fn.head.get_weights())
    logits = np.asarray(features, dtype=np.float64) @ kernel + bias
    top = logits.max(axis=1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


TTA_MODES = ("none", "flip")
"""Test-time augmentation: ``none``, or ``flip``: the mean of the model's outputs for each image and
its mirror image (left-right; landmarks are photographed from both sides, never upside down)."""


def check_tta(tta: str) -> str:
    """``tta`` if it is one of ``TTA_MODES``, else ``ValueError`` naming them."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, not {tta!r}")
    return tta


def tta_views(x: np.ndarray, tta: str = DEFAULT_TTA) -> list[np.ndarray]:
    """The views of a batch ``x`` (N, H, W, C) that test-time augmentation ``tta`` averages over."""
    return [x, x[:, :, ::-1]] if check_tta(tta) == "flip" else [x]


def predict_probabilities(model, x, batch_size: int = 64, with_log: bool = False, tta: str = DEFAULT_TTA):
    """Class probabilities for images ``x`` (N, S, S, 3) in 0..255 (or batches of them), shape (N, C).

    Args:
        model: a model mapping 0..255 RGB images to class probabilities.
        x: an array of images, or an iterable of ``x`` or ``(x, y)`` batches (``data.batches``).
        batch_size: images per forward pass (for an array).
        with_log: also return exact log-probabilities (``log_probabilities``).
        tta: ``TTA_MODES``: ``"flip"`` returns the mean over each image and its mirror image
            (the log-probabilities are then the log of that mean).

    Returns:
        probabilities (float32, as the model gives them), and with ``with_log`` the
        log-probabilities (float64) as a second value.
    """
    check_tta(tta)  # a wrong mode fails before any work
    fn = inference_function(model)
    n_classes = int(model.output_shape[-1])
    if isinstance(x, np.ndarray):
        x = np.asarray(x, dtype=np.float32)
        chunks = (x[i : i + max(1, batch_size)] for i in range(0, len(x), max(1, batch_size)))
    else:
        chunks = (b[0] if isinstance(b, tuple) else b for b in (x[i] for i in range(len(x))))
    probs, logs = [], []
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        views = [fn(np.ascontiguousarray(view)) for view in tta_views(chunk, tta)]
        probs.append(np.mean([p for p, _ in views], axis=0).astype(np.float32))
        if with_log:
            view_logs = [log_probabilities(model, p, features) for p, features in views]
            logs.append(np.logaddexp.reduce(view_logs, axis=0) - math.log(len(views)))
    probs = np.concatenate(probs) if probs else np.zeros((0, n_classes), dtype=np.float32)
    if not with_log:
        return probs
    return probs, (np.concatenate(logs) if logs else np.zeros((0, n_classes)))


def predict_chunks(
    model,
    landmark_ids,
    files: Sequence[str],
    size: int,
    batch_size: int = 64,
    top_k: int = 5,
    progress: bool = False,
    tta: str = DEFAULT_TTA,
):
    """Predict image files in chunks of ``8 * batch_size`` (the batches both engines run), with
    test-time augmentation ``tta`` (``TTA_MODES``).

    Returns:
        (class index per file, -1 when the file cannot be decoded; confidence
        (NaN when unreadable); ``top_k`` most probable landmark ids, space-separated;
        the decode error or "").
    """
    from tqdm import tqdm

    from . import data

    n = len(files)
    best = np.full(n, -1, dtype=np.int64)
    conf = np.full(n, np.nan)
    tops = np.full(n, "", dtype=object)
    errors = np.full(n, "", dtype=object)
    chunk = max(1, batch_size) * 8
    with tqdm(total=n, desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, n, chunk):
            rows = np.arange(start, min(n, start + chunk))
            part = list(files[start : start + chunk])
            bad: dict[str, str] = {}
            x = data.load_images(part, size, errors=bad, progress=False)
            probs = predict_probabilities(model, x, batch_size, tta=tta)
            good = np.array([f not in bad for f in part], dtype=bool)
            best[rows[good]] = probs[good].argmax(axis=1)
            conf[rows[good]] = probs[good].max(axis=1)
            tops[rows[good]] = [" ".join(map(str, r)) for r in top_k_ids(probs[good], landmark_ids, top_k)]
            errors[rows[~good]] = [bad[f] for f, ok in zip(part, good) if not ok]
            bar.update(len(rows))
    return best, conf, tops, errors


def predict(
    model_path: str | os.PathLike,
    images: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    top_k: int = 5,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    engine: str = "local",
    scheduler=None,
    n_workers: int | None = None,
    partition_images: int | None = None,
    tta: str = DEFAULT_TTA,
) -> pd.DataFrame:
    """Predict the landmark of every test image with a saved model.

    Args:
        model_path: a ``.keras`` file with its ``.labels.json`` beside it.
        images: a fetched test folder, a folder of images, or a test CSV (see ``load_test_images``).
        threshold: a prediction is *answered* when its confidence is at or above it.
        batch_size: images per forward pass.
        top_k: how many landmark ids ``top_ids`` lists.
        fetch_dir: where a CSV's images are fetched (see ``load_test_images``).
        progress: show progress bars.
        engine: ``local`` (this process) or ``dask`` (partitions on a Dask cluster,
            each worker loading the model once; see ``landmarklib.cluster``).
        scheduler: with ``engine="dask"``: a scheduler address, a ``Client``, or
            ``None`` for an embedded ``LocalCluster``.
        n_workers: worker processes of the embedded cluster (default: one per core).
        partition_images: with ``engine="dask"``: images per task (default
            ``cluster.DEFAULT_PARTITION_IMAGES``, rounded up to whole chunks of ``8 * batch_size``).
        tta: test-time augmentation (``TTA_MODES``; ``"flip"``: the mean over each image and its mirror image).

    Returns:
        DataFrame(id, landmark_id (Int64), confidence, answered, top_ids, error) in
        test-id order; ``top_ids`` is the ``top_k`` most probable landmark ids,
        space-separated. An image that failed to fetch or decode keeps its row with
        no landmark_id, NaN confidence and the reason in ``error``.
    """
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask', not {engine!r}")
    check_tta(tta)  # a wrong mode fails before any work
    if engine == "dask":
        from . import cluster

        with cluster.connect(scheduler, n_workers=n_workers, verbose=progress) as client:
            model_file = str(paths.resolve(model_path).resolve())
            cluster.check_visible(client, [model_file])
            size, landmark_ids = client.submit(cluster.model_info, model_file, pure=False).result()
            from .fetch.dask_engine import fetch_catalog_dask

            fetcher = functools.partial(fetch_catalog_dask, client=client)
            tests = load_test_images(images, size, fetch_dir=fetch_dir, progress=progress, fetcher=fetcher)
            readable = np.flatnonzero(tests["path"].notna().to_numpy())
            files = tests["path"].iloc[readable].tolist()  # absolute: workers read them (shared filesystem)
            found = cluster.predict_partitions(
                client,
                model_file,
                files,
                size,
                batch_size,
                top_k,
                progress=progress,
                partition_images=partition_images or cluster.DEFAULT_PARTITION_IMAGES,
                tta=tta,
            )
    else:
        from . import models

        model, landmark_ids = models.load(paths.resolve(model_path))
        size = int(model.input_shape[1])
        tests = load_test_images(images, size, fetch_dir=fetch_dir, progress=progress)
        readable = np.flatnonzero(tests["path"].notna().to_numpy())
        found = predict_chunks(
            model,
            landmark_ids,
            tests["path"].iloc[readable].tolist(),
            size,
            batch_size,
            top_k,
            progress=progress,
            tta=tta,
        )
    n = len(tests)
    best = np.full(n, -1, dtype=np.int64)
    conf = np.full(n, np.nan)
    tops = np.full(n, "", dtype=object)
    errors = tests["error"].fillna("").to_numpy(dtype=object)
    best[readable], conf[readable], tops[readable] = found[0], found[1], found[2]
    failed = readable[found[0] < 0]
    errors[failed] = found[3][found[0] < 0]
    return prediction_frame(tests["id"], landmark_ids, best, conf, tops, errors, threshold)


def prediction_frame(ids, landmark_ids, best, confidence, top_ids, errors, threshold: float) -> pd.DataFrame:
    """The predictions table of ``predict`` (either method): ``id, landmark_id, confidence, answered,
    top_ids, error``; a class index of -1 (an unreadable image) gives no landmark."""
    classes = np.asarray(landmark_ids, dtype=np.int64)
    landmark = pd.array([classes[b] if b >= 0 else pd.NA for b in best], dtype="Int64")
    confidence = np.asarray(confidence, dtype=float)
    return pd.DataFrame(
        {
            "id": pd.Series(ids).astype(str).to_numpy(),
            "landmark_id": landmark,
            "confidence": confidence,
            "answered": np.isfinite(confidence) & (confidence >= threshold),
            "top_ids": top_ids,
            "error": errors,
        }
    )


def write_submission(pred: pd.DataFrame, path: str | os.PathLike, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Write a Kaggle submission ``id,landmarks`` with ``"<landmark_id> <score>"`` per answered id.

    Every id of ``pred`` gets a row; ``landmarks`` is empty when the confidence is
    below ``threshold`` or there is no prediction. Returns the path written.
    """
    path = paths.resolve(path)
    conf = pred["confidence"].astype("float64").to_numpy()
    answered = np.isfinite(conf) & (conf >= threshold) & pred["landmark_id"].notna().to_numpy()
    landmarks = [
        f"{int(lid)} {c:.6f}" if ok else "" for lid, c, ok in zip(pred["landmark_id"].astype(object), conf, answered)
    ]
    return files.write_csv(pd.DataFrame({"id": pred["id"].astype(str), "landmarks": landmarks}), path)


def submission_path(predictions_csv: str | os.PathLike) -> Path:
    """Where ``landmarks predict`` writes the submission: ``<out stem>_submission.csv`` beside ``--out``."""
    p = Path(predictions_csv)
    return p.with_name(f"{p.stem}_submission.csv")


# --------------------------------------------------------------------------- timing


def time_model(
    model_path: str | os.PathLike,
    images,
    n_latency: int = 50,
    warmup: int = 5,
    batch_size: int = 64,
    n_batches: int = 4,
) -> dict:
    """Measure a saved model: load time, single-image latency, batched throughput.

    Single-image latency is ``inference_function(model)`` on one image already in
    memory: the model's graph traced once for any batch size, what a service answering
    one request at a time calls (``predict_on_batch`` would trace again per batch shape).
    It is the median and 90th percentile of ``n_latency`` calls after ``warmup`` calls
    (the first traces/compiles). The result comes
    back as a NumPy array, so asynchronous backends are timed to completion.
    ``predict_one_median_ms`` is the same image through ``model.predict``, which
    builds a data pipeline per call (shown to make that overhead visible; an eager
    ``model(x)`` call is slower still and is not what one should deploy).
    Throughput is ``predict_probabilities`` over ``n_batches`` batches of ``batch_size``.
    Image decoding is timed on its own (``decode_median_ms``) when files are given.

    Args:
        model_path: a ``.keras`` file (with its label map).
        images: uint8/float array (N, S, S, 3) in 0..255, or a folder/CSV accepted by ``load_test_images``.
        n_latency: timed single-image calls.
        warmup: untimed calls first.
        batch_size: images per batch for the throughput run.
        n_batches: batches in the throughput run (images are repeated when fewer).

    Returns:
        dict: load_seconds, latency_median_ms, latency_p90_ms, predict_one_median_ms,
        batch_images_per_second, batch_size, decode_median_ms (None for arrays),
        latency_method, backend.
    """
    import keras

    from . import data, models

    t0 = time.perf_counter()
    model, _ = models.load(paths.resolve(model_path))
    load_seconds = time.perf_counter() - t0
    size = int(model.input_shape[1])

    decode_ms = None
    if isinstance(images, np.ndarray):
        x = images.astype(np.float32)
    else:
        files = load_test_images(images, size, progress=False)["path"].dropna().tolist()
        if not files:
            raise ValueError(f"{images}: no readable image to time")
        files = files[: max(n_latency, batch_size)]
        decode = []
        for f in files[: max(1, n_latency)]:
            t = time.perf_counter()
            data.load_images([f], size, progress=False)
            decode.append((time.perf_counter() - t) * 1000)
        decode_ms = statistics.median(decode)
        x = data.load_images(files, size, progress=False).astype(np.float32)
    if len(x) == 0:
        raise ValueError("no images to time")

    def timed_ms(fn, i: int) -> float:
        one = x[i % len(x) : i % len(x) + 1]
        t = time.perf_counter()
        fn(one)
        return (time.perf_counter() - t) * 1000

    infer = inference_function(model)
    for i in range(max(1, warmup)):
        timed_ms(infer, i)
    latencies = np.array([timed_ms(infer, i) for i in range(max(1, n_latency))])
    predict_one = [timed_ms(lambda one: model.predict(one, verbose=0), i) for i in range(max(2, min(10, n_latency)))]

    n_total = batch_size * max(1, n_batches)
    xb = np.resize(x, (n_total, *x.shape[1:])).astype(np.float32)
    predict_probabilities(model, xb[:batch_size], batch_size=batch_size)
    t = time.perf_counter()
    predict_probabilities(model, xb, batch_size=batch_size)
    batch_seconds = time.perf_counter() - t

    return {
        "load_seconds": load_seconds,
        "latency_median_ms": float(np.median(latencies)),
        "latency_p90_ms": float(np.percentile(latencies, 90)),
        "predict_one_median_ms": float(statistics.median(predict_one[1:])),
        "batch_images_per_second": n_total / batch_seconds,
        "batch_size": batch_size,
        "decode_median_ms": decode_ms,
        "latency_method": "one traced inference call (inference_function), one image in memory",
        "backend": keras.backend.backend(),
    }


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


# --------------------------------------------------------------------------- CLI


def add_cli(subparsers) -> None:
    """Register ``landmarks predict``."""
    p = subparsers.add_parser(
        "predict",
        help="predict the landmark of test images with a saved model; write predictions and a Kaggle submission",
        description=(
            "Predict every test image with MODEL. Writes OUT (id,landmark_id,confidence,answered,top_ids,error) "
            "and OUT_STEM_submission.csv beside it (Kaggle format id,landmarks; empty below the threshold). "
            "A CSV given to --images is fetched first into OUT_STEM_images/ at the model's input size."
        ),
    )
    p.add_argument("--model", required=True, help="saved model (.keras) with its .labels.json beside it")
    p.add_argument(
        "--method",
        choices=("classifier", "retrieval"),
        default="classifier",
        help="classifier: the softmax's best landmark and probability; retrieval: a kNN vote over "
        "the model's embedding index (landmarklib.retrieval; confidence = similarity score)",
    )
    p.add_argument(
        "--index", default=None, help="retrieval: the embedding index (default: MODEL_STEM.index.npz beside the model)"
    )
    p.add_argument("--k", type=int, default=5, help="retrieval: neighbours per query (default 5)")
    p.add_argument("--images", required=True, help="fetched test folder, folder of images, or test CSV (id,url)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="answer only at or above this confidence (default: the model's own, chosen on validation "
        f"queries and kept beside it as <name>.threshold.json; without one, the study's {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument(
        "--tta",
        choices=TTA_MODES,
        default=None,
        help=f"test-time augmentation: none or flip (each image and its mirror image); default: the "
        f"retrieval index's own, else {DEFAULT_TTA}",
    )
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: this process (default); dask: partitions on a Dask cluster (see --scheduler)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --engine dask: a running scheduler (tcp://host:8786); default: a local cluster",
    )
    p.add_argument(
        "--dask-workers",
        type=int,
        default=None,
        metavar="N",
        help="with --engine dask and no --scheduler: worker processes (default: one per core)",
    )
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    out = paths.resolve(args.out)
    model_path = paths.resolve(args.model)
    if not model_path.is_file():
        print(f"error: model not found: {model_path}", file=sys.stderr)
        return 2
    method = getattr(args, "method", "classifier")
    if args.engine != "dask" and (args.scheduler or args.dask_workers):
        print("error: --scheduler and --dask-workers need --engine dask", file=sys.stderr)
        return 2
    if method == "retrieval" and args.engine == "dask":
        print("error: --method retrieval runs with --engine local only", file=sys.stderr)
        return 2
    from .cluster import NotShared, SchedulerUnreachable

    try:
        with files.one_writer(out, f"landmarks predict --out {out.name}"):  # one run writes these outputs
            return _predict_and_write(args, out, model_path, method)
    except (SchedulerUnreachable, NotShared, files.FolderBusy) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _predict_and_write(args: argparse.Namespace, out: Path, model_path: Path, method: str) -> int:
    """``landmarks predict`` once its arguments are checked and its output's writer lock is held."""
    try:
        threshold, source = scoring.model_threshold(model_path, args.threshold, DEFAULT_THRESHOLD)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"threshold:   {threshold:g} ({source})")
    if method == "retrieval":
        from . import retrieval

        index = paths.resolve(args.index) if args.index else retrieval.index_path(model_path)
        if not index.is_file():
            print(f"error: embedding index not found: {index}", file=sys.stderr)
            return 2
        pred = retrieval.predict(
            model_path,
            args.images,
            index=index,
            threshold=threshold,
            k=args.k,
            batch_size=args.batch_size,
            fetch_dir=out.with_name(f"{out.stem}_images"),
            tta=args.tta,
        )
    else:
        pred = predict(
            model_path,
            args.images,
            threshold=threshold,
            batch_size=args.batch_size,
            fetch_dir=out.with_name(f"{out.stem}_images"),
            engine=args.engine,
            scheduler=args.scheduler,
            n_workers=args.dask_workers,
            tta=args.tta or DEFAULT_TTA,
        )
    files.write_csv(pred, out)
    sub = write_submission(pred, submission_path(out), threshold)
    n_failed = int(pred["confidence"].isna().sum())
    print(
        f"predictions: {out} ({len(pred)} images, {int(pred['answered'].sum())} answered at >= {threshold:g}"
        + (f", {n_failed} unreadable" if n_failed else "")
        + ")"
    )
    print(f"submission:  {sub}")
    return 0
