"""Fetch benchmark: the study's downloader vs ``landmarks fetch`` vs img2dataset.

Generates photo-like JPEGs (1024-1600 px a side, 150-400 KB; cached under
``data/interim/bench-fetch/photos``), serves them from an HTTP server on
127.0.0.1 (``landmarklib/httpserver.py``) that answers every request after a fixed
latency, and measures back to back in one run:

(a) the study's approach: sequential ``urllib``, full PIL decode, convert to
    RGB, resize to 250x250, save as JPEG; timed on the first ``--study-images``
    rows, since it is sequential and latency-bound;
(b) ``landmarks fetch`` (the CLI, in a subprocess, with its defaults);
(b0) with ``--baseline REF``: ``landmarks fetch`` as it was at git ``REF`` (its
    ``landmarklib`` exported to a scratch folder, run by the same interpreter),
    alternating with (b) in each repeat, so that a rewrite is compared side by side;
(c) img2dataset, the tool a user would otherwise pick (``center_crop`` to
    250 px, ``files`` output, one process per core, 32 threads each), run from
    its own virtual environment (``--img2dataset``);
and this machine's floor: the CPU time (``time.process_time``, one process,
images in memory) of the per-image work, times images / cores; once for the
operations ``landmarks fetch`` does, once for the study's full decode.

The table goes to stdout and to ``--out`` (markdown).

img2dataset 1.47 requires ``pandas<3`` (the project uses pandas 3), so it lives
in a virtual environment of its own; without it, (c) is reported as not measured:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install img2dataset

Usage:
    .venv/bin/python benchmarks/fetch.py [--images 1000] [--latency-ms 50]
        [--study-images 200] [--repeats 1] [--baseline REF] [--out reports/benchmarks/fetch.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's landmarklib, installed or not
from common import cpu_model, git_commit  # noqa: E402  (benchmarks/common.py)

from landmarklib.httpserver import HttpTestServer  # noqa: E402
from landmarklib.paths import resolve  # noqa: E402

SIZE = 250
N_LANDMARKS = 50
PHOTO_SIDE = (1024, 1600)
PHOTO_KB = (150, 400)


# --------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------


def make_photo(index: int, seed: int = 0) -> bytes:
    """One photo-like JPEG: sky/ground gradients, a smooth colour field, shapes, texture, noise.

    Args:
        index: photo number; with ``seed`` it fixes the content.
        seed: base seed.

    Returns:
        JPEG bytes, each side 1024-1600 px, re-encoded until 150-400 KB.
    """
    rng = np.random.default_rng([seed, index])
    w, h = (int(v) for v in rng.integers(PHOTO_SIDE[0], PHOTO_SIDE[1] + 1, size=2))
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    horizon = rng.uniform(0.35, 0.7)
    top, mid, ground = (rng.uniform(0, 255, 3).astype(np.float32) for _ in range(3))
    sky = top * (1 - np.clip(y / horizon, 0, 1)) + mid * np.clip(y / horizon, 0, 1)
    land = mid * 0.6 + ground * 0.4 * (0.6 + 0.4 * y)
    rows = np.where(y >= horizon, land, sky)
    field_lo = rng.normal(0, 25, size=(6, 8, 3)).astype(np.float32)
    colour = np.stack(
        [np.asarray(Image.fromarray(field_lo[..., c]).resize((w, h), Image.BICUBIC)) for c in range(3)],
        axis=-1,
    )
    base = Image.fromarray(np.clip(rows + colour, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(base)
    for _ in range(int(rng.integers(12, 40))):
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        sw, sh = int(rng.integers(w // 30, w // 4)), int(rng.integers(h // 30, h // 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle([x0, y0, x0 + sw, y0 + sh], fill=fill)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + sw, y0 + sh], fill=fill)
        else:
            points = [
                (x0 + int(rng.integers(-sw, sw)), y0 + int(rng.integers(-sh, sh)))
                for _ in range(int(rng.integers(3, 7)))
            ]
            draw.polygon(points, fill=fill)
    base = base.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.0))))
    texture = rng.normal(0, 1, size=(h // 8, w // 8)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture).resize((w, h), Image.BILINEAR))[..., None]
    noise = rng.normal(0, rng.uniform(2.5, 5.0), size=(h, w, 1)).astype(np.float32)
    pixels = np.asarray(base, dtype=np.float32) + texture * rng.uniform(6, 14) + noise
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    quality = int(rng.integers(82, 93))
    while True:
        buf = io.BytesIO()
        photo.save(buf, "JPEG", quality=quality)
        kb = buf.tell() / 1024
        if kb > PHOTO_KB[1] and quality > 50:
            quality -= 5
        elif kb < PHOTO_KB[0] and quality < 97:
            quality += 3
        else:
            return buf.getvalue()


def _write_photo(args: tuple[int, str]) -> None:
    index, path = args
    tmp = Path(path + ".part")
    tmp.write_bytes(make_photo(index))
    tmp.replace(path)


def ensure_photos(folder: Path, n: int) -> list[Path]:
    """The first ``n`` photos under ``folder``, generating the missing ones (cached across runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(n)]
    missing = [(i, str(p)) for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
            jobs = pool.map(_write_photo, missing, chunksize=4)
            for _ in tqdm(jobs, total=len(missing), desc="generating photos", unit="img"):
                pass
    return paths


# --------------------------------------------------------------------------
# The approaches
# --------------------------------------------------------------------------


@dataclass
class Result:
    """One measured row of the table.

    Attributes:
        name: the approach, as the table shows it.
        images: images written (one measurement).
        seconds: best wall (or floor) seconds over the repeats.
        runs: seconds of every repeat.
    """

    name: str
    images: int
    seconds: float
    runs: list[float] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def count_jpegs(folder: Path) -> int:
    """Number of ``*.jpg`` files under ``folder``."""
    return sum(1 for _ in folder.rglob("*.jpg"))


def describe_outputs(folder: Path) -> str:
    """Sizes and modes found among ~20 outputs spread over ``folder``, e.g. ``"250x250 RGB"``."""
    paths = sorted(folder.rglob("*.jpg"))
    found = set()
    for path in paths[:: max(1, len(paths) // 20)]:
        with Image.open(path) as img:
            found.add(f"{img.width}x{img.height} {img.mode}")
    return ", ".join(sorted(found)) or "no output"


def fresh(folder: Path) -> Path:
    """``folder``, emptied first: fetchers resume, so leftovers would be skipped, not fetched."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_study(rows: list[tuple[str, str, int]], out_dir: Path) -> float:
    """(a) The study's downloader, one image after the other; returns wall seconds.

    ``urlretrieve`` to the target file, then Pillow opens it (full decode),
    converts it to RGB, resizes it to 250x250 and saves it over the download
    with Pillow's defaults; a row that fails loses its file.
    """
    start = time.perf_counter()
    for image_id, url, landmark_id in tqdm(rows, desc="(a) study", unit="img"):
        folder = out_dir / str(landmark_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{image_id}.jpg"
        try:
            urllib.request.urlretrieve(url, path)
            Image.open(path).convert("RGB").resize((SIZE, SIZE)).save(path, "JPEG")
        except (OSError, ValueError, SyntaxError):  # the study deleted whatever it could not open
            path.unlink(missing_ok=True)
    return time.perf_counter() - start


@dataclass
class Run:
    """One run of a fetcher (a subprocess).

    Attributes:
        seconds: wall time, startup included.
        cpu: CPU seconds of the command, all its processes.
        server_cpu: CPU seconds of this process meanwhile (the HTTP server's threads).
        first_request: seconds from the start to the server's first request.
        last_request: seconds from the start to the server's last request.
    """

    seconds: float
    cpu: float
    server_cpu: float
    first_request: float
    last_request: float


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A command's worker processes may outlive it (a multiprocessing forkserver is
    never waited for by its parent); adopted and waited for here, their CPU time
    counts in ``RUSAGE_CHILDREN``.
    """
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout: float = 30.0) -> None:
    """Wait for adopted descendants to exit (for at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def run_fetcher(
    cmd: list[str], log: Path, server: HttpTestServer, cwd: Path | None = None, pythonpath: Path | None = None
) -> Run:
    """Run ``cmd`` (which fetches from ``server``) with its output in ``log`` (in ``cwd``, with
    ``pythonpath`` first on the module path when given)."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")  # img2dataset: no update check over the network
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    server.reset_hits()
    children, own = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
    start = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(cmd, check=False, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    seconds = time.monotonic() - start
    server_cpu = _cpu(resource.RUSAGE_SELF) - own
    reap_orphans()
    if done.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {done.returncode}); see {log}")
    hits = [t for times in server.hit_times.values() for t in times] or [float("nan")]
    return Run(seconds, _cpu(resource.RUSAGE_CHILDREN) - children, server_cpu, min(hits) - start, max(hits) - start)


def landmarks_command(csv_path: Path, out_dir: Path) -> list[str]:
    """(b) ``landmarks fetch`` with its defaults (32 workers, one process per core, stretch, 250 px)."""
    exe = Path(sys.executable).with_name("landmarks")
    return [str(exe), "fetch", str(csv_path), "--out", str(out_dir), "--size", str(SIZE)]


def export_baseline(ref: str, folder: Path) -> Path:
    """``landmarklib`` as it was at git ``ref``, exported (``git archive``) to ``folder``; return ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "landmarklib"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def baseline_command(csv_path: Path, out_dir: Path) -> list[str]:
    """(b0) the baseline's ``landmarks fetch`` with its defaults (run with the baseline first on the path)."""
    return [sys.executable, "-m", "landmarklib.cli", "fetch", str(csv_path), "--out", str(out_dir), "--size", str(SIZE)]


def img2dataset_command(exe: Path, urls_txt: Path, out_dir: Path, n_images: int, cores: int) -> list[str]:
    """(c) img2dataset with the settings closest to ``landmarks fetch``'s."""
    from landmarklib.images import JPEG_QUALITY

    return [
        str(exe),
        f"--url_list={urls_txt}",
        "--input_format=txt",
        f"--output_folder={out_dir}",
        "--output_format=files",
        f"--image_size={SIZE}",
        "--resize_mode=center_crop",
        f"--processes_count={cores}",
        "--thread_count=32",
        # a shard is one process's job: enough shards for every process to have work
        f"--number_sample_per_shard={-(-n_images // (4 * cores))}",
        f"--encode_quality={JPEG_QUALITY}",
        "--timeout=20",
        "--retries=0",
        # landmarks fetch neither reads EXIF nor hashes images: spare img2dataset that work too
        "--extract_exif=False",
        "--compute_hash=None",
        "--enable_wandb=False",
        "--distributor=multiprocessing",
    ]


def landmarks_summary(log: Path) -> str:
    """The counts line ``landmarks fetch`` printed (ok, failed, its own images/s)."""
    text = log.read_text(errors="replace")
    found = re.search(r"ok \d+, failed \d+.*?images/s", text)
    return found.group(0) if found else "no summary line (see the log)"


def img2dataset_summary(out_dir: Path) -> str:
    """Successes and failures summed over img2dataset's per-shard ``*_stats.json``."""
    totals: dict[str, int] = {}
    for stats in out_dir.glob("*_stats.json"):
        for key, value in json.loads(stats.read_text()).items():
            if key in ("successes", "failed_to_download", "failed_to_resize"):
                totals[key] = totals.get(key, 0) + int(value)
    return ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "no stats files"


# --------------------------------------------------------------------------
# The floor: CPU per image, no I/O
# --------------------------------------------------------------------------


def landmarks_ops(data: bytes) -> bytes:
    """What ``landmarks fetch`` does to a downloaded image (``fetch_one``): open, DCT-scaled
    decode to RGB, stretch to 250x250, JPEG encode."""
    from landmarklib import images

    img = images.open_image(data)
    square = images.resize_square(images.to_rgb(img, SIZE), SIZE, "stretch")
    return images.encode_jpeg(square, images.JPEG_QUALITY)


def study_ops(data: bytes) -> bytes:
    """What the study does to a downloaded image: full decode, RGB, resize to 250x250, JPEG encode."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE, SIZE)).save(out, "JPEG")
    return out.getvalue()


def cpu_seconds_per_image(blobs: list[bytes], op: Callable[[bytes], bytes], desc: str) -> float:
    """Mean CPU seconds (``time.process_time``) of ``op`` on one of ``blobs``, in this process."""
    op(blobs[0])  # imports and codec set-up are not per image
    start = time.process_time()
    for blob in tqdm(blobs, desc=desc, unit="img"):
        op(blob)
    return (time.process_time() - start) / len(blobs)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def versions(python: Path | None) -> str:
    """Versions of Python, landmarklib, Pillow, NumPy and (from ``python``'s environment) img2dataset."""
    found = [f"Python {platform.python_version()}"]
    for dist in ("landmarklib", "pillow", "numpy"):
        found.append(f"{dist} {metadata.version(dist)}")
    if python is not None:
        code = (
            "import importlib.metadata as m\n"
            "print(', '.join(f'{d} {m.version(d)}' for d in "
            "('img2dataset', 'opencv-python-headless', 'albumentations')))"
        )
        done = subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True)
        found.append(done.stdout.strip() or "img2dataset version unknown")
    return ", ".join(found)


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def table(results: list[Result], study: Result, floor: Result) -> str:
    """Markdown: approach, images, seconds, images/s, ratio vs (a), ratio vs floor."""
    lines = [
        "| approach | images | seconds | images/s | ratio vs (a) | ratio vs floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ips = r.images_per_second
        lines.append(
            f"| {r.name} | {r.images:,} | {_num(r.seconds, 2)} | {_num(ips)} | "
            f"{_num(ips / study.images_per_second, 2)}x | {_num(ips / floor.images_per_second, 2)}x |"
        )
    return "\n".join(lines)


def targets(study: Result, ours: Result, other: Result | None, floor: Result, why_no_other: str) -> list[str]:
    """The three targets for (b), each PASS or FAIL with its numbers."""
    ips, lines = ours.images_per_second, []
    speedup = ips / study.images_per_second
    lines.append(f"(b) >= 20x (a): **{'PASS' if speedup >= 20 else 'FAIL'}** ({speedup:.1f}x)")
    if other is None:
        lines.append(f"(b) >= (c): **not measured** ({why_no_other})")
    else:
        vs = ips / other.images_per_second
        lines.append(f"(b) >= (c): **{'PASS' if vs >= 1 else 'FAIL'}** ((b) is {vs:.2f}x (c))")
    gap = floor.images_per_second / ips
    lines.append(
        f"(b) within 1.5x of the floor: **{'PASS' if gap <= 1.5 else 'FAIL'}** "
        f"(floor / (b) = {gap:.2f}; the floor is {floor.images_per_second:,.0f} images/s)"
    )
    return lines


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="photos fetched by (b) and (c) (default 1000)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="server latency per response (default 50)")
    parser.add_argument("--study-images", type=int, default=200, help="first photos timed with (a) (default 200)")
    parser.add_argument("--floor-images", type=int, default=200, help="photos the floor is timed on (default 200)")
    parser.add_argument("--repeats", type=int, default=1, help="run everything N times, keep each row's best")
    parser.add_argument("--work", default="data/interim/bench-fetch", help="photo cache and scratch folder")
    parser.add_argument("--img2dataset", default=".venv-bench/bin/img2dataset", help="img2dataset executable")
    parser.add_argument("--baseline", default="", help="also run landmarks fetch as it was at this git ref (b0)")
    parser.add_argument("--out", default="reports/benchmarks/fetch.md", help="markdown report")
    args = parser.parse_args(argv)
    if min(args.images, args.study_images, args.floor_images, args.repeats) < 1 or args.latency_ms < 0:
        parser.error("counts must be >= 1 and --latency-ms >= 0")
    args.study_images = min(args.study_images, args.images)
    args.floor_images = min(args.floor_images, args.images)
    return args


def short(cmd: list[str]) -> str:
    """A command line as the report shows it: program name only, paths from the project root."""
    return " ".join([Path(cmd[0]).name, *cmd[1:]]).replace(str(ROOT) + "/", "")


@dataclass
class Measurements:
    """Everything one benchmark run measured (seconds of every repeat per row)."""

    n: int
    cores: int
    runs: dict[str, list[float]] = field(
        default_factory=lambda: {key: [] for key in ("a", "b", "b0", "c", "floor", "floor_study")}
    )
    fetches: dict[str, list[Run]] = field(default_factory=lambda: {"b": [], "b0": [], "c": []})
    counts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)


def measure(args: argparse.Namespace, photos: list[Path], i2d: Path | None) -> Measurements:
    """(a), (b), (c) and the floors, back to back, ``args.repeats`` times."""
    cores = len(os.sched_getaffinity(0))
    m = Measurements(n=len(photos), cores=cores)
    run_dir = fresh(resolve(args.work) / "run")
    blobs = [p.read_bytes() for p in photos[: args.floor_images]]
    m.load.append(os.getloadavg()[0])
    with HttpTestServer(latency=args.latency_ms / 1000) as server:
        server.serve_directory(photos[0].parent, prefix="/photos/")
        rows = [(f"bench{i:05d}", server.url(f"/photos/{p.name}"), i % N_LANDMARKS) for i, p in enumerate(photos)]
        csv_path, urls_txt = run_dir / "train.csv", run_dir / "urls.txt"
        csv_path.write_text("id,url,landmark_id\n" + "".join(f"{i},{u},{lm}\n" for i, u, lm in rows))
        urls_txt.write_text("".join(f"{u}\n" for _, u, _ in rows))
        outs = {
            "a": run_dir / "out-study",
            "b": run_dir / "out-landmarks",
            "c": run_dir / "out-img2dataset",
            "b0": run_dir / "out-baseline",
        }
        m.commands["b"] = landmarks_command(csv_path, outs["b"])
        baseline = None
        if args.baseline:
            baseline = export_baseline(args.baseline, resolve(args.work) / "baseline")
            m.commands["b0"] = baseline_command(csv_path, outs["b0"])
        if i2d is not None:
            m.commands["c"] = img2dataset_command(i2d, urls_txt, outs["c"], len(rows), cores)
        for repeat in range(args.repeats):
            print(f"run {repeat + 1} of {args.repeats}", file=sys.stderr)
            m.runs["a"].append(run_study(rows[: args.study_images], fresh(outs["a"])))
            pair = [("b", "landmarks"), ("b0", "baseline")]
            for key, name in (pair if repeat % 2 == 0 else pair[::-1]) + [("c", "img2dataset")]:
                if key in m.commands:
                    print(f"({key}) {name} ...", file=sys.stderr)
                    fresh(outs[key])
                    where = dict(cwd=baseline, pythonpath=baseline) if key == "b0" else {}
                    m.fetches[key].append(run_fetcher(m.commands[key], run_dir / f"{name}.log", server, **where))
                    m.runs[key].append(m.fetches[key][-1].seconds)
            m.runs["floor"].append(cpu_seconds_per_image(blobs, landmarks_ops, "floor: landmarks ops") * m.n / cores)
            m.runs["floor_study"].append(cpu_seconds_per_image(blobs, study_ops, "floor: study ops") * m.n / cores)
    m.load.append(os.getloadavg()[0])
    for key, out in outs.items():
        if m.runs[key]:
            m.counts[key], m.notes[key] = count_jpegs(out), describe_outputs(out)
    m.notes["b_summary"] = landmarks_summary(run_dir / "landmarks.log")
    if m.runs["b0"]:
        m.notes["b0_summary"] = landmarks_summary(run_dir / "baseline.log")
    if m.runs["c"]:
        m.notes["c_summary"] = img2dataset_summary(outs["c"])
    return m


def where_time_went(m: Measurements, floor: Result) -> str:
    """Markdown table per fetcher (its best run): request timeline, CPU of its processes and of the server."""
    floor_ms = 1000 * floor.seconds * m.cores / m.n
    lines = [
        (
            "| fetcher | first request (s) | last request (s) | exit (s) | CPU, its processes (s) "
            "| CPU per image (ms) | CPU, server (s) | (both CPU) / cores (s) | cores busy |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ("b", "b0", "c"):
        if m.fetches[key]:
            run = min(m.fetches[key], key=lambda r: r.seconds)
            both = run.cpu + run.server_cpu
            lines.append(
                f"| ({key}) | {run.first_request:.2f} | {run.last_request:.2f} | {run.seconds:.2f} | {run.cpu:.2f} "
                f"| {1000 * run.cpu / m.n:.1f} | {run.server_cpu:.2f} | {both / m.cores:.2f} "
                f"| {100 * both / (run.seconds * m.cores):.0f}% |"
            )
    lines.append(f"| floor | | | | | {floor_ms:.1f} | | {floor.seconds:.2f} | 100% |")
    return "\n".join(lines)


def photo_summary(photos: list[Path]) -> str:
    """Count, pixel size range and file size range of the photos."""
    sizes_kb = [p.stat().st_size / 1024 for p in photos]
    dims = []
    for p in photos:
        with Image.open(p) as img:
            dims.append(img.size)
    widths, heights = [w for w, _ in dims], [h for _, h in dims]
    return (
        f"{len(photos):,} generated JPEGs, {min(widths)}-{max(widths)} x {min(heights)}-{max(heights)} px, "
        f"{min(sizes_kb):.0f}-{max(sizes_kb):.0f} KB (mean {sum(sizes_kb) / len(photos):.0f} KB)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from landmarklib.images import JPEG_QUALITY

    counts_all_cpu = become_subreaper()
    photos = ensure_photos(resolve(args.work) / "photos", args.images)
    i2d = resolve(args.img2dataset)
    why_no_i2d = "" if i2d.is_file() else f"{args.img2dataset} not found: install img2dataset (see --img2dataset)"
    m = measure(args, photos, None if why_no_i2d else i2d)

    n, cores = m.n, m.cores
    best = {key: min(values) for key, values in m.runs.items() if values}
    study = Result(
        f"(a) study: sequential urllib + full PIL decode (timed on the first {args.study_images})",
        m.counts["a"],
        best["a"],
        m.runs["a"],
    )
    ours = Result("(b) `landmarks fetch` (CLI, defaults)", m.counts["b"], best["b"], m.runs["b"])
    before = None
    if m.runs["b0"]:
        before = Result(f"(b0) `landmarks fetch` at {args.baseline} (before)", m.counts["b0"], best["b0"], m.runs["b0"])
    other = None
    if m.runs["c"]:
        other = Result(
            f"(c) img2dataset (center_crop, {cores} processes x 32 threads)", m.counts["c"], best["c"], m.runs["c"]
        )
    floor = Result(
        f"floor: landmarks ops (DCT-scaled decode), CPU x {n:,} / {cores} cores", n, best["floor"], m.runs["floor"]
    )
    floor_study = Result(
        f"floor: study ops (full decode), CPU x {n:,} / {cores} cores", n, best["floor_study"], m.runs["floor_study"]
    )
    text_table = table([r for r in (study, ours, before, other, floor, floor_study) if r is not None], study, floor)
    verdicts = targets(study, ours, other, floor, why_no_i2d)
    if before is not None:
        vs = ours.images_per_second / before.images_per_second
        median = statistics.median(m.runs["b0"]) / statistics.median(m.runs["b"])
        cpu = statistics.median(r.cpu for r in m.fetches["b"]) / statistics.median(r.cpu for r in m.fetches["b0"])
        verdicts.append(
            f"(b) within 10% of (b0), the same command at {args.baseline}: **{'PASS' if median >= 0.9 else 'FAIL'}** "
            f"(median of {args.repeats} runs, alternating order: (b) is {median:.2f}x (b0); best runs: {vs:.2f}x; "
            f"CPU of its processes: {cpu:.2f}x (b0)'s)"
        )
    command = " ".join(["python benchmarks/fetch.py", *(sys.argv[1:] if argv is None else argv)])
    repeats = f"best of {args.repeats} runs" if args.repeats > 1 else "one run"
    raw = "; ".join(f"{key} " + ", ".join(f"{s:.2f}" for s in values) for key, values in m.runs.items() if values)
    c_text = (
        f"`{short(m.commands['c'])}`. Written: {m.counts['c']:,} ({m.notes['c']}); its stats: {m.notes['c_summary']}."
        if other
        else f"not measured: {why_no_i2d}."
    )
    b0_text = (
        f"`{short(m.commands['b0'])}` with `landmarklib` exported from git `{args.baseline}`: the same catalog, "
        f"server and defaults, run just before or after (b) in each repeat. Written: {m.counts['b0']:,} "
        f'({m.notes["b0"]}); its last run printed: "{m.notes["b0_summary"]}".'
        if before
        else "not measured (no `--baseline`)."
    )
    cpu_note = "" if counts_all_cpu else ", without processes that outlived the command"
    load_note = ""
    if max(m.load) > cores:
        load_note = (
            f"\nOther jobs ran meanwhile (1-minute load average {min(m.load):.1f}-{max(m.load):.1f} on {cores} cores): "
            'wall times include waiting for a core. The CPU columns under "Where the time went" do not.\n'
        )
    report = f"""# Fetch benchmark

A catalog of {n:,} photos fetched into 250x250 JPEGs three ways, back to back in one run, from an
HTTP server on 127.0.0.1 that answers every request {args.latency_ms:g} ms late; and this machine's
floor for the same work. Seconds are wall time ({repeats}), process startup included; images/s =
images written / seconds.

{text_table}

(a) is sequential and bound by the latency, so it is timed on the first {args.study_images} photos;
its images/s is what it keeps up on any number. "ratio vs floor" divides by the first floor row
(the operations `landmarks fetch` does); a ratio of 1 means every core busy with nothing but
decode, resize and encode.

## Targets

{chr(10).join(f"- {line}" for line in verdicts)}
{load_note}
## What was measured

- Photos: {photo_summary(photos)}: sky and ground gradients, a smooth colour field, shapes,
  texture and sensor noise; cached in `{args.work}/photos/`.
- Server: `landmarklib/httpserver.py` (`ThreadingHTTPServer`, HTTP/1.1 keep-alive, a thread per
  connection) in the benchmark's own process, sleeping {args.latency_ms:g} ms before every response.
- (a) The study (report, "Data preprocessing"): `urllib.request.urlretrieve(url, path)`, then
  `Image.open(path).convert("RGB").resize((250, 250)).save(path, "JPEG")` (Pillow's defaults:
  bicubic, quality 75), one row after the other. Written: {m.counts["a"]:,} ({m.notes["a"]}).
- (b) `{short(m.commands["b"])}`: 32 downloads in flight over one process per core, JPEGs decoded
  at a reduced DCT scale, stretched (bicubic), quality {JPEG_QUALITY}. Written: {m.counts["b"]:,} ({m.notes["b"]});
  its last run printed: "{m.notes["b_summary"]}" (its own clock, from after the interpreter's startup).
- (b0) {b0_text}
- (c) {c_text}
  img2dataset has no plain stretch (its resize modes are no, border, keep_ratio, keep_ratio_largest,
  center_crop); `center_crop` is the closest: a full 250x250 frame of image content (short side to
  250, long side cropped; `border` would pad instead). It decodes with OpenCV at full size, resizes
  with INTER_AREA, encodes at quality {JPEG_QUALITY} and writes a .json next to each image.
- Floor: `time.process_time` of the per-image work on {args.floor_images} photos already in memory, one
  process, times {n:,} images / {cores} cores. Landmarks ops: `images.open_image`,
  `images.to_rgb(img, 250)` (DCT-scaled decode), `images.resize_square(..., "stretch")`,
  `images.encode_jpeg(..., {JPEG_QUALITY})`, as `fetch_one` calls them. Study ops: `Image.open(...)
  .convert("RGB").resize((250, 250)).save(..., "JPEG")`. No HTTP, no file writes.
- Seconds of every run: {raw}.
- The machine is shared with other jobs: 1-minute load average {m.load[0]:.2f} before, {m.load[1]:.2f} after.

## Where the time went

Best run of each fetcher. Request times are seconds from the command's start, as the server saw
them; CPU is `getrusage` (user + system) of all the command's processes{cpu_note}, and of the
benchmark process (the server's threads) meanwhile. "(both CPU) / cores" is the shortest wall time
that CPU would allow with both cores to itself; "cores busy" is that CPU over wall time x cores (the
rest went to other jobs on the machine, or to waiting).

{where_time_went(m, floor)}

## Machine

- nproc {cores}, {cpu_model()}, {platform.system()} {platform.release()}
- {versions(i2d.with_name("python") if other else None)}
- {dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}, commit {git_commit()}
- Command: `{command}`
"""
    out_path = resolve(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(report)
    print(text_table)
    print()
    print("\n".join(verdicts))
    print(f"\nwritten {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
