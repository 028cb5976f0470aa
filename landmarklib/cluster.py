"""Work past one machine with Dask: the client, and whether its workers see the files a run needs.

``connect(scheduler)`` gives a ``dask.distributed.Client``:

- ``scheduler=None``: an embedded ``LocalCluster`` of worker *processes* on this
  machine (the laptop case; ``n_workers`` of them, one thread each by default);
- ``"tcp://host:8786"``: an existing cluster (``dask scheduler`` and
  ``dask worker tcp://host:8786`` started on the machines, or any deployment);
- a ``Client``: used as is and left open (tests and notebooks reuse one cluster).

The dashboard link is printed: the Dask dashboard shows the tasks as they run.

The engines that run on it: ``fetch.dask_engine`` and ``predict.dask_engine``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence


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
    from dask.distributed import Client, LocalCluster  # dask is slow to import: only when a cluster is asked for

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
