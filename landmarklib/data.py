"""Fetched images -> Keras input: the train/validation split, batches, and the label map.

A fetched folder (``landmarks fetch``) holds ``DIR/<landmark_id>/<id>.jpg`` and
``DIR/manifest.csv``. ``load_split`` keeps the rows fetched ``ok`` whose file is
there, applies the ``min_images`` filter, splits train/validation class by class
(seeded) and numbers the classes by sorted ``landmark_id``. Without a manifest,
the folder is scanned: ``DIR/<landmark_id>/<name>.<image extension>``, so a
folder of one's own images works too.

``batches`` feeds ``model.fit`` with a ``keras.utils.PyDataset`` (no ``tf.data``:
the same code runs under the TensorFlow and JAX backends). It decodes the images
of each batch in threads (PIL releases the GIL while decoding and resizing;
``Image.draft`` decodes a large JPEG at reduced scale) and keeps the decoded
pixels in a temporary file (``DecodedCache``), read back in later epochs at a
fraction of the cost of decoding. Neither grows the process's memory with the
number of images: per image, it holds a path, a label, its place in the order and a flag.

The label map (class index -> landmark_id) is saved next to a model as JSON
``{"landmark_ids": [...]}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm  # plain text bars: tqdm.auto warns in a kernel without ipywidgets

from . import augment, catalog, config, files, images, manifest, paths

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


def _decode_into(out: np.ndarray, index: int, path: str, size: int, errors: dict[str, str], warn: bool) -> None:
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
            lambda i: _decode_into(out, i, image_files[i], input_size, errors, warn), range(len(image_files))
        )
        for _ in tqdm(jobs, total=len(image_files), desc="images", unit="img", disable=not progress):
            pass
    return out


# --------------------------------------------------------------------------- batches for Keras


class DecodedCache:
    """Decoded images kept in an unlinked temporary file, one fixed-size record per row.

    Reading a record back (``os.pread``) costs a fraction of decoding the JPEG
    again, and, unlike an array or a memory map, the records live in the OS
    page cache, not in the process's memory: RSS does not grow with the data.
    A failed write (disk full) turns the cache off with a warning.

    Args:
        n_rows: number of records.
        input_size: side of each square RGB uint8 record.
        directory: where the temporary file goes (default: the system's temp folder).
    """

    def __init__(self, n_rows: int, input_size: int, directory: str | None = None):
        self.record_bytes = input_size * input_size * 3
        self.file = tempfile.TemporaryFile(prefix="landmarks-decoded-", dir=directory)
        self.stored = np.zeros(n_rows, dtype=bool)
        self.enabled = True

    def read(self, row: int, out: np.ndarray) -> bool:
        """Copy record ``row`` into ``out``; False when it is not stored."""
        if not (self.enabled and self.stored[row]):
            return False
        record = os.pread(self.file.fileno(), self.record_bytes, row * self.record_bytes)
        out[...] = np.frombuffer(record, np.uint8).reshape(out.shape)
        return True

    def write(self, row: int, image: np.ndarray) -> None:
        """Store ``image`` (C-contiguous uint8) as record ``row``."""
        if not self.enabled:
            return
        try:
            os.pwrite(self.file.fileno(), image, row * self.record_bytes)
        except OSError as err:
            self.enabled = False
            warnings.warn(f"decoded-image cache turned off ({err}); decoding every epoch", stacklevel=2)
            return
        self.stored[row] = True


class ImageBatches(keras.utils.PyDataset):
    """Batches ``(x float32 (B, S, S, 3) in 0..255, y int32 (B,))`` decoded from image files.

    The images of a batch are decoded in parallel by the dataset's own
    threads; Keras's enqueuer is not used (``workers=1``): it would serve
    batches prefetched for one epoch in the next. Instead, each call for
    batch ``i`` starts decoding batches ``i + 1 .. i + prefetch`` of the same
    epoch in a background thread, so the next batch is ready when the step
    asks for it (a new epoch's order drops what was read ahead).

    With ``replicas`` > 1 (data parallelism: every batch split evenly across
    that many devices), a shuffled (training) dataset leaves out the last
    ``len % replicas`` rows of each epoch's order (other rows each epoch),
    and an unshuffled (evaluation, prediction) one pads its last batch with
    copies of its last image and yields ``(x, y, sample_weight)``, weight 0
    on the ``padding`` copies: metrics count the real rows only, and
    ``predict`` returns ``padding`` extra rows at the end.

    With ``shuffle``, the rows are permuted anew for each epoch by
    ``numpy.random.default_rng([seed, epoch])``, so a seed and an epoch
    always give the same batches. ``epoch`` moves on at each end of an
    epoch that Keras began (the iterator resets that Keras also reports
    through ``on_epoch_end`` do not count; the JAX backend's one-batch
    build pass before the first epoch of an unbuilt model does). The last
    batch holds the remainder. With a ``DecodedCache``, each image is
    decoded once and read back in later epochs. Undecodable images come
    back black and are listed in ``errors`` (path -> reason).

    With an ``augmentation`` (``augment.Augmentation``), each image of a batch is replaced by an
    augmented copy, made in the same threads as the decoding (the cache keeps the originals); the
    draw of an image depends only on ``(seed, epoch, row)``.
    """

    def __init__(
        self,
        paths: list[str],
        labels: np.ndarray,
        input_size: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        cache: DecodedCache | None,
        workers: int,
        replicas: int = 1,
        prefetch: int = 2,
        dtype: str = "float32",
        augmentation: augment.Augmentation | None = None,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self.paths = paths
        self.labels = labels
        self.input_size = input_size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.cache = cache
        self.decode_workers = workers
        self.replicas = replicas
        self.prefetch = prefetch
        self.dtype = np.dtype(dtype)
        self.augmentation = augmentation
        n = len(paths)
        # rows used per epoch (training: a multiple of replicas) and copies padding the last batch
        self.n_rows = n - n % replicas if shuffle else n
        self.padding = 0 if shuffle else -n % replicas
        self.errors: dict[str, str] = {}
        # created here (no thread starts before the first job): the main and the prefetch thread share them
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="landmarks-decode") if workers > 1 else None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="landmarks-prefetch") if prefetch else None
        self._ahead: dict[int, Any] = {}
        self._in_epoch = False
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Use the row order of ``epoch`` (e.g. to resume training at that epoch)."""
        self.epoch = epoch
        n = len(self.paths)
        self.order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        self._ahead = {}  # batches read ahead in the previous order

    def __len__(self) -> int:
        return math.ceil(self.n_rows / self.batch_size)

    def _load(self, x: np.ndarray, i: int, row: int) -> None:
        """Decode row ``row`` into ``x[i]`` and keep it in the cache."""
        _decode_into(x, i, self.paths[row], self.input_size, self.errors, warn=True)  # training: say so
        if self.cache is not None:
            self.cache.write(row, x[i])

    def _rows(self, index: int) -> np.ndarray:
        """The rows of batch ``index`` in the current order (the last one trimmed or padded)."""
        rows = self.order[index * self.batch_size : min((index + 1) * self.batch_size, self.n_rows)]
        if self.padding and index == len(self) - 1:
            rows = np.concatenate([rows, np.repeat(rows[-1:], self.padding)])
        return rows

    def __getitem__(self, index: int) -> tuple:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0 .. {len(self) - 1})")
        ahead = self._ahead.pop(index, None)
        batch = ahead.result() if ahead is not None else self._batch(self._rows(index), self.epoch)
        if self._reader is not None:
            for later in range(index + 1, min(index + 1 + self.prefetch, len(self))):
                if later not in self._ahead:
                    self._ahead[later] = self._reader.submit(self._batch, self._rows(later), self.epoch)
        if self.replicas > 1 and not self.shuffle:
            weights = np.ones(len(batch[1]), np.float32)
            if self.padding and index == len(self) - 1:
                weights[-self.padding :] = 0.0
            return (*batch, weights)
        return batch

    def _batch(self, rows: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode (or read from the cache) the images of ``rows``, augmented for ``epoch``; their labels."""
        size = self.input_size
        x = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        missing = [i for i, row in enumerate(rows) if self.cache is None or not self.cache.read(row, x[i])]
        if len(missing) == 1 or self.decode_workers == 1:
            for i in missing:
                self._load(x, i, rows[i])
        elif missing:
            list(self._pool.map(lambda i: self._load(x, i, rows[i]), missing))
        if self.augmentation is not None:
            x = self.augmented(x, rows, epoch, self.augmentation)
        return (x if self.dtype == np.uint8 else x.astype(self.dtype)), self.labels[rows]

    def augmented(self, x: np.ndarray, rows: np.ndarray, epoch: int, augmentation: augment.Augmentation) -> np.ndarray:
        """uint8 images ``x`` of ``rows`` through ``augmentation``, drawn for ``epoch``, in the decoding threads."""
        parallel = self._pool.map if self._pool is not None and len(rows) > 1 else map
        return augmentation.batch(x, self.seed, epoch, rows, map_fn=parallel)

    def on_epoch_begin(self) -> None:
        self._in_epoch = True

    def on_epoch_end(self) -> None:
        if self._in_epoch:
            self.set_epoch(self.epoch + 1)
        self._in_epoch = False


def batches(
    frame: pd.DataFrame,
    input_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    *,
    cache: bool = True,
    workers: int | None = None,
    replicas: int = 1,
    prefetch: int = 2,
    dtype: str = "float32",
    augmentation: augment.Augmentation | None = None,
) -> Any:
    """A ``keras.utils.PyDataset`` of ``(x, y)`` batches for ``model.fit``/``evaluate``/``predict``.

    Args:
        frame: rows with ``path`` and ``label`` (a ``Split.train`` or ``Split.val``);
            without ``label``, y is all zeros (for prediction).
        input_size: side of the square images fed to the model, in pixels.
        batch_size: images per batch (the last batch holds the remainder).
        shuffle: permute the rows anew each epoch (seeded; for training).
        seed: seed of the permutations.
        cache: decode each image once, keeping it in a temporary file
            (``DecodedCache``, ``input_size**2 * 3`` bytes per row) for later epochs.
        workers: threads decoding the images of a batch (default ``default_workers()``).
        replicas: devices each batch is split across (``devices.replicas()``); ``batch_size``
            must be a multiple of it. Above 1, training batches leave out the last rows of
            each epoch and evaluation batches are padded (see ``ImageBatches``).
        prefetch: batches read ahead in a background thread (0: none).
        dtype: of x. ``"uint8"`` sends a quarter of the bytes to the device and leaves the
            conversion to the model (its float32 ``Input`` casts on the device; the values are
            the same). Measured on this project's shared 2-core machine (load ~10), a batch of
            128 images of 224 px read from the cache took 45-56 ms as float32, 7-16 ms as uint8
            (median of 14 reads, two runs); a GPU step at 4,500 images/s leaves 28 ms.
        augmentation: a training augmentation (``augment.Augmentation``) applied to every image in
            the decoding threads, drawn from ``(seed, epoch, row)``; ``None``: the images as they are.

    Returns:
        an ``ImageBatches`` (a ``keras.utils.PyDataset``) yielding x float32
        (B, S, S, 3) with values 0..255 and y int32 (B,).
    """
    if batch_size < 1 or input_size < 1:
        raise ValueError(f"batch_size and input_size must be positive (got {batch_size}, {input_size})")
    if len(frame) == 0:
        raise ValueError("no rows to make batches from")
    if replicas < 1 or batch_size % replicas:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly across {replicas} devices: use a multiple of {replicas}"
        )
    labels = frame["label"].to_numpy(np.int32) if "label" in frame else np.zeros(len(frame), np.int32)
    return ImageBatches(
        paths=[str(p) for p in frame["path"]],
        labels=labels,
        input_size=input_size,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=DecodedCache(len(frame), input_size) if cache else None,
        workers=workers or default_workers(),
        replicas=replicas,
        prefetch=prefetch,
        dtype=dtype,
        augmentation=augmentation,
    )
