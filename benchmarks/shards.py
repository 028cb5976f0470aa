"""GLDv2-layout TAR shards: ``landmarks fetch --images`` against this machine's CPU floor, memory, resume.

Packs the real photos of ``--data`` (default ``../shared/data/real-landmarks``: ``train.csv`` with
``id,url,landmark_id``, urls relative to it) into shards ``images_NNN.tar`` with members
``a/b/c/<id>.jpg`` and an ``md5.images_NNN.txt`` beside each, in a temporary folder, then:

1. Speed: ``landmarks fetch train.csv --images SHARDS --size 250`` (the CLI, every core) on
   ``--small`` shards, against the floor: the CPU seconds per image of the same decode, resize
   and encode (``fetch.core``'s steps, in this process, no I/O), spread over every core.
   Target: at most 1.4x the floor's time.
2. Memory: the peak RSS of the command's process tree at ``--small`` and ``--large`` shards of
   the same size (the large run repeats the photos under new ids). Target: at most 1.2x.
3. Resume: the large run killed with SIGKILL once its journal holds half the rows, then run
   again: the rows it skips, whether the manifest then holds every row, and the rerun's time.

Every run reads the shards' md5 files (the first run of a folder hashes every shard; its index is
then kept in ``OUT/.images-index``). The catalog is ``id,landmark_id``, as Kaggle 2019-2021's.

Usage:
    .venv/bin/python benchmarks/shards.py [--data ../shared/data/real-landmarks] [--small 10]
        [--large 100] [--size 250] [--out reports/benchmarks/shards.md]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's landmarklib, installed or not
from catalog_scale import MemoryWatch  # noqa: E402  (benchmarks/catalog_scale.py)
from common import cpu_model, git_commit, write_report  # noqa: E402

from landmarklib import images  # noqa: E402


def photos(data: Path) -> list[tuple[str, str, bytes]]:
    """(id, landmark_id, JPEG bytes) of every readable row of ``data/train.csv``."""
    rows = []
    with open(data / "train.csv", newline="") as f:
        for row in csv.DictReader(f):
            path = data / row["url"]
            if path.is_file():
                rows.append((row["id"], row["landmark_id"], path.read_bytes()))
    return rows


def pack(rows: list[tuple[str, str, bytes]], folder: Path, n_shards: int, copies: int) -> Path:
    """``n_shards`` shards of ``copies`` x the photos (copies under new ids), and their catalog ``<folder>.csv``."""
    folder.mkdir(parents=True)

    def copy_id(image_id: str, k: int) -> str:  # the photo's own id, then new 16-hex ids
        return image_id if k == 0 else hashlib.sha1(f"{image_id}/{k}".encode()).hexdigest()[:16]

    items = [(copy_id(image_id, k), label, body) for k in range(copies) for image_id, label, body in rows]
    per = -(-len(items) // n_shards)
    for s in range(n_shards):
        shard = folder / f"images_{s:03d}.tar"
        with tarfile.open(shard, "w") as tar:
            for image_id, _, body in items[s * per : (s + 1) * per]:
                info = tarfile.TarInfo(f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        digest = hashlib.md5(shard.read_bytes(), usedforsecurity=False).hexdigest()
        (folder / f"md5.images_{s:03d}.txt").write_text(f"{digest}  {shard.name}\n")
    catalog = folder.parent / f"{folder.name}.csv"
    with open(catalog, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "landmark_id"])
        w.writerows((image_id, label) for image_id, label, _ in items)
    return catalog


def floor_images_per_second(rows: list[tuple[str, str, bytes]], size: int, cores: int) -> float:
    """Decode, resize and encode every photo in this process (CPU time), scaled to ``cores``."""

    def ops(body: bytes) -> bytes:
        img = images.open_image(body)
        return images.encode_jpeg(images.resize_square(images.to_rgb(img, size), size, "stretch"), images.JPEG_QUALITY)

    ops(rows[0][2])
    start = time.process_time()
    for _, _, body in rows:
        ops(body)
    return cores * len(rows) / (time.process_time() - start)


def fetch_cmd(catalog: Path, shards: Path, out: Path, size: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "landmarklib.cli",
        "fetch",
        str(catalog),
        "--out",
        str(out),
        "--images",
        str(shards),
        "--size",
        str(size),
        "--quiet",
    ]


def run(cmd: list[str]) -> dict:
    """Wall seconds and peak memory of one command (its process tree)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    watch = MemoryWatch(proc.pid)
    out, _ = proc.communicate()
    watch.stop()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return {"seconds": time.monotonic() - start, "tree_mb": watch.tree_peak_kb / 1024, "printed": out.strip()}


