"""Fetched images for training and prediction: the train/validation split, decoding, and the label map.

A fetched folder (``landmarks fetch``) holds ``DIR/<landmark_id>/<id>.jpg`` and
``DIR/manifest.csv``. ``load_split`` keeps the rows fetched ``ok`` whose file is
there, applies the ``min_images`` filter, splits train/validation class by class
(seeded) and numbers the classes by sorted ``landmark_id``. Without a manifest,
the folder is scanned: ``DIR/<landmark_id>/<name>.<image extension>``, so a
folder of one's own images works too.

``load_images`` decodes in threads (PIL releases the GIL while decoding and resizing;
``Image.draft`` decodes a large JPEG at reduced scale); the Keras batches built on it are
``landmarklib.nets.pipeline``'s. No Keras here.

The label map (class index -> landmark_id) is saved next to a model as JSON
``{"landmark_ids": [...]}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm  # plain text bars: tqdm.auto warns in a kernel without ipywidgets

from . import catalog, config, files, images, manifest, paths

MANIFEST = manifest.NAME
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
_ORIENTATION = 0x0112
_INTEGER = re.compile(r"\d{1,18}")


@dataclass
class Split:
    """A fetched folder, filtered and split for training.

    Attributes:
        train: rows for training; columns ``path`` (str, absolute), ``id`` (str),
            ``landmark_id`` (int64), ``label`` (int32 class index).
        val: rows for validation, same columns.
        landmark_ids: ``landmark_ids[label]`` is the landmark of class ``label``
            (sorted ascending).
        dropped: rows left out and why: ``failed`` (manifest status not ok),
            ``missing_file``, ``unlabelled``, ``unreadable`` (scanned files that
            are not images) and ``min_images``.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    landmark_ids: list[int]
    dropped: dict[str, int]


# --------------------------------------------------------------------------- reading a folder


