"""Catalog-scale benchmark: notebook 01 on a 2018-sized catalog, ``landmarks fetch`` at 10k and 100k rows.

Synthetic catalogs, no image needed for the first part:

1. Notebook 01's numbers on ``--catalog-rows`` rows (default 1,225,029 over 14,951 landmarks,
   the 2018 ``train.csv``): the images per landmark come from the embedded sample's generator
   (``sample._train_counts``: a Zipf-like head and a long tail), ids are 16 hex digits as
   Kaggle's, urls look like the 2018 ones. Timed in a fresh interpreter, step by step, as the
   notebook calls them (``catalog.read_rows`` ... ``min_images_effect``, ``data_source``);
   with ``--notebook``, the whole notebook through papermill as well (kernel start and figures
   included). Target: the numbers in under 15 s.
2. ``landmarks fetch`` (the CLI, defaults, ``--size 32``) on the first ``--small`` (10,000) and
   ``--large`` (100,000) rows of a catalog served by an HTTP server on 127.0.0.1 (in this
   process, ``landmarklib/httpserver.py``) that answers every path at once with the same tiny JPEG:
   wall time, rows/s and peak memory: the high-water mark (``VmHWM``) of the command's own
   process, and the largest sum of RSS over its process tree (workers included, sampled every
   0.1 s). Target: peak at ``--large`` at most 1.3x that at ``--small``.
3. Resume after ``kill -9``: the ``--large`` fetch is killed once its journal holds
   ``--kill-at`` of the rows, then run again; measured: seconds from the rerun's start to the
   server's first request for a row not fetched before. Target: under 10 s. (The rerun is
   stopped once it fetches again, unless ``--finish-resume``.)

Usage:
    .venv/bin/python benchmarks/catalog_scale.py [--catalog-rows 1225029] [--small 10000]
        [--large 100000] [--kill-at 0.5] [--notebook] [--out reports/benchmarks/catalog_scale.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's landmarklib, installed or not
from common import cpu_model  # noqa: E402  (benchmarks/common.py)

from landmarklib import sample  # noqa: E402
from landmarklib.httpserver import HttpTestServer, image  # noqa: E402
from landmarklib.paths import resolve  # noqa: E402

KAGGLE_ROWS, KAGGLE_LANDMARKS = 1_225_029, 14_951


# --------------------------------------------------------------------------- catalogs


def write_catalog(path: Path, n_rows: int, n_landmarks: int, url_format: str, seed: int = 0) -> Path:
    """A Kaggle-layout ``id,url,landmark_id`` CSV of ``n_rows`` rows (cached: kept when present).

    Images per landmark from the sample's generator (``sample._train_counts``), landmark ids
    drawn from 1..200,000, rows shuffled; ids are distinct 16-hex-digit strings.
    """
    if path.is_file():
        return path
    rng = sample._seed_rng(seed, 7)
    counts = sample._train_counts(n_landmarks, n_rows, rng)
    landmark_ids = rng.choice(np.arange(1, 200_001), size=n_landmarks, replace=False)
    labels = rng.permutation(np.repeat(landmark_ids, counts))
    values = np.unique(rng.integers(0, 2**63, size=int(n_rows * 1.01), dtype=np.int64))
    values = rng.permutation(values)[:n_rows]
    ids = [f"{int(v):016x}" for v in values]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("id,url,landmark_id\n")
        f.writelines(f"{i},{url_format.format(id=i)},{lab}\n" for i, lab in zip(ids, labels.tolist()))
    tmp.replace(path)
    return path


NUMBERS = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from landmarklib import catalog
steps = {"import landmarklib.catalog (pandas, numpy)": time.perf_counter() - t0}
path, n_images, top_k, min_images = sys.argv[1], int(sys.argv[2]), 15, 2
start = time.perf_counter()
def step(name, fn):
    t = time.perf_counter(); value = fn(); steps[name] = time.perf_counter() - t; return value
rows = step("read_rows (read + row problems)", lambda: catalog.read_rows(path))
full = step("good_rows (landmark_id int64)", lambda: catalog.good_rows(rows))
subset = step("first_n + good_rows", lambda: catalog.good_rows(catalog.first_n(rows, n_images)))
bad = step("bad_rows", lambda: catalog.bad_rows(rows))
step("landmarks in train.csv (nunique)", lambda: full.landmark_id.nunique())
stats = step("long_tail_stats", lambda: catalog.long_tail_stats(subset))
step("data_source (sha256 of the file)", lambda: catalog.data_source(path, full, n_rows=len(rows)))
step("top_k", lambda: catalog.top_k(subset, top_k))
step("single_image_landmarks", lambda: catalog.single_image_landmarks(subset))
step("frequencies", lambda: catalog.frequencies(subset))
step("coverage_curve", lambda: catalog.coverage_curve(subset))
step("min_images_effect", lambda: catalog.min_images_effect(subset, range(1, 11)))
step("filter_min_images", lambda: catalog.filter_min_images(subset, min_images))
total = time.perf_counter() - start
print(json.dumps({"steps": steps, "total": total, "rows": len(rows), "landmarks": int(full.landmark_id.nunique()),
                  "n_images": stats["n_images"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def notebook_numbers(csv_path: Path, n_images: int) -> dict:
    """Notebook 01's computations on ``csv_path`` with its first ``n_images`` rows, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", NUMBERS, str(csv_path), str(n_images)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def whole_notebook(csv_path: Path, n_images: int, work: Path) -> float:
    """Wall seconds of notebook 01 through papermill (kernel start and figures included)."""
    import papermill

    start = time.perf_counter()
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "01_explore_frequencies.ipynb"),
        str(work / "01.ipynb"),
        parameters={
            "train_csv": str(csv_path),
            "sample_dir": str(work / "no-sample"),
            "n_images": n_images,
            "reports_dir": str(work / "reports"),
        },
        kernel_name="landmarks",
        cwd=str(ROOT),
        progress_bar=False,
    )
    return time.perf_counter() - start


