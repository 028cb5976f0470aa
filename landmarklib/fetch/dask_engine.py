"""The Dask fetch engine: a catalog fetched by the workers of a Dask cluster, shard by shard.

``fetch_catalog_dask`` (``landmarks fetch CSV --out DIR --engine dask``) writes the same
``DIR/<landmark_id>/<id>.jpg`` and, row for row and column for column (timings aside), the
same ``DIR/manifest.csv`` as the local engine: both run the per-row core
(``core.iter_fetch``) on the same rows.

- The catalog is read once by the driver (bad rows get their reason there, duplicates
  included) and cut into shards (tasks): with ``--images`` TAR shards, one task per TAR
  shard, holding the catalog rows whose images it holds (a worker reads one shard front to
  back); every other row in chunks of ``shard_rows`` consecutive rows. Shards are planned
  lazily and submitted in a bounded window (``distributed.as_completed``): the driver never
  holds more than a few futures, whatever the catalog's size.
- Each shard is one task. On its worker it journals every finished row at once
  (``DIR/_shards/<k>.<attempt>.journal.csv``, one file per attempt), then writes its part
  of the manifest atomically (``DIR/_shards/<k>.csv``) and a done marker
  (``DIR/_shards/<k>.done``, JSON: the shard's digest and counts), and removes its journals.
- Resume: a rerun skips the shards whose marker matches (same rows, same options) and that
  have no row to retry; any other shard runs again, keeping every ``ok`` row of its old part
  or of the journals an earlier attempt left whose image is in place, so only failed or
  missing rows are fetched. A worker killed mid-shard (``kill -9``) loses no journalled
  image; Dask runs the shard again on another worker, which picks up the journal: no
  duplicate rows, no partial file (images are written through a temporary file and a rename).
- At the end the parts are merged in catalog order into ``DIR/manifest.csv`` (a streaming
  merge: each part is in catalog order), written as the local engine writes it (``csv``
  module, then a rename). One difference can remain, as
  between two local runs with several processes: the rows of a dead host each fail, but
  which of them carry the connection error and which ``host unreachable (...)`` depends on
  timing and on which process ran them (fail-fast state is per process). The hosts given up
  on (``FetchSummary.unreachable_hosts``) do not depend on how a process's threads interleave:
  a host that a process gives up on while it has another of its rows to do is listed
  (``core``'s docstring says why).
- At start every worker must see the output folder (a file the driver wrote there) and be
  able to write into it: a shared filesystem on a cluster. Otherwise the run stops with one
  line naming the worker.
- Per-host fail-fast (``core.HostHealth``) holds per worker process and run. The total of
  requests in flight per host across the cluster is bounded by ``max_per_host``: each of the
  N worker processes gets ``max(1, max_per_host // N)`` connections per host (urllib3 pools
  that block when full; ``FetchOptions.max_per_host``). A ``distributed.Semaphore`` per host
  would be exact even as workers join, but costs a round trip to the scheduler per request
  (measured in ``benchmarks/scale.py``); the split costs nothing.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import hashlib
import heapq
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import cluster, files, manifest
from ..config import FetchConfig
from . import core
from .local import FetchSummary, _read_input, remove_empty_folders

SHARDS_DIR = "_shards"

_KEY = ("landmark_id", "id")
_RUN_HOSTS: dict[str, core.HostHealth] = {}  # worker side: fail-fast state per run (a few runs kept)
_RUN_LOCK = threading.Lock()


class OutputNotShared(cluster.NotShared):
    """A worker cannot see or write the output folder; ``str(error)`` is the one line to show."""


class ShardError(RuntimeError):
    """A shard's files do not add up (e.g. a part with the wrong number of rows)."""


# --------------------------------------------------------------------------- files of a shard


def shard_paths(out_dir: str | os.PathLike, k: int) -> tuple[Path, Path]:
    """(``_shards/<k>.csv``, ``_shards/<k>.done``) of shard ``k``."""
    folder = Path(out_dir) / SHARDS_DIR
    return folder / f"{k:06d}.csv", folder / f"{k:06d}.done"


def _journals(out_dir: str | os.PathLike, k: int) -> list[str]:
    return sorted(glob.glob(os.path.join(out_dir, SHARDS_DIR, f"{k:06d}.*.journal.csv")))