def _manifest_rows(image_dir: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of ``image_dir/manifest.csv`` fetched ok whose file exists."""
    # A resumed fetch may have an earlier row for an id: its ok row (else its last) counts.
    frame = manifest.one_per_id(manifest.read(image_dir))

    ok = frame["status"] == "ok"
    dropped = {"failed": int((~ok).sum())}
    frame = frame[ok]
    labelled = frame["landmark_id"] != ""
    dropped["unlabelled"] = int((~labelled).sum())
    frame = frame[labelled]
    paths = [str(image_dir / label / f"{image_id}.jpg") for label, image_id in zip(frame["landmark_id"], frame["id"])]
    exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
    dropped["missing_file"] = int((~exists).sum())
    rows = pd.DataFrame(
        {
            "path": np.asarray(paths, dtype=object)[exists],
            "id": frame["id"].to_numpy()[exists],
            "landmark_id": frame["landmark_id"].to_numpy()[exists].astype(np.int64),
        }
    )
    return rows, dropped


def _is_image(path: str) -> bool:
    """Whether PIL recognises the file's content as an image (reads the header only)."""
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def _scanned_rows(image_dir: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The images under ``image_dir/<landmark_id>/``, for a folder without a manifest."""
    records: list[tuple[str, str, int]] = []
    unlabelled = 0
    for entry in sorted(os.scandir(image_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            unlabelled += Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
            continue
        if not _INTEGER.fullmatch(entry.name):
            raise ValueError(
                f"{entry.path}: folder name {entry.name!r} is not an integer landmark_id "
                f"(expected {image_dir}/<landmark_id>/<image>, or a {MANIFEST})"
            )
        landmark_id = int(entry.name)
        for image in sorted(os.scandir(entry.path), key=lambda e: e.name):
            suffix = Path(image.name).suffix.lower()
            if image.is_file() and not image.name.startswith(".") and suffix in IMAGE_EXTENSIONS:
                records.append((image.path, Path(image.name).stem, landmark_id))
    readable = [_is_image(path) for path, _, _ in records]
    rows = pd.DataFrame(
        [record for record, ok in zip(records, readable) if ok], columns=["path", "id", "landmark_id"]
    ).astype({"path": object, "id": object, "landmark_id": np.int64})
    dropped = {"failed": 0, "unlabelled": unlabelled, "missing_file": 0, "unreadable": readable.count(False)}
    return rows, dropped


def read_folder(image_dir: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, int]]:
    """The labelled images of a fetched folder (from its manifest) or of any ``DIR/<landmark_id>/`` tree.

    Args:
        image_dir: the folder.

    Returns:
        (rows, dropped): rows with ``path``, ``id``, ``landmark_id`` (int64) in
        manifest (or sorted folder) order; dropped counts ``failed``,
        ``unlabelled``, ``missing_file`` and ``unreadable`` rows.

    Raises:
        FileNotFoundError: no such folder.
        catalog.CatalogError: a manifest without the needed columns or with a bad
            landmark_id, naming file, line and column.
        ValueError: without a manifest, a sub-folder not named by an integer.
    """
    image_dir = Path(image_dir).absolute()
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no such image folder")
    if (image_dir / MANIFEST).is_file():
        rows, dropped = _manifest_rows(image_dir)
    else:
        rows, dropped = _scanned_rows(image_dir)
    dropped.setdefault("unreadable", 0)
    return rows, dropped


def load_split(settings: config.SplitConfig | str | os.PathLike, **changes) -> Split:
    """Read a fetched folder, drop unusable rows and small classes, split train/validation.

    Args:
        settings: a ``config.SplitConfig`` (``train_dir``, relative to the project root or
            absolute; ``min_images``, the fewest images a landmark needs to be kept;
            ``val_fraction``, the share of each class for validation, singletons staying in
            train; ``seed``), or the folder alone (the other settings at their defaults).
        changes: settings that differ from ``settings`` (``min_images=10``).

    Returns:
        A ``Split``; see its docstring.

    Raises:
        ValueError: no usable image left; and as ``read_folder``.
    """
    if not isinstance(settings, config.SplitConfig):
        settings = config.SplitConfig(train_dir=str(settings))
    settings = dataclasses.replace(settings, **changes)
    train_dir = paths.resolve(settings.train_dir)
    rows, dropped = read_folder(train_dir)
    kept = catalog.filter_min_images(rows, settings.min_images)
    dropped["min_images"] = len(rows) - len(kept)
    if kept.empty:
        raise ValueError(f"{train_dir}: no usable labelled image (dropped: {dropped})")
    landmark_ids = sorted(int(v) for v in kept["landmark_id"].unique())
    kept = kept.assign(label=np.searchsorted(landmark_ids, kept["landmark_id"].to_numpy()).astype(np.int32))
    train, val = catalog.stratified_split(kept, val_fraction=settings.val_fraction, seed=settings.seed)
    return Split(
        train=train.reset_index(drop=True),
        val=val.reset_index(drop=True),
        landmark_ids=landmark_ids,
        dropped=dropped,
    )


@dataclass
class OpenSplit:
    """A split for open-set evaluation: some landmarks held out of training entirely.

    Attributes:
        closed: the ``Split`` of the known landmarks only (train/validation, class indexes
            over the known landmarks); the held-out landmarks' images are in neither part.
        held_out: the landmarks held out (sorted); their images are queries with no right answer.
        held_out_rows: the held-out landmarks' images of the folder (``path``, ``id``,
            ``landmark_id``): open-set validation queries, never trained on.
    """

    closed: Split
    held_out: list[int]
    held_out_rows: pd.DataFrame


def holdout_landmarks(landmark_ids, n: int, seed: int = 42) -> list[int]:
    """A seeded choice of ``n`` landmarks to hold out of training (sorted).

    The same landmarks and seed always give the same choice (``numpy.random.default_rng(seed)``
    drawing from the sorted ids); at least two landmarks must stay known.
    """
    pool = sorted({int(v) for v in landmark_ids})
    if n < 0 or n > len(pool) - 2:
        raise ValueError(f"cannot hold out {n} of {len(pool)} landmarks (at least 2 must stay known)")
    chosen = np.random.default_rng(seed).choice(len(pool), size=int(n), replace=False)
    return sorted(pool[i] for i in chosen)


def load_open_split(
    train_dir: str | os.PathLike, holdout: int, min_images: int = 1, val_fraction: float = 0.2, seed: int = 42
) -> OpenSplit:
    """``load_split`` with ``holdout`` landmarks (a seeded choice among those kept) left out of it.

    Args:
        train_dir: the fetched folder.
        holdout: how many landmarks to hold out (0: the closed split alone).
        min_images, val_fraction, seed: as ``load_split``; ``seed`` also picks the held-out landmarks.

    Returns:
        An ``OpenSplit``.
    """
    rows, dropped = read_folder(train_dir)
    kept = catalog.filter_min_images(rows, min_images)
    dropped["min_images"] = len(rows) - len(kept)
    if kept.empty:
        raise ValueError(f"{train_dir}: no usable labelled image (dropped: {dropped})")
    held_out = holdout_landmarks(kept["landmark_id"].unique(), holdout, seed)
    is_held = kept["landmark_id"].isin(held_out).to_numpy()
    known = kept[~is_held]
    landmark_ids = sorted(int(v) for v in known["landmark_id"].unique())
    known = known.assign(label=np.searchsorted(landmark_ids, known["landmark_id"].to_numpy()).astype(np.int32))
    train, val = catalog.stratified_split(known, val_fraction=val_fraction, seed=seed)
    closed = Split(
        train=train.reset_index(drop=True),
        val=val.reset_index(drop=True),
        landmark_ids=landmark_ids,
        dropped={**dropped, "held_out": int(is_held.sum())},
    )
    return OpenSplit(closed=closed, held_out=held_out, held_out_rows=kept[is_held].reset_index(drop=True))


# --------------------------------------------------------------------------- label map


def save_label_map(path: str | os.PathLike, landmark_ids: list[int]) -> Path:
    """Write ``{"landmark_ids": [...]}`` (class index -> landmark_id) to ``path``; returns the path."""
    return files.write_json(path, {"landmark_ids": [int(v) for v in landmark_ids]}, indent=None)


def load_label_map(path: str | os.PathLike) -> list[int]:
    """Read a label map written by ``save_label_map``.

    Raises:
        ValueError: not JSON, or no ``landmark_ids`` list of integers (names the file).
    """
    try:
        landmark_ids = json.loads(Path(path).read_text(encoding="utf-8")).get("landmark_ids")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f'{path}: not a label map (expected JSON {{"landmark_ids": [...]}})') from err
    if not isinstance(landmark_ids, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in landmark_ids
    ):
        raise ValueError(f"{path}: 'landmark_ids' must be a list of integers")
    return landmark_ids


# --------------------------------------------------------------------------- decoding


def _decode(path: str, size: int) -> np.ndarray:
    """One image as uint8 (size, size, 3), decoded as ``landmarklib.images`` does for fetch.

    A JPEG is decoded at the smallest DCT scale still >= ``size``. A plain RGB
    image without EXIF rotation or transparency (what ``landmarks fetch``
    writes) is taken as it is; any other goes through ``images.load_rgb``
    (EXIF rotation, first GIF frame, alpha on white). Then ``images.resize_square``
    stretches it to ``size`` x ``size``.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))
        if img.mode == "RGB" and "transparency" not in img.info and img.getexif().get(_ORIENTATION, 1) == 1:
            img.load()
            rgb = img
        else:
            rgb = images.load_rgb(path, size)
        if rgb.size != (size, size):
            rgb = images.resize_square(rgb, size, "stretch")
        return np.asarray(rgb)


