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

    gap, accuracy, top_k_accuracy, per_landmark_accuracy, confusion_matrix
    threshold_curve           GAP, coverage and precision as the threshold rises
    score                     all of the above for a prediction table and a solution CSV
    load_test_images          a fetched folder, an image folder or a CSV -> ids and paths
    predict, write_submission the Kaggle submission ``id,landmarks``
    time_model, timing_table  load time, single-image latency, batched throughput

Keras is imported inside the functions that need it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import paths

DEFAULT_THRESHOLD = 0.045
"""The study printed a landmark only when its probability was above 4.5%."""

STUDY_SECONDS_PER_IMAGE = {"res_incep": 33.14, "resnet50": 24.37}
"""Average seconds per test image the study reported (Justification section)."""


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


def _id_rank(ids, n: int) -> np.ndarray:
    """Rank of each image id in ascending order (the tie-break); index order by default."""
    if ids is None:
        return np.arange(n)
    arr = np.asarray(ids)
    if arr.shape != (n,):
        raise ValueError(f"ids has shape {arr.shape}, expected ({n},)")
    if arr.dtype == object:
        arr = arr.astype(str)
    return np.unique(arr, return_inverse=True)[1].ravel()


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
    order = np.lexsort((_id_rank(ids, n)[rows], -conf[rows]))
    return correct[rows][order], int((~true_missing).sum())


def _gap_from_ranked(correct_sorted: np.ndarray, n_landmarks: int) -> float:
    """GAP of predictions already in ranking order."""
    if n_landmarks <= 0:
        raise ValueError("no test image shows a landmark: GAP is undefined")
    hits = correct_sorted.astype(np.float64)
    precision_at_i = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at_i * hits).sum() / n_landmarks)


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
    return _gap_from_ranked(correct_sorted, n_landmarks)


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


def top_k_accuracy(probs: np.ndarray, labels: Sequence[int], k: int = 5) -> float:
    """Share of rows whose true class is among the ``k`` most probable.

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
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k] if k < probs.shape[1] else np.argsort(-probs, axis=1)
    return float((top == labels[:, None]).any(axis=1).mean())


def top_k_ids(probs: np.ndarray, landmark_ids: Sequence[int], k: int = 5) -> np.ndarray:
    """The ``k`` most probable landmark ids per row, best first, shape (N, min(k, C))."""
    probs = np.asarray(probs)
    n, c = probs.shape
    k = min(k, c)
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k] if k < c else np.tile(np.arange(c), (n, 1))
    order = np.argsort(-np.take_along_axis(probs, top, axis=1), axis=1, kind="stable")
    return np.asarray(landmark_ids)[np.take_along_axis(top, order, axis=1)]


def per_landmark_accuracy(predicted, actual) -> pd.DataFrame:
    """Accuracy per true landmark: columns landmark_id, n, correct, accuracy (most images first)."""
    pred_keys, pred_missing = _label_keys(predicted)
    true_keys, true_missing = _label_keys(actual)
    keep = ~true_missing
    frame = pd.DataFrame(
        {"landmark_id": true_keys[keep], "hit": ((pred_keys == true_keys) & ~pred_missing)[keep]}
    )
    table = frame.groupby("landmark_id", sort=False)["hit"].agg(n="size", correct="sum").reset_index()
    table["correct"] = table["correct"].astype(int)
    table["accuracy"] = table["correct"] / table["n"]
    table["landmark_id"] = _as_int_if_possible(table["landmark_id"])
    return table.sort_values(["n", "landmark_id"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


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
    cols = np.array([other if m else index.get(k, other) for k, m in zip(pred_keys[keep], pred_missing[keep])], dtype=np.int64)
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
    order = rows[np.lexsort((_id_rank(ids, n)[rows], -conf[rows]))]
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
                "gap": _gap_from_ranked(ranked_hit[:kept], m),
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["threshold", "answered", "answered_share", "precision_answered", "gap"]
    )


# --------------------------------------------------------------------------- scoring


def read_solution(path: str | os.PathLike) -> pd.DataFrame:
    """A ``test_solution.csv`` (``id,landmark_id``; empty landmark_id = no landmark)."""
    path = Path(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for column in ("id", "landmark_id"):
        if column not in frame.columns:
            raise ValueError(f"{path}: missing column {column!r} (columns: {', '.join(frame.columns)})")
    return frame[["id", "landmark_id"]]


def score(pred: pd.DataFrame, solution, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Every test-set number for one prediction table (the output of ``predict``).

    Args:
        pred: DataFrame with id, landmark_id, confidence (and top_ids for top-5).
        solution: ``test_solution.csv`` path, or a DataFrame with id, landmark_id.
            Every solution id is scored; an id missing from ``pred`` has no prediction.
        threshold: predictions below it are not answered.

    Returns:
        dict: gap (answers at or above the threshold), gap_all (every prediction),
        threshold, answered_share, answered_precision, top1, top5 (among images
        that show a landmark), n_test, n_landmark_images, n_answered.
    """
    truth = solution if isinstance(solution, pd.DataFrame) else read_solution(solution)
    truth = truth[["id", "landmark_id"]].astype({"id": str})
    table = truth.rename(columns={"landmark_id": "actual"}).merge(
        pred.astype({"id": str}), on="id", how="left", validate="one_to_one"
    )
    conf = table["confidence"].astype("float64").to_numpy()
    ids = table["id"].to_numpy()
    answered = np.isfinite(conf) & (conf >= threshold)
    predicted_all = table["landmark_id"].astype(object).where(np.isfinite(conf), None)
    predicted = predicted_all.where(answered, None)
    true_keys, true_missing = _label_keys(table["actual"])
    pred_keys, _ = _label_keys(predicted_all)
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
        match = (_label_keys(tops.to_numpy())[0] == true_keys[rows]) & ~true_missing[rows]
        in_top = pd.Series(match).groupby(rows).any().reindex(range(len(table)), fill_value=False).to_numpy()
        result["top5"] = float(in_top[~true_missing].mean())
    return result