def _write_rows(path: Path, rows) -> None:
    """``manifest.COLUMNS`` rows to ``path`` through a temporary file and a rename (as ``Journal.finish``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(manifest.COLUMNS)
            writer.writerows([row[c] for c in manifest.COLUMNS] for row in rows)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(value, sort_keys=True))
    os.replace(tmp, path)


def _read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The complete rows of a part or journal; a last line cut short by a kill is dropped."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    data = data[: data.rfind(b"\n") + 1]
    reader = csv.reader(data.decode("utf-8", errors="replace").splitlines(keepends=True))
    header = next(reader, None)
    if header != list(manifest.COLUMNS):
        return []
    width = len(manifest.COLUMNS)
    return [dict(zip(manifest.COLUMNS, f, strict=True)) for f in reader if len(f) == width and f[-1] != ""]


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- worker side


def _hosts_for(run_id: str, fail_fast_after: int) -> core.HostHealth:
    """This worker process's fail-fast state for run ``run_id`` (shared by its shards)."""
    with _RUN_LOCK:
        if run_id not in _RUN_HOSTS:
            while len(_RUN_HOSTS) >= 4:  # forget old runs
                _RUN_HOSTS.pop(next(iter(_RUN_HOSTS)))
            _RUN_HOSTS[run_id] = core.HostHealth(fail_fast_after)
        return _RUN_HOSTS[run_id]


def probe_output(out_dir: str, token: str, catalog: str | None = None) -> str:
    """On a worker: "" when it sees the driver's ``token`` file in ``out_dir/_shards`` and can write there
    (and sees ``catalog``, whose folder relative URLs start from, when given), else why not."""
    folder = Path(out_dir) / SHARDS_DIR
    if catalog and not os.path.isfile(catalog):
        return f"cannot see the catalog {catalog} (its rows with relative paths or file:// URLs need it)"
    try:
        if not (folder / token).is_file():
            return (
                f"cannot see {out_dir} (no {SHARDS_DIR}/{token} there: not the driver's folder; "
                "a shared filesystem is needed)"
            )
        probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return f"cannot write {out_dir}: {exc.strerror or exc}"
    return ""


