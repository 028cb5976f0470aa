"""The local fetch engine: a catalog CSV -> ``DIR/<landmark_id>/<id>.jpg`` + ``DIR/manifest.csv`` on one machine.

``fetch_catalog`` reads the catalog (a bad row becomes a failed manifest row with its reason,
unless ``strict``), folds in what an earlier run left (``manifest.fold``), and runs the
per-row core (``core.fetch_rows``) over the rows still to do: in this process on
``workers`` threads for small jobs, else in chunks on a ``ProcessPoolExecutor`` of one
process per core, each running ``workers / processes`` download threads (image bytes never
cross processes; Pillow releases the GIL while decoding), fed rows through a queue. Rows already fetched with a valid
image are handed to the workers last, which only check their images. Results are appended
to the journal as they come back (``manifest.Journal``), and ``manifest.csv`` is written in
catalog order at the end; a rerun after a crash or ``kill -9`` keeps the rows that are ``ok``
with a valid image and fetches only the others (a kill costs the chunks in flight).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .. import files, manifest
from ..config import FetchConfig
from . import core

CONNECTION_REASONS = frozenset(
    {
        core.HOST_UNREACHABLE,
        "DNS lookup failed",
        "connection refused",
        "connection error",
        "TLS error",
        "TLS certificate error",
        "connect timeout",
    }
)
_SMALL_JOB = 64  # rows to fetch under which no worker process is started
_BATCH_ROWS, _BATCH_SECONDS = 32, 0.25  # in-process results journalled together (one flush)


class WorkerError(RuntimeError):
    """A worker process died; the journal keeps what was done, so a rerun resumes."""


@dataclasses.dataclass
class FetchSummary:
    """What a fetch did.

    Attributes:
        n_rows: input rows (after ``limit``).
        ok: rows fetched and written by this run.
        failed: rows that failed (see ``failed_by_reason`` and the manifest).
        skipped: rows not fetched because an earlier run had them ``ok`` with a valid image.
        failed_by_reason: failures per reason, most frequent first (details in parentheses dropped).
        seconds: wall time of the run.
        images_per_second: ``ok / seconds``.
        out_dir: the output folder.
        manifest_path: ``out_dir/manifest.csv``.
        empty_folders_removed: landmark folders left empty and removed.
        bad_rows: rows failed for a problem of the catalog itself (no url, bad landmark_id, ...).
        unreachable_hosts: hosts given up on (``host unreachable``), sorted.
    """

    n_rows: int
    ok: int
    failed: int
    skipped: int
    failed_by_reason: dict[str, int]
    seconds: float
    images_per_second: float
    out_dir: str
    manifest_path: str
    empty_folders_removed: int
    bad_rows: int = 0
    unreachable_hosts: list[str] = dataclasses.field(default_factory=list)

    @property
    def images_ok(self) -> int:
        """Rows with an image in place after the run (fetched now or before)."""
        return self.ok + self.skipped

    @property
    def network_down(self) -> bool:
        """Nothing could be fetched, and every row that was tried failed to reach its host."""
        tried = {r: n for r, n in self.failed_by_reason.items() if r not in _row_problem_reasons()}
        return self.images_ok == 0 and bool(tried) and all(_is_connection(r) for r in tried)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``images_ok`` included), for tables and metrics files."""
        return {**dataclasses.asdict(self), "images_ok": self.images_ok}

    def report(self) -> str:
        """A few lines for people: counts, throughput, failures by reason."""
        lines = [
            f"{self.n_rows} rows -> {self.out_dir} in {self.seconds:.1f} s: "
            f"ok {self.ok}, failed {self.failed}, skipped {self.skipped} (already done); "
            f"{self.images_per_second:.1f} images/s"
        ]
        if self.network_down:
            hosts = ", ".join(self.unreachable_hosts[:5]) + (", ..." if len(self.unreachable_hosts) > 5 else "")
            lines.append(
                "nothing could be fetched: the network or the hosts are unreachable"
                + (f" ({len(self.unreachable_hosts)} hosts given up: {hosts})" if hosts else "")
                + "; a rerun tries them again"
            )
        elif self.images_ok == 0 and self.n_rows:
            lines.append("nothing could be fetched")
        if self.failed_by_reason:
            width = max(len(reason) for reason in self.failed_by_reason)
            lines.append("failed by reason:")
            lines += [f"  {reason:<{width}}  {count}" for reason, count in self.failed_by_reason.items()]
        lines.append(f"manifest: {self.manifest_path}; empty folders removed: {self.empty_folders_removed}")
        return "\n".join(lines)


