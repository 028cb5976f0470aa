"""The Dask prediction engine: the test images cut into partitions in test-id order, one task each.

Each task loads the model once per worker process (``_cached_model``: only its path travels) and
predicts in the local engine's batches (``inference.predict_chunks``): the numbers are bit-identical
to a local run's on the same machine. The workers read the image files: on a cluster the test folder
and the model must be on a filesystem every worker sees. The driver imports no Keras.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from dask.distributed import as_completed
from tqdm import tqdm

from .. import cluster, paths
from ..evaluate import DEFAULT_THRESHOLD, DEFAULT_TTA
from ..fetch.dask_engine import fetch_catalog_dask
from . import core

DEFAULT_PARTITION_IMAGES = 2048
"""Test images per prediction task (rounded up to whole local chunks of ``8 * batch_size``)."""

# Worker-side state: one entry per model file per worker process.
_MODELS: dict[tuple, tuple] = {}
_MODEL_LOCK = threading.Lock()
MODEL_LOADS: collections.Counter = collections.Counter()
"""How many times this process loaded each model path (read by the tests through ``Client.run``)."""


def predict_dask(
    model_path: str | os.PathLike,
    images: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 64,
    top_k: int = 5,
    fetch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    tta: str = DEFAULT_TTA,
    scheduler=None,
    n_workers: int | None = None,
    partition_images: int | None = None,
) -> pd.DataFrame:
    """``landmarklib.predict.predict`` on a Dask cluster (the same table), a CSV fetched by ``fetch_catalog_dask``.

    Args:
        scheduler: a scheduler address, a ``Client``, or ``None`` for an embedded ``LocalCluster``.
        n_workers: worker processes of the embedded cluster (default: one per core).
        partition_images: images per task (default ``DEFAULT_PARTITION_IMAGES``, rounded up to whole
            chunks of ``8 * batch_size``).
    """
    with cluster.connect(scheduler, n_workers=n_workers, verbose=progress) as client:
        model_file = str(paths.resolve(model_path).resolve())
        cluster.check_visible(client, [model_file])
        size, landmark_ids = client.submit(model_info, model_file, pure=False).result()
        fetcher = functools.partial(fetch_catalog_dask, client=client)
        tests = core.load_test_images(images, size, fetch_dir=fetch_dir, progress=progress, fetcher=fetcher)
        readable = np.flatnonzero(tests["path"].notna().to_numpy())
        files = tests["path"].iloc[readable].tolist()  # absolute: workers read them (shared filesystem)
        partition = partition_images or DEFAULT_PARTITION_IMAGES
        found = predict_partitions(client, model_file, files, size, batch_size, top_k, partition, progress, tta)
    return core.table(tests, readable, found, landmark_ids, threshold)


# --------------------------------------------------------------------------- worker side


def _cached_model(model_path: str):
    """(model, landmark_ids, lock) for ``model_path``, loaded once per worker process.

    The key includes the file's mtime and size, so a model retrained at the same
    path is loaded again. The lock serialises ``predict`` calls on one model when a
    worker runs several threads.
    """
    st = os.stat(model_path)
    key = (model_path, st.st_mtime_ns, st.st_size)
    with _MODEL_LOCK:
        if key not in _MODELS:
            from ..nets import models  # Keras on the workers only: the driver never loads the model

            model, landmark_ids = models.load(model_path)
            _MODELS[key] = (model, list(landmark_ids), threading.Lock())
            MODEL_LOADS[model_path] += 1
        return _MODELS[key]


def model_info(model_path: str) -> tuple[int, list]:
    """(input size, landmark ids) of a model, read on a worker (which keeps it loaded)."""
    model, landmark_ids, _ = _cached_model(model_path)
    return int(model.input_shape[1]), landmark_ids


def predict_partition(
    model_path: str, files: Sequence[str], size: int, batch_size: int, top_k: int, tta: str = DEFAULT_TTA
):
    """One task: predict ``files`` with the worker's copy of the model (see ``inference.predict_chunks``)."""
    from ..nets import inference  # Keras on the workers only, as in _cached_model

    model, landmark_ids, lock = _cached_model(model_path)
    with lock:
        return inference.predict_chunks(model, landmark_ids, list(files), size, batch_size, top_k, tta=tta)


def model_loads() -> dict:
    """This worker's model load counts (for ``Client.run``)."""
    return dict(MODEL_LOADS)


# --------------------------------------------------------------------------- driver side


def partition_bounds(n: int, partition_images: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) of each partition of ``n`` rows: whole chunks of ``chunk`` rows, in order."""
    per = max(chunk, -(-max(1, partition_images) // chunk) * chunk)
    return [(start, min(n, start + per)) for start in range(0, n, per)]


def predict_partitions(
    client,
    model_path: str | os.PathLike,
    files: Sequence[str],
    size: int,
    batch_size: int = 64,
    top_k: int = 5,
    partition_images: int = DEFAULT_PARTITION_IMAGES,
    progress: bool = True,
    tta: str = DEFAULT_TTA,
):
    """Predict ``files`` on the cluster, one task per partition; results in ``files`` order
    (``tta``: ``inference.predict_chunks``' test-time augmentation).

    Returns:
        The concatenation of ``inference.predict_chunks``' results over the partitions:
        (class index per file, -1 when unreadable; confidence; top ids; error per file).
    """
    model_path = str(Path(model_path).resolve())
    cluster.check_visible(client, [model_path, *files[:1]])
    chunk = max(1, batch_size) * 8  # the local engine's chunk: same batches, same numbers
    bounds = partition_bounds(len(files), partition_images, chunk)
    futures = {
        client.submit(predict_partition, model_path, list(files[a:b]), size, batch_size, top_k, tta, pure=False): i
        for i, (a, b) in enumerate(bounds)
    }
    parts: list = [None] * len(bounds)
    with tqdm(total=len(files), desc="predict (dask)", unit="img", disable=not progress) as bar:
        for future in as_completed(futures):
            i = futures[future]
            parts[i] = future.result()
            bar.update(bounds[i][1] - bounds[i][0])
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, object), np.zeros(0, object)
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(4))