def fetch_shard(
    k: int, rows: list[dict], out_dir: str, options: core.FetchOptions, run_id: str, digest: str, problems: int
) -> dict:
    """One task: fetch shard ``k``'s rows, journal them, write its part and marker.

    Args:
        k: shard number.
        rows: the shard's rows in catalog order (``id``, ``url``, ``landmark_id``, ``problem``,
            ``previous``: an earlier ``ok`` manifest row or None).
        out_dir: the output folder (shared by every worker).
        options: the fetch options (``threads`` downloads in flight in this task).
        run_id: the run (fail-fast state is kept per run in each worker process).
        digest: the shard's digest, written into its marker.
        problems: rows of the shard that failed for a problem of the catalog itself.

    Returns:
        dict: k, rows, ok, failed, skipped, retry (failed rows a rerun fetches again),
        reasons (failures by reason), hosts (given up on), recovered (an earlier attempt's
        journal was found).
    """
    part, marker = shard_paths(out_dir, k)
    if not part.parent.is_dir():
        raise OutputNotShared(f"worker {os.uname().nodename} (pid {os.getpid()}) cannot see {part.parent}")
    earlier: dict[tuple, dict] = {}
    old_journals = _journals(out_dir, k)
    for source in [str(part), *old_journals]:  # later files win
        for row in _read_rows(source):
            if row["status"] == "ok":
                earlier[(row["landmark_id"], row["id"])] = row
    label = (lambda r: r["landmark_id"]) if options.labelled else (lambda r: "")
    for row in rows:
        kept = earlier.get((label(row), row["id"]))
        if kept is not None and not row.get("problem"):
            row["previous"] = kept
    journal_path = part.parent / f"{k:06d}.{os.getpid()}-{uuid.uuid4().hex[:8]}.journal.csv"
    done: list[dict | None] = [None] * len(rows)
    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    hosts: set[str] = set()
    with open(journal_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(manifest.COLUMNS)
        f.flush()
        hosts_state = _hosts_for(run_id, options.fail_fast_after)
        for position, row, resumed in core.iter_fetch(rows, out_dir, options, hosts_state):
            writer.writerow([row[c] for c in manifest.COLUMNS])
            f.flush()  # in the OS before the next row: a killed worker loses no finished row
            done[position] = row
            if resumed:
                counts["skipped"] += 1
                continue
            counts[row["status"]] += 1
            if row["status"] == "failed":
                reason = manifest.reason_of(row["error"])
                reasons[reason] += 1
                if reason == core.HOST_UNREACHABLE:
                    hosts.add(core.host_of(row["url"]))
    if any(row is None for row in done):
        raise ShardError(f"shard {k}: {sum(r is None for r in done)} rows got no result")
    _write_rows(part, done)
    _write_json(
        marker,
        {
            "digest": digest,
            "rows": len(done),
            "ok": counts["ok"] + counts["skipped"],
            "failed": counts["failed"],
            "retry": counts["failed"] - problems,
            "reasons": dict(reasons),
        },
    )
    for path in [*old_journals, str(journal_path)]:
        Path(path).unlink(missing_ok=True)
    return {
        "k": k,
        "rows": len(done),
        "ok": counts["ok"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "retry": counts["failed"] - problems,
        "reasons": dict(reasons),
        "hosts": sorted(hosts),
        "recovered": bool(old_journals),
    }


# --------------------------------------------------------------------------- driver side


@dataclasses.dataclass
class _Shard:
    k: int
    positions: np.ndarray  # the shard's rows: catalog positions, increasing
    digest: str
    problems: int


def _digest(rows, options: core.FetchOptions) -> str:
    """What a shard's result depends on: its rows and how images are made."""
    h = hashlib.sha1()
    h.update(
        repr(
            (
                options.size,
                options.resize,
                options.quality,
                options.labelled,
                options.base_dir,
                options.max_bytes,
                options.max_pixels,
            )
        ).encode()
    )
    for column in ("id", "url", "landmark_id", "problem"):
        values = rows[column] if column in rows else [""] * len(rows)
        h.update("\x1f".join(map(str, values)).encode("utf-8", errors="replace"))
        h.update(b"\x1e")
    return h.hexdigest()


def shard_positions(rows, shard_rows: int) -> list[np.ndarray]:
    """The catalog positions of each task's rows: those of one TAR shard together (``tar://`` urls,
    ``--images``), every other row in chunks of ``shard_rows`` consecutive rows; tasks ordered by
    their first row, each in catalog order."""
    urls = rows["url"].astype(str)
    in_tar = urls.str.startswith(f"{core.TAR_SCHEME}://").to_numpy() & (rows["problem"] == "").to_numpy()
    key = np.empty(len(rows), dtype=object)
    key[in_tar] = urls[in_tar].str.split("?", n=1).str[0].to_numpy()
    key[~in_tar] = np.arange(int((~in_tar).sum())) // shard_rows  # chunks of the other rows
    codes, _ = pd.factorize(key)  # numbered by first appearance: tasks in order of their first row
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes))[:-1]) if len(rows) else []


def _plan(rows, groups: list[np.ndarray], options: core.FetchOptions) -> Iterator[_Shard]:
    """The shards of ``rows``, one at a time (nothing is held per shard beyond the window)."""
    for k, positions in enumerate(groups):
        piece = rows.iloc[positions]
        yield _Shard(k, positions, _digest(piece, options), int((piece["problem"] != "").sum()))


def _finished(out: Path, shard: _Shard) -> dict | None:
    """The marker of a shard that need not run again (same digest, nothing to retry), else None."""
    part, marker = shard_paths(out, shard.k)
    done = read_marker(marker)
    if done and done.get("digest") == shard.digest and done.get("retry", 1) == 0 and part.is_file():
        return done
    return None


