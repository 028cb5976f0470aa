"""Work past one machine with Dask: the client, and batch prediction over partitions.

``connect(scheduler)`` gives a ``dask.distributed.Client``:

- ``scheduler=None``: an embedded ``LocalCluster`` of worker *processes* on this
  machine (the laptop case; ``n_workers`` of them, one thread each by default);
- ``"tcp://host:8786"``: an existing cluster (``dask scheduler`` and
  ``dask worker tcp://host:8786`` started on the machines, or any deployment);
- a ``Client``: used as is and left open (tests and notebooks reuse one cluster).

The dashboard link is printed: the Dask dashboard shows the tasks as they run.

Batch prediction (``predict_partitions``): the test images are cut into
partitions in test-id order; each task loads the model once per worker process
(``_cached_model``: a Keras model is never pickled into a task, only its path
travels) and predicts its partition in the same batches as the local loop
(``evaluate.predict_chunks``), so the numbers are bit-identical to the local run's
on the same machine. Image files are read by the workers: on a cluster the test
folder and the model must be on a filesystem every worker sees.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from . import evaluate

DEFAULT_PARTITION_IMAGES = 2048
"""Test images per prediction task (rounded up to whole local chunks of ``8 * batch_size``)."""

# Worker-side state: one entry per model file per worker process.
_MODELS: dict[tuple, tuple] = {}
_MODEL_LOCK = threading.Lock()
MODEL_LOADS: collections.Counter = collections.Counter()
"""How many times this process loaded each model path (read by the tests through ``Client.run``)."""


def default_workers() -> int:
    """Worker processes of the embedded cluster: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class SchedulerUnreachable(RuntimeError):
    """The ``--scheduler`` address did not answer; ``str(error)`` is the one line to show."""


class NotShared(RuntimeError):
    """A worker cannot see a file or folder the run needs; ``str(error)`` is the one line to show."""


def _missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]


def check_visible(client, paths: Sequence[str]) -> None:
    """Every worker sees every one of ``paths`` (on a cluster: a shared filesystem), else ``NotShared``."""
    found = client.run(_missing, [str(p) for p in paths])
    bad = {worker: missing for worker, missing in found.items() if missing}
    if bad:
        worker, missing = sorted(bad.items())[0]
        more = f" (and {len(bad) - 1} more workers)" if len(bad) > 1 else ""
        raise NotShared(f"worker {worker} cannot see {missing[0]}: the workers need a filesystem they all share{more}")


@contextlib.contextmanager
def connect(
    scheduler=None, n_workers: int | None = None, threads_per_worker: int = 1, verbose: bool = True
) -> Iterator:
    """A Dask client for the duration of a ``with`` block.

    Args:
        scheduler: ``None`` (embedded ``LocalCluster``), a scheduler address, or a ``Client``.
        n_workers: worker processes of the embedded cluster (default: one per core).
        threads_per_worker: threads per embedded worker process (tasks run at once per worker).
        verbose: print the workers and the dashboard link.

    Yields:
        ``dask.distributed.Client``; an embedded cluster is closed at the end.
    """
    from dask.distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as error:
            raise SchedulerUnreachable(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    else:
        env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        cluster = LocalCluster(
            n_workers=n_workers or default_workers(),
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # any free port: several clusters may run on one machine
            silence_logs=logging.CRITICAL,  # e.g. a heartbeat lost while closing; task errors reach the driver
            env=env,
        )
        client = Client(cluster)
    try:
        if verbose:
            workers = client.scheduler_info().get("workers", {})
            threads = sum(w.get("nthreads", 0) for w in workers.values())
            where = f"scheduler {scheduler}" if scheduler else "local cluster"
            print(f"dask: {where}, {len(workers)} workers, {threads} threads; dashboard {client.dashboard_link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- prediction (worker side)


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
            from . import models

            model, landmark_ids = models.load(model_path)
            _MODELS[key] = (model, list(landmark_ids), threading.Lock())
            MODEL_LOADS[model_path] += 1
        return _MODELS[key]


def model_info(model_path: str) -> tuple[int, list]:
    """(input size, landmark ids) of a model, read on a worker (which keeps it loaded)."""
    model, landmark_ids, _ = _cached_model(model_path)
    return int(model.input_shape[1]), landmark_ids


def predict_partition(
    model_path: str, files: Sequence[str], size: int, batch_size: int, top_k: int, tta: str = evaluate.DEFAULT_TTA
):
    """One task: predict ``files`` with the worker's copy of the model (see ``evaluate.predict_chunks``)."""
    model, landmark_ids, lock = _cached_model(model_path)
    with lock:
        return evaluate.predict_chunks(model, landmark_ids, list(files), size, batch_size, top_k, tta=tta)


def model_loads() -> dict:
    """This worker's model load counts (for ``Client.run``)."""
    return dict(MODEL_LOADS)


# --------------------------------------------------------------------------- prediction (driver side)


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
    tta: str = evaluate.DEFAULT_TTA,
):
    """Predict ``files`` on the cluster, one task per partition; results in ``files`` order
    (``tta``: ``evaluate.predict_chunks``' test-time augmentation).

    Returns:
        The concatenation of ``evaluate.predict_chunks``' results over the partitions:
        (class index per file, -1 when unreadable; confidence; top ids; error per file).
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    model_path = str(Path(model_path).resolve())
    check_visible(client, [model_path, *files[:1]])
    chunk = max(1, batch_size) * 8  # evaluate.predict's chunk: same batches, same numbers
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