# --------------------------------------------------------------------------- memory of a process tree


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class MemoryWatch:
    """Samples a process's VmHWM and its tree's total RSS every ``interval`` seconds (background thread)."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.main_hwm_kb = 0
        self.tree_peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            hwm = _status_kb(self.pid, "VmHWM")
            if hwm:
                self.main_hwm_kb = max(self.main_hwm_kb, hwm)
                tree = hwm and _status_kb(self.pid, "VmRSS") + sum(
                    _status_kb(p, "VmRSS") for p in _descendants(self.pid)
                )
                self.tree_peak_kb = max(self.tree_peak_kb, tree)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- fetching


def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 80, 200)).save(out, "JPEG", quality=80)
    return out.getvalue()


def fetch_command(csv_path: Path, out: Path, limit: int) -> list[str]:
    exe = Path(sys.executable).with_name("landmarks")
    return [str(exe), "fetch", str(csv_path), "--out", str(out), "--limit", str(limit), "--size", "32", "--quiet"]


def run_fetch(cmd: list[str]) -> dict:
    """Run a fetch to the end; wall seconds, peak memory, its summary line."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watch = MemoryWatch(proc.pid)
    output, _ = proc.communicate()
    seconds = time.monotonic() - start
    watch.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output}")
    summary = next((line for line in output.splitlines() if " rows -> " in line), output.strip()[:200])
    return {
        "seconds": seconds,
        "main_mb": watch.main_hwm_kb / 1024,
        "tree_mb": watch.tree_peak_kb / 1024,
        "summary": summary,
    }