def _task_rows(rows, shard: _Shard, labelled: bool, previous) -> list[dict]:
    """The rows of one shard as the core takes them, with the earlier ``ok`` row of each (if any)."""
    piece = rows.iloc[shard.positions]
    labels = piece["landmark_id"].tolist() if labelled else [""] * len(piece)
    columns = (piece["id"].tolist(), piece["url"].tolist(), labels, piece["problem"].tolist())
    records = [
        {"id": i, "url": u, "landmark_id": lab, "problem": p, "previous": None}
        for i, u, lab, p in zip(*columns, strict=True)
    ]
    if previous is not None:
        found = previous.reindex(list(zip(labels, piece["id"].tolist(), strict=True)))
        ok = (found["status"] == "ok").to_numpy()
        for record, has, row in zip(records, ok, found.itertuples(index=True), strict=True):
            if has and not record["problem"]:
                record["previous"] = {c: getattr(row, c) for c in manifest.COLUMNS if c not in _KEY}
                record["previous"].update(landmark_id=row.Index[0], id=row.Index[1])
    return records


def check_output(client, out: Path, catalog: Path | None = None) -> None:
    """Every worker sees ``out`` (a file the driver wrote there) and can write into it, and sees ``catalog``
    when given; else ``OutputNotShared``."""
    token = f".driver-{uuid.uuid4().hex}"
    path = out / SHARDS_DIR / token
    path.write_bytes(b"ok")
    try:
        problems = client.run(probe_output, str(out), token, str(catalog) if catalog else None)
    finally:
        path.unlink(missing_ok=True)
    bad = {worker: why for worker, why in problems.items() if why}
    if bad:
        worker, why = sorted(bad.items())[0]
        more = f" (and {len(bad) - 1} more workers)" if len(bad) > 1 else ""
        raise OutputNotShared(f"worker {worker} {why}{more}")