def _row_problem_reasons() -> tuple[str, ...]:
    from ..catalog import ROW_PROBLEMS

    return ROW_PROBLEMS


def _is_connection(reason: str) -> bool:
    return any(reason.startswith(r) for r in CONNECTION_REASONS)


# --------------------------------------------------------------------------- planning


def _read_input(csv_path: Path, strict: bool, images: str | None = None, out: Path | None = None):
    """The catalog's rows with their problems (``catalog.read_rows``) and whether it has labels.

    With ``images`` (a source: ``sources``), the rows' urls point into it, and a row whose image
    is not there has that reason as its problem (``catalog.read_image_rows``' forms are read).
    """
    from .. import catalog

    if images:
        from . import sources

        frame = catalog.read_rows(csv_path, require_labels=False, require_url=False)
        urls, reasons = sources.locate(frame["id"], images, out / sources.INDEX_DIR if out else None)
        frame["url"] = urls  # the catalog's own problems come first, then the source's
        frame.loc[frame["problem"] == "", "problem"] = reasons[frame["problem"] == ""]
        if strict and (frame["problem"] != "").any():
            first = frame[frame["problem"] != ""].iloc[0]
            raise catalog.CatalogError(csv_path, None, "id", f"{first['id']!r}: {first['problem']}")
        return frame, "landmark_id" in frame.columns
    if strict:
        frame = catalog.read_catalog(csv_path, require_labels=False, strict=True)
        frame = frame.astype({c: str for c in frame.columns}).assign(problem="")
    else:
        frame = catalog.read_rows(csv_path, require_labels=False)
    return frame, "landmark_id" in frame.columns


def _plan(rows, labelled: bool, previous) -> tuple[Iterator[dict], int, int]:
    """Tasks (``seq``, ``id``, ``url``, ``landmark_id``, ``problem``, ``previous``) for the catalog rows:
    first the rows to fetch, then those an earlier run has ``ok`` (their images are only checked).

    Returns:
        (tasks, rows with an earlier ok row, rows with a catalog problem).
    """
    import numpy as np
    import pandas as pd

    n = len(rows)
    labels = rows["landmark_id"].astype(str) if labelled else pd.Series("", index=rows.index, dtype=object)
    problems = rows["problem"].to_numpy()
    if len(previous):
        keys = pd.DataFrame({"id": rows["id"].to_numpy(), "landmark_id": labels.to_numpy()})
        merged = keys.merge(previous, on=["landmark_id", "id"], how="left", validate="many_to_one")
        has_earlier = (merged["status"].to_numpy() == "ok") & (problems == "")
        earlier = {c: merged[c].to_numpy() for c in manifest.COLUMNS}
        del keys, merged
    else:  # a fresh run
        has_earlier, earlier = np.zeros(n, dtype=bool), {}
    ids, urls, label_values = rows["id"].to_numpy(), rows["url"].to_numpy(), labels.to_numpy()

    def task(seq: int) -> dict:
        prev = {c: earlier[c][seq] for c in manifest.COLUMNS} if has_earlier[seq] else None
        return {
            "seq": seq,
            "id": ids[seq],
            "url": urls[seq],
            "landmark_id": label_values[seq],
            "problem": problems[seq],
            "previous": prev,
        }

    order = itertools.chain(np.flatnonzero(~has_earlier), np.flatnonzero(has_earlier))
    return (task(int(seq)) for seq in order), int(has_earlier.sum()), int((problems != "").sum()) if n else 0