# --------------------------------------------------------------------------- test images


def _folder_images(folder: Path) -> pd.DataFrame:
    """A fetched folder (manifest.csv) or an image folder -> DataFrame(id, path, landmark_id, error)."""
    from . import data

    manifest = folder / "manifest.csv"
    if manifest.is_file():
        rows = pd.read_csv(manifest, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        for column in ("id", "landmark_id", "status"):
            if column not in rows.columns:
                raise ValueError(f"{manifest}: missing column {column!r}")
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
                {"id": row.id, "path": str(found) if found and not error else None,
                 "landmark_id": row.landmark_id or None, "error": error}
            )
        frame = pd.DataFrame.from_records(records, columns=["id", "path", "landmark_id", "error"])
        return frame.drop_duplicates("id", keep="last").reset_index(drop=True)
    records = []
    for p in sorted([*folder.glob("*"), *folder.glob("*/*")]):
        rel = p.relative_to(folder)
        if p.suffix.lower() not in data.IMAGE_EXTENSIONS or any(part.startswith(".") for part in rel.parts) or not p.is_file():
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

    Rows whose image failed to fetch keep their id with ``path`` None and the
    reason in ``error``, so that a submission still lists every test id.
    """
    source = paths.resolve(images)
    if source.is_file() and source.suffix.lower() == ".csv":
        from . import fetch

        out = paths.resolve(fetch_dir) if fetch_dir else source.parent / f"{source.stem}_{input_size}px"
        fetch.fetch_catalog(source, out, size=input_size, progress=progress)
        return _folder_images(out)
    if source.is_dir():
        return _folder_images(source)
    raise FileNotFoundError(f"{source}: neither a folder of images nor a CSV file")


# --------------------------------------------------------------------------- prediction


def predict_probabilities(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities for images ``x`` (N, S, S, 3) in 0..255, shape (N, C)."""
    if len(x) == 0:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.asarray(model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0))