def decode_into(out: np.ndarray, index: int, path: str, size: int, errors: dict[str, str], warn: bool) -> None:
    """Decode ``path`` into ``out[index]``; a bad image leaves zeros, is recorded in ``errors`` and,
    with ``warn``, warned about (once per path)."""
    try:
        out[index] = _decode(path, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        out[index] = 0
        reason = f"{type(err).__name__}: {err}"
        if warn and path not in errors:
            warnings.warn(f"{path}: cannot decode image, using a black image ({reason})", stacklevel=2)
        errors[path] = reason


def default_workers() -> int:
    """Decoding threads: one per CPU core this process may use (a GPU box's 16 included), at least 2.

    PIL decodes and resizes with the GIL released, so the threads run on all cores.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(2, cores)


def load_images(
    paths: list[str] | pd.Series,
    input_size: int,
    *,
    workers: int | None = None,
    errors: dict[str, str] | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Decode images for evaluation or prediction, in parallel threads.

    Args:
        paths: image files.
        input_size: side of the square output, in pixels.
        workers: decoding threads (default ``default_workers()``).
        errors: when given, receives ``path -> reason`` for every image that
            could not be decoded; those come back black, and without ``errors``
            each is warned about instead (the caller that collects reports them).
        progress: show a progress bar.

    Returns:
        uint8 array (N, input_size, input_size, 3).
    """
    image_files = [str(p) for p in paths]
    out = np.zeros((len(image_files), input_size, input_size, 3), dtype=np.uint8)
    warn, errors = errors is None, {} if errors is None else errors
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        jobs = pool.map(
            lambda i: decode_into(out, i, image_files[i], input_size, errors, warn), range(len(image_files))
        )
        for _ in tqdm(jobs, total=len(image_files), desc="images", unit="img", disable=not progress):
            pass
    return out