# --------------------------------------------------------------------------- worker processes
#
# Own code, measured: handing each process a chunk per task (``pool.submit(fetch_rows, chunk)``)
# left its threads idle at the end of every chunk, waiting for the chunk's slowest rows: 0.81x
# the throughput of the engine this replaced (benchmarks/fetch.py, median of 5 runs). So the
# executor runs one long task per process (``_worker_loop``), fed rows through a queue and
# streaming results back, which keeps every download thread busy; concurrent.futures still
# starts, watches (a dead worker breaks the pool) and stops the processes.

_HOSTS: core.HostHealth | None = None  # a worker process's fail-fast state, for one run
_QUEUES: tuple | None = None  # (tasks, results) of the run, given to each worker process at its start


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _init_worker(fail_fast_after: int, tasks, results) -> None:
    """A worker process: fresh fail-fast state, the run's queues; exit when the parent dies
    (``kill -9``), so that no download outlives the run."""
    global _HOSTS, _QUEUES
    _HOSTS = core.HostHealth(fail_fast_after)
    _QUEUES = (tasks, results)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True).start()


def _ready() -> int:
    return os.getpid()


def _batches(tasks: Iterator[dict], out_dir, options: core.FetchOptions, hosts: core.HostHealth | None):
    """``core.iter_fetch`` over ``tasks`` on ``options.threads`` threads, in batches of ``(seq, manifest row,
    resumed)``: up to ``_BATCH_ROWS`` results, the first of them at most ``_BATCH_SECONDS`` old when the
    next one completes (one journal flush, one message each)."""
    order: list[int] = []

    def numbered():
        for task in tasks:
            order.append(task["seq"])
            yield task

    batch, started = [], time.monotonic()
    for position, row, resumed in core.iter_fetch(numbered(), out_dir, options, hosts):
        batch.append((order[position], row, resumed))
        if len(batch) >= _BATCH_ROWS or time.monotonic() - started > _BATCH_SECONDS:
            yield batch
            batch, started = [], time.monotonic()
    if batch:
        yield batch


def _worker_loop(out_dir: str, options: core.FetchOptions) -> int:
    """In a worker process: fetch the chunks of tasks from the task queue until ``None``, putting
    batches of results on the result queue; return how many rows it did."""
    tasks, results = _QUEUES
    n = 0
    for batch in _batches((task for chunk in iter(tasks.get, None) for task in chunk), out_dir, options, _HOSTS):
        results.put(batch)
        n += len(batch)
    results.close()  # one loop per process and run: flush the results before the task reports done
    results.join_thread()
    return n


class _Workers:
    """The worker processes of one run (``ProcessPoolExecutor``) and the queues that feed them.

    Args:
        n_processes: worker processes, started at once (their start overlaps reading the catalog).
        fail_fast_after: see ``FetchOptions``.
    """

    def __init__(self, n_processes: int, fail_fast_after: int):
        ctx = _mp_context()
        self.n_processes = n_processes
        self.tasks, self.results = ctx.Queue(maxsize=4 * n_processes), ctx.Queue()
        self.pool = ProcessPoolExecutor(
            max_workers=n_processes,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(fail_fast_after, self.tasks, self.results),
        )
        for _ in range(n_processes):  # one task each: every process is spawned now
            self.pool.submit(_ready)

    def run(
        self, tasks: Iterator[dict], n_tasks: int, out_dir: Path, options: core.FetchOptions, chunk_rows: int
    ) -> Iterator[list[tuple[int, dict, bool]]]:
        """Fetch ``tasks`` (``n_tasks`` of them); yield batches of ``(seq, manifest row, resumed)`` as they come."""
        loops = [self.pool.submit(_worker_loop, str(out_dir), options) for _ in range(self.n_processes)]
        chunks = iter(lambda: list(itertools.islice(tasks, chunk_rows)), [])
        items = itertools.chain(chunks, [None] * self.n_processes)  # None: a worker's last item
        end = object()
        item = next(items, end)
        received = 0
        while received < n_tasks:
            while item is not end:  # keep the task queue full, never blocking
                try:
                    self.tasks.put_nowait(item)
                except queue.Full:
                    break
                item = next(items, end)
            try:
                batch = self.results.get(timeout=0.2)
            except queue.Empty:
                _check(loops, received, n_tasks)
                continue
            received += len(batch)
            yield batch
        while item is not end:  # the end markers left
            self.tasks.put(item, timeout=5)
            item = next(items, end)

    def close(self, finished: bool) -> None:
        """Stop the processes: let them exit after a finished run, terminate them otherwise."""
        if not finished:
            for proc in list((self.pool._processes or {}).values()):
                if proc.is_alive():
                    proc.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _check(loops: list, received: int, n_tasks: int) -> None:
    """Raise ``WorkerError`` when a worker process died, or all stopped before the last row."""
    failed = [loop.exception() for loop in loops if loop.done() and loop.exception() is not None]
    if failed or all(loop.done() for loop in loops):
        hint = "" if received else ' (a script must keep its main code under `if __name__ == "__main__":`)'
        raise WorkerError(
            f"a worker process {'died' if failed else 'stopped'} after {received} of {n_tasks} rows; "
            f"rerun to resume{hint}"
        ) from (failed[0] if failed else None)