def predict(
    model_path: str | os.PathLike,
    images: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    top_k: int = 5,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
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

    Returns:
        DataFrame(id, landmark_id (Int64), confidence, answered, top_ids, error) in
        test-id order; ``top_ids`` is the ``top_k`` most probable landmark ids,
        space-separated. An image that failed to fetch or decode keeps its row with
        no landmark_id, NaN confidence and the reason in ``error``.
    """
    from tqdm import tqdm

    from . import data, models

    model, landmark_ids = models.load(paths.resolve(model_path))
    size = int(model.input_shape[1])
    tests = load_test_images(images, size, fetch_dir=fetch_dir, progress=progress)
    n = len(tests)
    best = np.full(n, -1, dtype=np.int64)
    conf = np.full(n, np.nan)
    tops = np.full(n, "", dtype=object)
    errors = tests["error"].fillna("").to_numpy(dtype=object)
    readable = np.flatnonzero(tests["path"].notna().to_numpy())
    chunk = max(1, batch_size) * 8
    with tqdm(total=len(readable), desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, len(readable), chunk):
            rows = readable[start : start + chunk]
            files = tests["path"].iloc[rows].tolist()
            bad: dict[str, str] = {}
            x = data.load_images(files, size, errors=bad, progress=False)
            probs = predict_probabilities(model, x, batch_size)
            good = np.array([f not in bad for f in files], dtype=bool)
            best[rows[good]] = probs[good].argmax(axis=1)
            conf[rows[good]] = probs[good].max(axis=1)
            tops[rows[good]] = [" ".join(map(str, r)) for r in top_k_ids(probs[good], landmark_ids, top_k)]
            errors[rows[~good]] = [bad[f] for f, ok in zip(files, good) if not ok]
            bar.update(len(rows))
    ids = np.asarray(landmark_ids, dtype=np.int64)
    landmark = pd.array([ids[b] if b >= 0 else pd.NA for b in best], dtype="Int64")
    return pd.DataFrame(
        {
            "id": tests["id"].astype(str).to_numpy(),
            "landmark_id": landmark,
            "confidence": conf,
            "answered": np.isfinite(conf) & (conf >= threshold),
            "top_ids": tops,
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame({"id": pred["id"].astype(str), "landmarks": landmarks}).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


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

    Single-image latency is ``model.predict_on_batch`` on one image already in
    memory: the model's compiled predict function, what a service answering one
    request at a time calls. It is the median and 90th percentile of ``n_latency``
    calls after ``warmup`` calls (the first traces/compiles). The result comes
    back as a NumPy array, so asynchronous backends are timed to completion.
    ``predict_one_median_ms`` is the same image through ``model.predict``, which
    builds a data pipeline per call (shown to make that overhead visible; an eager
    ``model(x)`` call is slower still and is not what one should deploy).
    Throughput is ``model.predict`` over ``n_batches`` batches of ``batch_size``.
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

    for i in range(max(1, warmup)):
        timed_ms(model.predict_on_batch, i)
    latencies = np.array([timed_ms(model.predict_on_batch, i) for i in range(max(1, n_latency))])
    predict_one = [timed_ms(lambda one: model.predict(one, verbose=0), i) for i in range(max(2, min(10, n_latency)))]

    n_total = batch_size * max(1, n_batches)
    xb = np.resize(x, (n_total, *x.shape[1:])).astype(np.float32)
    model.predict(xb[:batch_size], batch_size=batch_size, verbose=0)
    t = time.perf_counter()
    model.predict(xb, batch_size=batch_size, verbose=0)
    batch_seconds = time.perf_counter() - t

    return {
        "load_seconds": load_seconds,
        "latency_median_ms": float(np.median(latencies)),
        "latency_p90_ms": float(np.percentile(latencies, 90)),
        "predict_one_median_ms": float(statistics.median(predict_one[1:])),
        "batch_images_per_second": n_total / batch_seconds,
        "batch_size": batch_size,
        "decode_median_ms": decode_ms,
        "latency_method": "model.predict_on_batch, one image in memory",
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
        study = STUDY_SECONDS_PER_IMAGE.get(name, math.nan)
        rows.append(
            {
                "model": name,
                "load_seconds": t["load_seconds"],
                "latency_median_ms": t["latency_median_ms"],
                "latency_p90_ms": t["latency_p90_ms"],
                "batch_images_per_second": t["batch_images_per_second"],
                "study_seconds_per_image": study,
                "study_over_measured": study * 1000 / t["latency_median_ms"],
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
    p.add_argument("--method", choices=("classifier", "retrieval"), default="classifier",
                   help="classifier: the softmax's best landmark and probability; retrieval: a kNN vote over "
                        "the model's embedding index (landmarklib.retrieval; confidence = similarity score)")
    p.add_argument("--index", default=None,
                   help="retrieval: the embedding index (default: MODEL_STEM.index.npz beside the model)")
    p.add_argument("--k", type=int, default=5, help="retrieval: neighbours per query (default 5)")
    p.add_argument("--images", required=True, help="fetched test folder, folder of images, or test CSV (id,url)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"answer only at or above this confidence (default {DEFAULT_THRESHOLD})")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    out = paths.resolve(args.out)
    model_path = paths.resolve(args.model)
    if not model_path.is_file():
        print(f"error: model not found: {model_path}", file=sys.stderr)
        return 2
    if getattr(args, "method", "classifier") == "retrieval":
        from . import retrieval

        index = paths.resolve(args.index) if args.index else retrieval.index_path(model_path)
        if not index.is_file():
            print(f"error: embedding index not found: {index}", file=sys.stderr)
            return 2
        pred = retrieval.predict(model_path, args.images, index=index, threshold=args.threshold, k=args.k,
                                 batch_size=args.batch_size, fetch_dir=out.with_name(f"{out.stem}_images"))
    else:
        pred = predict(
            model_path,
            args.images,
            threshold=args.threshold,
            batch_size=args.batch_size,
            fetch_dir=out.with_name(f"{out.stem}_images"),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pred.to_csv(tmp, index=False)
    os.replace(tmp, out)
    sub = write_submission(pred, submission_path(out), args.threshold)
    n_failed = int(pred["confidence"].isna().sum())
    print(f"predictions: {out} ({len(pred)} images, {int(pred['answered'].sum())} answered at >= {args.threshold}"
          + (f", {n_failed} unreadable" if n_failed else "") + ")")
    print(f"submission:  {sub}")
    return 0
