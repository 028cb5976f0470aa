"""What every prediction engine shares (no Keras): the test images, the predictions table, the submission.

load_test_images    a fetched folder, an image folder or a CSV (fetched first) -> ids and paths
prediction_frame    the predictions table: id, landmark_id, confidence, answered, top_ids, error
write_submission    the Kaggle submission ``id,landmarks``; ``submission_path`` beside ``--out``
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data, fetch, files, manifest, paths
from ..evaluate import DEFAULT_THRESHOLD


def _folder_images(folder: Path) -> pd.DataFrame:
    """A fetched folder (manifest.csv) or an image folder -> DataFrame(id, path, landmark_id, error)."""
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
        out = paths.resolve(fetch_dir) if fetch_dir else source.parent / f"{source.stem}_{input_size}px"
        (fetcher or fetch.fetch_catalog)(source, out, image_size=input_size, n_images=None, progress=progress)
        return _folder_images(out)
    if source.is_dir():
        return _folder_images(source)
    raise FileNotFoundError(f"{source}: neither a folder of images nor a CSV file")


def table(tests: pd.DataFrame, readable: np.ndarray, found: tuple, landmark_ids, threshold: float) -> pd.DataFrame:
    """The predictions table of every test image from an engine's results on its ``readable`` rows:
    ``found`` is ``inference.predict_chunks``' (class index, confidence, top ids, error) per readable row."""
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