def _mp_context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([core.__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _run_here(tasks: Iterator[dict], out_dir: Path, options: core.FetchOptions) -> Iterator[list]:
    """The rows in this process on ``options.threads`` threads, yielded in batches."""
    yield from _batches(tasks, out_dir, options, core.HostHealth(options.fail_fast_after))


# --------------------------------------------------------------------------- a catalog


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _n_processes(processes: int | None, n_tasks: int) -> int:
    """Worker processes for ``n_tasks`` rows to fetch: ``processes``, else one per core, none for small jobs."""
    if processes:
        return processes
    return _cores() if n_tasks >= _SMALL_JOB else 1


def _count_lines(path: Path, enough: int) -> int:
    """Lines in ``path``, counted up to ``enough`` or more; 0 when it cannot be read."""
    n = 0
    try:
        with open(path, "rb") as f:
            while n < enough and (block := f.read(2**20)):
                n += block.count(b"\n")
    except OSError:
        return 0
    return n


def _early_pool(csv_path: Path, config: FetchConfig):
    """Worker processes started before the catalog is read (their start overlaps its reading), unless
    the catalog is too small for more than one. A resumed run needs them too: they check the images
    of the rows already done.
    """
    if config.processes == 1:
        return None
    n_rows = max(0, _count_lines(csv_path, _SMALL_JOB + 2) - 1)  # less the header
    n_processes = _n_processes(config.processes, n_rows if config.n_images is None else min(config.n_images, n_rows))
    return _Workers(n_processes, config.fail_fast_after) if n_processes > 1 else None


def remove_empty_folders(out_dir: str | os.PathLike) -> int:
    """Remove the empty folders directly under ``out_dir`` (landmarks with no image); return how many."""
    removed = 0
    for entry in os.scandir(out_dir):
        if entry.is_dir(follow_symlinks=False):
            try:
                os.rmdir(entry.path)
                removed += 1
            except OSError:  # not empty
                pass
    return removed


def fetch_catalog(
    csv_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: FetchConfig | None = None,
    *,
    progress: bool = True,
    **changes: Any,
) -> FetchSummary:
    """Fetch the images of a catalog CSV into ``out_dir`` (see the module docstring).

    Args:
        csv_path: Kaggle-layout CSV (``id,url[,landmark_id]``); relative paths in ``url``
            are relative to its folder.
        out_dir: output folder (created); a rerun into it resumes.
        config: the settings (``config.FetchConfig``: image_size, resize, n_images, workers, timeout,
            retries, backoff, max_bytes, strict, fail_fast_after, processes; its Dask fields are
            ignored); None: the defaults. Scripts that use processes must guard their main code
            with ``if __name__ == "__main__":`` (workers start by "forkserver").
        progress: show a progress bar.
        changes: ``FetchConfig`` fields that replace those of ``config`` (``image_size=32,
            n_images=None``); an unknown name or a bad value raises ``ConfigError``.

    Returns:
        A ``FetchSummary``.

    Raises:
        ConfigError: a setting with an unknown name or a bad value.
        CatalogError: the CSV is missing or unreadable (or, with ``strict``, has a bad row).
        WorkerError: a worker process died (rerun to resume).
        FolderBusy: another run is writing ``out_dir`` (one writer per folder: ``files.one_writer``).
    """
    config = (config or FetchConfig()).replace(**changes)
    with files.one_writer(out_dir, f"landmarks fetch {Path(csv_path).name}"):
        return _fetch_catalog(csv_path, out_dir, config, progress)


def _fetch_catalog(csv_path, out_dir, config: FetchConfig, progress: bool) -> FetchSummary:
    """``fetch_catalog`` once its writer lock is held."""
    from ..catalog import first_n

    start = time.monotonic()
    csv_path, out = Path(csv_path), Path(out_dir)
    pool = _early_pool(csv_path, config)
    finished = False
    try:
        rows, labelled = _read_input(csv_path, config.strict, config.images, out)
        rows = first_n(rows, config.n_images)
        out.mkdir(parents=True, exist_ok=True)
        previous = manifest.fold(out)
        n_rows = len(rows)
        tasks, n_done, n_bad = _plan(rows, labelled, previous)
        del previous, rows
        n_processes = _n_processes(config.processes, n_rows - n_done - n_bad)
        options = core.FetchOptions.from_config(
            config,
            labelled=labelled,
            base_dir=str(csv_path.resolve().parent),
            threads=math.ceil(config.workers / n_processes),
        )
        if n_processes > 1:
            pool = pool or _Workers(n_processes, config.fail_fast_after)
            chunk_rows = max(1, min(8, math.ceil((n_rows - n_done) / (4 * n_processes))))
            batches = pool.run(tasks, n_rows, out, options, chunk_rows)
        else:
            batches = _run_here(tasks, out, options)
        counts, reasons, hosts = _journal(batches, out, n_rows, f"fetch {csv_path.name}", progress)
        finished = True
    finally:
        if pool is not None:
            pool.close(finished)
    removed = remove_empty_folders(out) if labelled else 0
    seconds = time.monotonic() - start
    return FetchSummary(
        n_rows=n_rows,
        ok=counts["ok"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        failed_by_reason=dict(reasons.most_common()),
        seconds=round(seconds, 3),
        images_per_second=round(counts["ok"] / seconds, 2) if seconds > 0 else 0.0,
        out_dir=str(out),
        manifest_path=str(out / manifest.NAME),
        empty_folders_removed=removed,
        bad_rows=n_bad,
        unreachable_hosts=sorted(hosts),
    )


def _journal(batches: Iterator[list], out: Path, n_rows: int, desc: str, progress: bool):
    """Append each batch of results to the journal, then write ``manifest.csv`` in catalog order;
    return the counts by status, by failure reason, and the hosts given up on."""
    from tqdm import tqdm

    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    hosts: set[str] = set()
    journal = manifest.Journal(out)
    try:
        with contextlib.closing(batches), tqdm(total=n_rows, desc=desc, unit="img", disable=not progress) as bar:
            for batch in batches:
                journal.add((seq, row) for seq, row, _ in batch)
                for _, row, resumed in batch:
                    if resumed:
                        counts["skipped"] += 1
                        continue
                    counts[row["status"]] += 1
                    if row["status"] == "failed":
                        reason = manifest.reason_of(row["error"])
                        reasons[reason] += 1
                        if reason == core.HOST_UNREACHABLE:
                            hosts.add(core.host_of(row["url"]))
                bar.update(len(batch))
                bar.set_postfix(ok=counts["ok"], failed=counts["failed"], refresh=False)
    except BaseException:
        journal.close()
        raise
    journal.finish()
    return counts, reasons, hosts