def journal_rows(out: Path) -> int:
    journal = out / "manifest.journal.csv"
    try:
        return max(0, journal.read_text().count("\n") - 1)
    except OSError:
        return 0


def kill_and_resume(cmd: list[str], out: Path, n_rows: int) -> dict:
    import psutil

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    while proc.poll() is None and journal_rows(out) < n_rows // 2:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    done_before = journal_rows(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(children, timeout=60)
    again = run(cmd)
    skipped = int(again["printed"].split("skipped ")[1].split()[0].rstrip(",")) if "skipped " in again["printed"] else 0
    with open(out / "manifest.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    return {
        "journalled_at_kill": done_before,
        "skipped": skipped,
        "rerun_seconds": again["seconds"],
        "manifest_rows": len(manifest),
        "ok": sum(r["status"] == "ok" for r in manifest),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real-landmarks")
    p.add_argument("--small", type=int, default=10, help="shards of the first run (default 10)")
    p.add_argument("--large", type=int, default=100, help="shards of the same size for the memory and resume runs")
    p.add_argument("--size", type=int, default=250)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "shards.md")
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    rows = photos(args.data)
    copies = -(-args.large // args.small)
    work = Path(tempfile.mkdtemp(prefix="shards-"))
    try:
        small_cat = pack(rows, work / "small", args.small, 1)
        large_cat = pack(rows, work / "large", args.small * copies, copies)
        floor = floor_images_per_second(rows, args.size, cores)
        small = run(fetch_cmd(small_cat, work / "small", work / "out-small", args.size))
        large = run(fetch_cmd(large_cat, work / "large", work / "out-large", args.size))
        shutil.rmtree(work / "out-large")
        resume = kill_and_resume(
            fetch_cmd(large_cat, work / "large", work / "out-large", args.size), work / "out-large", len(rows) * copies
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ips, ips_large = len(rows) / small["seconds"], len(rows) * copies / large["seconds"]
    ratio, mem = floor / ips_large, large["tree_mb"] / small["tree_mb"]
    report = f"""# TAR shards: `landmarks fetch --images` (benchmarks/shards.py)

{dt.date.today()}, commit {git_commit()}, {cpu_model()}, {cores} cores. Photos: {len(rows)} of `{args.data.name}`
packed as GLDv2 shards (members `a/b/c/<id>.jpg`, an md5 file beside each), {args.size} px, every run from
the command line with its defaults (one process per core).

| measure | value | target |
|---|---:|---|
| {args.small} shards, {len(rows)} images: images/s (wall: start, md5 checks and indexing included) | {ips:.1f} | |
| {args.small * copies} shards, {len(rows) * copies} images: images/s (the same) | {ips_large:.1f} | |
| the CPU floor: decode + resize + encode over {cores} cores (images/s) | {floor:.1f} | |
| time against the floor, {args.small * copies} shards | {ratio:.2f}x | at most 1.4x: **{"PASS" if ratio <= 1.4 else "FAIL"}** |
| peak RSS of the process tree, {args.small} shards ({len(rows)} images) | {small["tree_mb"]:.0f} MB | |
| peak RSS of the process tree, {args.small * copies} shards ({len(rows) * copies} images) | {large["tree_mb"]:.0f} MB | |
| memory, {args.small * copies} against {args.small} shards | {mem:.2f}x | at most 1.2x: **{"PASS" if mem <= 1.2 else "FAIL"}** |
| resume: rows journalled when killed (SIGKILL) | {resume["journalled_at_kill"]} of {len(rows) * copies} | |
| resume: rows the rerun skipped | {resume["skipped"]} | every journalled row |
| resume: manifest rows after the rerun (ok) | {resume["manifest_rows"]} ({resume["ok"]}) | every row once (an exact repeat of a row is dropped) |
| resume: the rerun's seconds | {resume["rerun_seconds"]:.1f} | |

The floor is measured in this process with `time.process_time` and scaled by the cores; the fetch
runs as users run it. The small run's rate includes fixed costs (starting the interpreter and the
worker processes, hashing the shards) that a run of millions of images does not feel; the target is
judged on the large run. This machine is shared: all were measured in the same run, one after the other.
"""
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