def journal_rows(out: Path) -> int:
    try:
        with open(out / "manifest.journal.csv", "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except OSError:
        return 0


def kill_and_resume(cmd: list[str], out: Path, server: HttpTestServer, kill_at: int, finish: bool) -> dict:
    """Kill the fetch (SIGKILL) once ``kill_at`` rows are journalled, then rerun it: seconds to the first
    request for a row not fetched before."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and journal_rows(out) < kill_at:
        time.sleep(0.05)
    if proc.poll() is not None:
        raise RuntimeError("the fetch finished before it could be killed: lower --kill-at")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = journal_rows(out)
    time.sleep(1.0)  # the worker processes exit with their parent
    with open(out / "manifest.journal.csv", encoding="utf-8") as f:
        done = {line.split(",", 2)[1] for line in f.readlines()[1:] if ",ok," in line}
    seen_new = threading.Event()
    first_new: list[float] = []
    find = server._find

    def watching(path: str):
        image_id = path.rsplit("/", 1)[-1].removesuffix(".jpg")
        if image_id not in done and not seen_new.is_set():
            first_new.append(time.monotonic())
            seen_new.set()
        return find(path)

    server._find = watching
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen_new.wait(timeout=120)
        result = {
            "killed_at": killed_at,
            "ok_before": len(done),
            "seconds_to_fetch": (first_new[0] - start) if first_new else float("nan"),
        }
        if finish:
            output, _ = proc.communicate()
            result["finished_seconds"] = time.monotonic() - start
            result["summary"] = next((line for line in output.splitlines() if " rows -> " in line), "")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        server._find = find
    return result


# --------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog-rows", type=int, default=KAGGLE_ROWS)
    p.add_argument("--catalog-landmarks", type=int, default=KAGGLE_LANDMARKS)
    p.add_argument("--n-images", type=int, default=5000, help="notebook 01's n_images (default 5000, the study's)")
    p.add_argument("--notebook", action="store_true", help="also run notebook 01 through papermill")
    p.add_argument("--small", type=int, default=10_000)
    p.add_argument("--large", type=int, default=100_000)
    p.add_argument("--kill-at", type=float, default=0.5, help="share of --large journalled before kill -9")
    p.add_argument("--finish-resume", action="store_true", help="let the resumed fetch run to the end")
    p.add_argument("--work", default="data/interim/bench-catalog-scale")
    p.add_argument("--out", default="reports/benchmarks/catalog_scale.md")
    args = p.parse_args(argv)
    work = resolve(args.work)
    work.mkdir(parents=True, exist_ok=True)
    load = [os.getloadavg()[0]]
    cores = len(os.sched_getaffinity(0))

    # 1. notebook 01's numbers
    big = write_catalog(
        work / f"train_{args.catalog_rows}.csv",
        args.catalog_rows,
        args.catalog_landmarks,
        "http://lh3.ggpht.com/-{id}/s1600/",
    )
    print(f"notebook 01's numbers on {big.name} ...", file=sys.stderr)
    nb = notebook_numbers(big, args.n_images)
    nb_all = notebook_numbers(big, args.catalog_rows)  # the numbers over every row, too
    whole = whole_notebook(big, args.n_images, work) if args.notebook else None

    # 2, 3. fetch
    with HttpTestServer() as server:
        route = image(tiny_jpeg())
        server._find = lambda path: route
        url = f"http://127.0.0.1:{server.port}/{{id}}.jpg"
        catalogs = {
            n: write_catalog(work / f"fetch_{n}_{server.port}.csv", n, max(2, n // 80), url, seed=1)
            for n in (args.small, args.large)
        }
        fetch_csv = catalogs[args.large]
        runs = {}
        for n in (args.small, args.large):
            out = work / f"out-{n}"
            shutil.rmtree(out, ignore_errors=True)
            print(f"landmarks fetch, {n:,} rows ...", file=sys.stderr)
            runs[n] = run_fetch(fetch_command(catalogs[n], out, n))
            shutil.rmtree(out, ignore_errors=True)
        out = work / "out-resume"
        shutil.rmtree(out, ignore_errors=True)
        print(f"kill -9 and resume at {args.large:,} rows ...", file=sys.stderr)
        resume = kill_and_resume(
            fetch_command(fetch_csv, out, args.large), out, server, int(args.kill_at * args.large), args.finish_resume
        )
        shutil.rmtree(out, ignore_errors=True)
        for path in catalogs.values():  # their urls name this run's port
            path.unlink()
    load.append(os.getloadavg()[0])

    # the table
    small, large = runs[args.small], runs[args.large]
    ratio_main, ratio_tree = large["main_mb"] / small["main_mb"], large["tree_mb"] / small["tree_mb"]
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    lines = [
        "| measurement | value | target | |",
        "|---|---:|---:|---|",
        f"| notebook 01's numbers, {nb['rows']:,} rows, first {args.n_images:,} (s) | {nb['total']:.2f} | < 15 | "
        f"**{verdict(nb['total'] < 15)}** |",
        f"| the same over all {nb_all['rows']:,} rows (s) | {nb_all['total']:.2f} | < 15 | "
        f"**{verdict(nb_all['total'] < 15)}** |",
    ]
    if whole is not None:
        lines.append(f"| notebook 01 through papermill, figures and kernel start included (s) | {whole:.1f} | | |")
    lines += [
        f"| `landmarks fetch` {args.small:,} rows: seconds, rows/s | {small['seconds']:.1f}, "
        f"{args.small / small['seconds']:.0f}/s | | |",
        f"| `landmarks fetch` {args.large:,} rows: seconds, rows/s | {large['seconds']:.1f}, "
        f"{args.large / large['seconds']:.0f}/s | | |",
        f"| peak memory of the command's process (VmHWM), {args.small:,} -> {args.large:,} rows (MB) | "
        f"{small['main_mb']:.0f} -> {large['main_mb']:.0f} ({ratio_main:.2f}x) | <= 1.3x | "
        f"**{verdict(ratio_main <= 1.3)}** |",
        f"| peak RSS of its process tree (workers included), {args.small:,} -> {args.large:,} rows (MB) | "
        f"{small['tree_mb']:.0f} -> {large['tree_mb']:.0f} ({ratio_tree:.2f}x) | <= 1.3x | "
        f"**{verdict(ratio_tree <= 1.3)}** |",
        f"| resume after `kill -9` at {resume['killed_at']:,} of {args.large:,} rows: seconds to the first new "
        f"request | {resume['seconds_to_fetch']:.2f} | < 10 | **{verdict(resume['seconds_to_fetch'] < 10)}** |",
    ]
    table = "\n".join(lines)
    steps = "\n".join(
        f"| {name} | {seconds:.2f} | {nb_all['steps'][name]:.2f} |" for name, seconds in nb["steps"].items()
    )
    command = " ".join(["python benchmarks/catalog_scale.py", *(sys.argv[1:] if argv is None else argv)])
    finished = (
        f" The resumed run then finished: {resume['summary']} ({resume['finished_seconds']:.1f} s)."
        if "summary" in resume
        else " The resumed run was stopped once it fetched again (`--finish-resume` lets it end)."
    )
    report = f"""# Catalog scale

Synthetic catalogs the size of the real ones, on this machine ({cores} cores, shared: 1-minute load
average {load[0]:.1f} before, {load[1]:.1f} after; wall times include waiting for a core).

{table}

## Notebook 01's numbers, step by step

A catalog of {nb["rows"]:,} rows over {nb["landmarks"]:,} landmarks (the 2018 `train.csv` has
1,225,029 rows over 14,951 landmarks), images per landmark from the embedded sample's generator
(`sample._train_counts`), written once to `{args.work}/{big.name}`. Each step as notebook 01 calls it,
in a fresh interpreter (import time apart); figures not included (see the papermill row when
measured). Peak memory {nb["peak_rss_mb"]:.0f} MB (first {args.n_images:,} rows), {nb_all["peak_rss_mb"]:.0f} MB (all rows).

| step | seconds (first {args.n_images:,}) | seconds (all rows) |
|---|---:|---:|
{steps}

## Fetching 10k and 100k rows

`landmarks fetch CSV --out DIR --limit N --size 32 --quiet` (defaults otherwise: 32 downloads in
flight, one worker process per core) on catalogs of {args.small:,} and {args.large:,} rows (the sample's generator again) whose urls all point to an
HTTP server on 127.0.0.1 in the benchmark's process (`landmarklib/httpserver.py`, keep-alive), which
answers every path at once with the same {len(tiny_jpeg())}-byte 40x30 JPEG. The server shares the
machine's cores with the fetch, so rows/s are a floor of this machine, not of the fetcher.
Memory is sampled every 0.1 s: the command's own process (its `VmHWM`, the high-water mark of
the engine that plans, journals and writes the manifest) and the sum of RSS over its process tree.
Printed by the runs: {small["summary"]}; {large["summary"]}.

## Resume after kill -9

The {args.large:,}-row fetch was killed with SIGKILL once its journal held {resume["killed_at"]:,}
rows ({resume["ok_before"]:,} of them ok), then the same command was run again; the time is from its
start to the server's first request for a row the killed run had not fetched (the rows already
done are handed to the workers last, which only check their images).{finished}

## Machine

- nproc {cores}, {cpu_model()}, {platform.system()} {platform.release()}, Python {platform.python_version()}
- {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
- Command: `{command}`
"""
    out_path = resolve(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(report)
    print(table)
    print(f"\nwritten {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
