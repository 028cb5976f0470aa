"""The Keras input pipeline: fetched images -> ``keras.utils.PyDataset`` batches for ``fit``, ``evaluate``, ``predict``.

``batches`` feeds ``model.fit`` with an ``ImageBatches`` (no ``tf.data``: the same code runs under the
TensorFlow and JAX backends). It decodes the images of each batch in threads (``data``'s decoding: PIL
releases the GIL) and keeps the decoded pixels in a temporary file (``DecodedCache``), read back in later
epochs at a fraction of the cost of decoding; neither grows the process's memory with the number of images.
``augmented_copies`` adds the study's augmented copies (``augment: add``). With mixup or CutMix
(``augment.Mixing``), training batches carry float32 ``(B, C)`` soft targets instead of integer labels.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import pandas as pd

from .. import augment, data


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
    """Batches ``(x float32 (B, S, S, 3) in 0..255, y int32 (B,))`` decoded from image files
    (with a ``mixing``: ``y`` float32 ``(B, num_classes)``).

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

    With a ``mixing`` (``augment.Mixing``: mixup, CutMix; shuffled batches only), each batch, once
    augmented, is mixed as ``Mixing.batch`` says, drawn from ``(seed, epoch, index)`` (the batch's
    index in the epoch), and its ``y`` is the float32 ``(B, num_classes)`` soft targets; read ahead
    like the rest, so a resumed run (``set_epoch``) serves the batches an uninterrupted one would.
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
        mixing: augment.Mixing | None = None,
        num_classes: int | None = None,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        if mixing is not None and (not shuffle or not num_classes):
            raise ValueError(
                "mixing is for training batches: it needs shuffle=True and num_classes (the targets' width)"
            )
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
        self.mixing = mixing
        self.num_classes = num_classes
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
        data.decode_into(x, i, self.paths[row], self.input_size, self.errors, warn=True)  # training: say so
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
        batch = ahead.result() if ahead is not None else self._batch(self._rows(index), self.epoch, index)
        if self._reader is not None:
            for later in range(index + 1, min(index + 1 + self.prefetch, len(self))):
                if later not in self._ahead:
                    self._ahead[later] = self._reader.submit(self._batch, self._rows(later), self.epoch, later)
        if self.replicas > 1 and not self.shuffle:
            weights = np.ones(len(batch[1]), np.float32)
            if self.padding and index == len(self) - 1:
                weights[-self.padding :] = 0.0
            return (*batch, weights)
        return batch

    def _batch(self, rows: np.ndarray, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode (or read from the cache) the images of ``rows``, augmented for ``epoch``; their labels
        (with a ``mixing``: batch ``index`` of the epoch mixed, and its soft targets)."""
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
        x = x if self.dtype == np.uint8 else x.astype(self.dtype)
        if self.mixing is not None:
            return self.mixed(x, self.labels[rows], epoch, index, self.mixing)
        return x, self.labels[rows]

    def mixed(self, x: np.ndarray, labels: np.ndarray, epoch: int, index: int, mixing: augment.Mixing) -> tuple:
        """Batch ``index`` of ``epoch`` (images ``x``, integer ``labels``) through ``mixing``: ``(x, soft targets)``."""
        parallel = self._pool.map if self._pool is not None and len(x) > 1 else map
        return mixing.batch(x, labels, self.num_classes, self.seed, epoch, index, map_fn=parallel)

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
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    num_classes: int | None = None,
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
        workers: threads decoding the images of a batch (default ``data.default_workers()``).
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
        mixup_alpha, cutmix_alpha: mixup and CutMix of each training batch after the augmentation
            (``augment.Mixing``, drawn from ``(seed, epoch, batch index)``; ``TrainConfig``'s settings;
            both 0: off). On, they need ``shuffle`` and ``num_classes``, and y becomes soft targets.
        num_classes: the width of the soft targets (the model's classes); only with mixing.

    Returns:
        an ``ImageBatches`` (a ``keras.utils.PyDataset``) yielding x float32
        (B, S, S, 3) with values 0..255 and y int32 (B,) (mixing: float32 (B, num_classes) targets
        summing to 1 per row).
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
    mixing = augment.mixing_of(mixup_alpha, cutmix_alpha)
    return ImageBatches(
        paths=[str(p) for p in frame["path"]],
        labels=labels,
        input_size=input_size,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=DecodedCache(len(frame), input_size) if cache else None,
        workers=workers or data.default_workers(),
        replicas=replicas,
        prefetch=prefetch,
        dtype=dtype,
        augmentation=augmentation,
        mixing=mixing,
        num_classes=num_classes if mixing is not None else None,
    )


def augmented_copies(batches, augmentation: augment.Augmentation | None = None):
    """Training batches with the study's augmented copies added: ``augment: add``.

    Batch ``2i`` is ``batches[i]`` as it is, batch ``2i + 1`` the same images augmented (drawn from
    the batches' seed, the epoch and each image's row): an epoch holds every image twice, once as it
    is and once augmented, as the study "added" its augmented images "to the input data".

    With mixing (``batches(..., mixup_alpha=..., cutmix_alpha=...)``), the copies take it over: ``batches``
    then serves its batches unmixed, and each of the ``2 * len(batches)`` batches here (originals and
    copies alike) is mixed, drawn from ``(seed, epoch, its index here)``.

    Args:
        batches: a ``batches`` sequence of ``(x, y)`` (its epochs, shuffling and resume kept),
            without an augmentation of its own.
        augmentation: the copies' augmentation (default: the study's).

    Returns:
        A ``keras.utils.PyDataset`` of twice as many batches.
    """
    return AugmentedCopies(batches, augmentation or augment.Augmentation("study"))


class AugmentedCopies(keras.utils.PyDataset):
    """``batches`` with every batch followed by its augmented copy (see ``augmented_copies``)."""

    def __init__(self, batches, augmentation: augment.Augmentation):
        super().__init__()
        self.base = batches
        self.augmentation = augmentation
        # mixing acts on the batches served here, copies included: the base batches come unmixed
        self.mixing, batches.mixing = batches.mixing, None
        batches._ahead = {}  # anything it read ahead mixed

    def __len__(self):
        return 2 * len(self.base)

    def __getitem__(self, index):
        x, y = self.base[index // 2]
        if index % 2:  # the same dtype as the originals (uint8 batches stay uint8: one input signature)
            base = self.base
            copies = base.augmented(
                x.astype(np.uint8, copy=False), base._rows(index // 2), base.epoch, self.augmentation
            )
            x = copies if x.dtype == np.uint8 else copies.astype(x.dtype)
        if self.mixing is not None:
            return self.base.mixed(x, y, self.base.epoch, index, self.mixing)
        return x, y

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def on_epoch_begin(self):
        self.base.on_epoch_begin()

    def on_epoch_end(self):
        self.base.on_epoch_end()