def _part_rows(out: Path, k: int, positions: np.ndarray) -> Iterator[tuple[int, list[str]]]:
    """(catalog position, manifest row) of each row of shard ``k``'s part, read as they are merged."""
    with open(shard_paths(out, k)[0], newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        count = 0
        for position, row in zip(positions.tolist(), reader, strict=False):
            count += 1
            yield position, [row[c] for c in manifest.COLUMNS]
        if count != len(positions) or next(reader, None) is not None:
            raise ShardError(f"shard {k}'s part does not hold its {len(positions)} rows")


def _assemble(out: Path, groups: list[np.ndarray], n_rows: int) -> Path:
    """``DIR/manifest.csv`` from the parts, in catalog order, written as the local engine writes it."""
    path = out / manifest.NAME
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    total = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as dst:
            writer = csv.writer(dst)
            writer.writerow(manifest.COLUMNS)
            # each part is in catalog order: a k-way merge keeps one row of each part in memory
            for _, row in heapq.merge(*(_part_rows(out, k, p) for k, p in enumerate(groups)), key=lambda x: x[0]):
                writer.writerow(row)
                total += 1
        if total != n_rows:
            raise ShardError(f"the shards of {out} hold {total} rows, the catalog {n_rows}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def fetch_catalog_dask(
    csv_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: FetchConfig | None = None,
    *,
    client=None,
    progress: bool = True,
    window: int | None = None,
    **changes: Any,
) -> FetchSummary:
    """Fetch a catalog's images on a Dask cluster (see the module docstring); arguments as
    ``local.fetch_catalog`` (``config.processes`` is ignored), plus:

    Args:
        config: as ``local.fetch_catalog``; here ``workers`` counts the downloads in flight over the
            whole cluster (each worker process runs ``ceil(workers / worker processes)`` threads per
            shard), and ``scheduler`` (None: an embedded ``LocalCluster`` of ``dask_workers``
            processes), ``shard_rows`` and ``max_per_host`` apply.
        client: a ``distributed.Client`` to run on, instead of ``config.scheduler``.
        window: shards submitted at a time (default: twice the cluster's threads).

    Raises:
        ConfigError: a setting with an unknown name or a bad value.
        CatalogError: the CSV is missing or unreadable (or, with ``strict``, has a bad row).
        OutputNotShared: a worker cannot see or write ``out_dir``.
        cluster.SchedulerUnreachable: ``scheduler`` does not answer.
        FolderBusy: another run is writing ``out_dir`` (this process holds the folder's writer lock
            for the whole run, its workers write for it: ``files.one_writer``).
    """
    config = (config or FetchConfig()).replace(**changes)
    with files.one_writer(out_dir, f"landmarks fetch {Path(csv_path).name} --engine dask"):
        return _fetch_catalog_dask(csv_path, out_dir, config, client, progress, window)


def _fetch_catalog_dask(csv_path, out_dir, config: FetchConfig, client, progress: bool, window) -> FetchSummary:
    """``fetch_catalog_dask`` once its writer lock is held."""
    from distributed import KilledWorker, as_completed  # dask only when this engine runs (fetch.cli imports us)
    from tqdm import tqdm  # the driver's progress bar: the workers import this module too

    from ..catalog import first_n  # catalog imports pandas: the driver's only, as tqdm

    start = time.monotonic()
    csv_path, out = Path(csv_path).resolve(), Path(out_dir).resolve()
    rows, labelled = _read_input(csv_path, config.strict, config.images, out)
    rows = first_n(rows, config.n_images).reset_index(drop=True)
    n_rows = len(rows)
    (out / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    previous = manifest.fold(out)  # ok rows of earlier runs (either engine)
    previous = previous.set_index(list(_KEY)) if len(previous) else None
    if previous is not None and not previous.index.is_unique:
        previous = previous[~previous.index.duplicated(keep="last")]

    scheduler = client if client is not None else config.scheduler
    with cluster.connect(scheduler, n_workers=config.dask_workers, verbose=progress) as client:
        local_files = ~rows["url"].str.startswith(("http://", "https://")) & (rows["problem"] == "")
        check_output(client, out, csv_path if bool(local_files.any()) else None)
        info = client.scheduler_info()["workers"]
        n_procs = max(1, len(info))
        n_threads = max(1, sum(w.get("nthreads", 1) for w in info.values()))
        options = core.FetchOptions.from_config(
            config,
            labelled=labelled,
            base_dir=str(csv_path.parent),
            threads=math.ceil(config.workers / n_procs),
            max_per_host=max(1, config.max_per_host // n_procs) if config.max_per_host else 0,
        )
        run_id = uuid.uuid4().hex
        window = window or 2 * n_threads
        counts: collections.Counter[str] = collections.Counter()
        reasons: collections.Counter[str] = collections.Counter()
        hosts: set[str] = set()
        recovered = False
        groups = shard_positions(rows, config.shard_rows)
        plan = _plan(rows, groups, options)
        pending = as_completed(loop=client.loop)
        in_flight = 0
        with tqdm(total=n_rows, desc=f"fetch {csv_path.name} (dask)", unit="img", disable=not progress) as bar:

            def submit_more() -> None:
                nonlocal in_flight
                while in_flight < window:
                    shard = next(plan, None)
                    if shard is None:
                        return
                    done = _finished(out, shard)
                    if done is not None:  # a finished shard of an earlier run: nothing to do
                        counts["skipped"] += done["ok"]
                        counts["failed"] += done["failed"]
                        reasons.update(done.get("reasons", {}))
                        bar.update(done["rows"])
                        continue
                    task_rows = _task_rows(rows, shard, labelled, previous)
                    pending.add(
                        client.submit(
                            fetch_shard,
                            shard.k,
                            task_rows,
                            str(out),
                            options,
                            run_id,
                            shard.digest,
                            shard.problems,
                            pure=False,
                            key=f"fetch-shard-{shard.k}-{run_id[:8]}",
                        )
                    )
                    in_flight += 1

            submit_more()
            try:
                for future in pending:
                    try:
                        result = future.result()  # a task's error (OutputNotShared, ...) stops the run here
                    except KilledWorker as exc:
                        last = getattr(exc.last_worker, "address", exc.last_worker)
                        raise ShardError(
                            f"{exc.task} killed every worker that ran it ({last} last); "
                            "what was fetched is kept: rerun to resume"
                        ) from exc
                    in_flight -= 1
                    for name in ("ok", "failed", "skipped"):
                        counts[name] += result[name]
                    reasons.update(result["reasons"])
                    hosts.update(result["hosts"])
                    recovered |= result["recovered"]
                    bar.update(result["rows"])
                    bar.set_postfix(ok=counts["ok"], failed=counts["failed"], refresh=False)
                    submit_more()
            except BaseException:
                client.cancel(list(pending.futures))
                raise
    if recovered:  # an attempt was killed mid-shard: its half-written temporary images go
        manifest.remove_temp_files(out)
    _assemble(out, groups, n_rows)
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
        bad_rows=int((rows["problem"] != "").sum()),
        unreachable_hosts=sorted(hosts),
    )
