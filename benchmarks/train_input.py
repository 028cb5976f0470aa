"""Benchmark: does ``landmarklib.pipeline.batches`` keep the model fed, in bounded memory?

Side by side, in one run, under each Keras backend (each measurement in a fresh
subprocess with ``KERAS_BACKEND`` set):

(a) throughput: ``model.fit`` of Res-Incep (``landmarklib.nets.res_incep``) fed
    from numpy arrays already in memory vs fed by ``pipeline.batches()`` (with and
    without its decoded-image cache) (target: ratio >= 0.90);
(b) memory: peak RSS of a 1-epoch training that reads all 2,000 vs all 20,000
    images (train + validation) through ``pipeline.batches()`` (target: ratio <= 1.3),
    next to the same with the images loaded into arrays first.

The image folders are synthetic (coloured shapes on noisy backgrounds, ~30
classes, 96 px JPEGs, with a ``manifest.csv`` as ``landmarks fetch`` writes it),
built once under ``data/interim/bench``.

    .venv/bin/python benchmarks/train_input.py            # writes reports/benchmarks/train_input.md
    .venv/bin/python benchmarks/train_input.py --rounds 2 --backends tensorflow   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import write_report  # benchmarks/common.py (this script's folder is on sys.path)
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_COLUMNS = ["id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds"]


# --------------------------------------------------------------------------- synthetic folders


def _draw(landmark: int, rng: np.random.Generator, size: int) -> Image.Image:
    """A coloured shape typical of the class, at a random place, on a noisy background."""
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 18, (size, size, 3))
    img = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    color = tuple(int(c) for c in np.random.default_rng(landmark).integers(0, 256, 3))
    x, y = rng.integers(0, size // 2, 2)
    w, h = rng.integers(size // 4, size // 2, 2)
    box = (int(x), int(y), int(x + w), int(y + h))
    if landmark % 3 == 0:
        draw.ellipse(box, fill=color)
    elif landmark % 3 == 1:
        draw.rectangle(box, fill=color)
    else:
        draw.pieslice(box, start=30, end=300, fill=color)
    return img


def make_folder(out_dir: Path, n_images: int, n_classes: int, size: int, seed: int = 0) -> Path:
    """Write ``out_dir/<landmark_id>/<id>.jpg`` and ``manifest.csv`` (reused when already complete)."""
    manifest = out_dir / "manifest.csv"
    stamp = out_dir / "params.json"
    params = {"n_images": n_images, "n_classes": n_classes, "size": size, "seed": seed}
    if manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == params:
        return out_dir
    rng = np.random.default_rng(seed)
    landmark_ids = np.sort(rng.choice(200_000, n_classes, replace=False))
    labels = landmark_ids[rng.integers(0, n_classes, n_images)]
    ids = [f"{seed:02x}{i:014x}" for i in range(n_images)]

    def write(i: int) -> list:
        path = out_dir / str(labels[i]) / f"{ids[i]}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        _draw(int(labels[i]), np.random.default_rng([seed, i]), size).save(path, quality=90)
        seconds = time.perf_counter() - start
        return [
            ids[i],
            f"synthetic://{ids[i]}",
            labels[i],
            "ok",
            "",
            path.stat().st_size,
            size,
            size,
            "JPEG",
            f"{seconds:.4f}",
        ]

    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(write, range(n_images)))
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    stamp.write_text(json.dumps(params))
    return out_dir


# --------------------------------------------------------------------------- measurements (in subprocesses)


def _model(input_size: int, n_classes: int, tiny: bool):
    """Res-Incep (``landmarklib.nets.res_incep``) or, for the memory runs, a tiny conv net."""
    import keras
    from keras import layers

    if not tiny:
        from landmarklib.nets import res_incep

        return res_incep.res_incep((input_size, input_size, 3), n_classes), "res_incep"
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.Conv2D(8, 3, strides=4, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny"), "tiny"


def _compiled(input_size: int, n_classes: int, tiny: bool):
    model, name = _model(input_size, n_classes, tiny)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, name


def _rows(image_dir: str):
    """All rows of a folder with class labels (the throughput runs train on every image)."""
    from landmarklib import data

    rows, _ = data.read_folder(image_dir)
    landmark_ids = np.sort(rows["landmark_id"].unique())
    return rows.assign(label=np.searchsorted(landmark_ids, rows["landmark_id"]).astype(np.int32)), len(landmark_ids)


FEEDS = ("arrays", "batches_cached", "batches_decoding")


def _step_timer():
    """A callback keeping, from one training step's end to the next, the wall time (data wait + step)
    and the CPU time of the whole process (all threads: model, input pipeline)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.last = None
            self.epochs.append([])

        def on_train_batch_end(self, batch, logs=None):
            now = (time.perf_counter(), time.process_time())
            if self.last is not None:
                self.wall.append(now[0] - self.last[0])
                self.cpu.append(now[1] - self.last[1])
                self.epochs[-1].append(now[0] - self.last[0])
            self.last = now

    timer = StepTimer()
    timer.wall, timer.cpu, timer.epochs = [], [], []
    return timer


def measure_throughput(args) -> dict:
    """Images/s of fit() per feed on the same rows, in short epochs taken in turn.

    Feeds: float32 arrays in memory; ``pipeline.batches()`` (decoded-image cache on,
    the default: its warm-up epoch fills it); ``pipeline.batches(cache=False)`` (every
    epoch decodes every JPEG). After one warm-up epoch on arrays (compiles) and
    one on ``pipeline.batches()``, ``rounds`` rounds run one epoch of each feed, in
    an order rotated each round. Two rates per feed, from one training step's
    end to the next: batch size over the median wall time (data wait + step),
    and over the median CPU time of the process (all its threads: what the feed
    costs whatever else runs on the machine).
    """
    import keras

    from landmarklib import data
    from landmarklib.nets import pipeline

    keras.utils.set_random_seed(0)
    rows, n_classes = _rows(args.image_dir)
    rows = rows.iloc[: args.steps * args.batch_size]
    x = data.load_images(rows["path"], args.input_size, progress=False).astype(np.float32)
    y = rows["label"].to_numpy()
    cached = pipeline.batches(rows, args.input_size, args.batch_size, shuffle=True, seed=0)
    decoding = pipeline.batches(rows, args.input_size, args.batch_size, shuffle=True, seed=0, cache=False)
    model, name = _compiled(args.input_size, n_classes, tiny=False)
    timers = {feed: _step_timer() for feed in FEEDS}
    fits = {
        "arrays": lambda cb: model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, callbacks=cb),
        "batches_cached": lambda cb: model.fit(cached, epochs=1, verbose=0, callbacks=cb),
        "batches_decoding": lambda cb: model.fit(decoding, epochs=1, verbose=0, callbacks=cb),
    }
    fits["arrays"]([])  # compiles the train step
    fits["batches_cached"]([])  # fills the decoded-image cache
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for feed in FEEDS[r % 3 :] + FEEDS[: r % 3]:
            fits[feed]([timers[feed]])
    load.append(os.getloadavg()[0])
    start = time.perf_counter()
    for i in range(len(decoding)):
        decoding[i]
    decode_seconds = time.perf_counter() - start
    n = len(rows)
    return {
        "model": name,
        "params": model.count_params(),
        "images": n,
        "steps": len(cached),
        "workers": cached.decode_workers,
        "wall_img_s": {feed: args.batch_size / statistics.median(timers[feed].wall) for feed in FEEDS},
        "cpu_img_s": {feed: args.batch_size / statistics.median(timers[feed].cpu) for feed in FEEDS},
        "decode_1thread_img_s": n / decode_seconds,
        "load_average": load,
        "round_wall_ratios": {
            feed: [
                statistics.median(arrays) / statistics.median(other)
                for arrays, other in zip(timers["arrays"].epochs, timers[feed].epochs)
            ]
            for feed in FEEDS[1:]
        },
        "step_seconds": {feed: {"wall": timers[feed].wall, "cpu": timers[feed].cpu} for feed in FEEDS},
    }


def measure_memory(args) -> dict:
    """Peak RSS of a 1-epoch fit over every image (train + validation) of a folder."""
    import keras
    import psutil

    from landmarklib import data
    from landmarklib.nets import pipeline

    keras.utils.set_random_seed(0)
    split = data.load_split(args.image_dir, min_images=2, val_fraction=0.2, seed=0)
    model, name = _compiled(args.input_size, len(split.landmark_ids), tiny=True)
    before = psutil.Process().memory_info().rss
    if args.feed == "batches":
        train = pipeline.batches(split.train, args.input_size, args.batch_size, shuffle=True, seed=0)
        val = pipeline.batches(split.val, args.input_size, args.batch_size)
        model.fit(train, validation_data=val, epochs=1, verbose=0)
    else:

        def arrays(frame):
            return data.load_images(frame["path"], args.input_size, progress=False).astype(np.float32)

        model.fit(
            arrays(split.train),
            split.train["label"].to_numpy(),
            validation_data=(arrays(split.val), split.val["label"].to_numpy()),
            batch_size=args.batch_size,
            epochs=1,
            verbose=0,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "model": name,
        "images": len(split.train) + len(split.val),
        "rss_before_fit_mb": before / 2**20,
        "peak_rss_mb": peak / 2**20,
    }


def _in_subprocess(backend: str, worker: str, **options) -> dict:
    """Run one measurement in a fresh Python with ``KERAS_BACKEND=backend``; returns its JSON."""
    command = [sys.executable, __file__, "--worker", worker]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} {worker} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("keras", "tensorflow", "jax", "numpy", "PIL"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {name}; print({name}.__version__)"],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        versions[name] = done.stdout.strip() or "not installed"
    return versions


def _machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        memory = ""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}){memory}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run(args) -> str:
    bench = Path(args.out_dir)
    small = make_folder(bench / f"synthetic-{args.small}", args.small, args.classes, args.image_size)
    large = make_folder(bench / f"synthetic-{args.large}", args.large, args.classes, args.image_size)
    common = {"input_size": args.input_size, "batch_size": args.batch_size}

    throughput_rows, decode_rows, memory_rows, verdicts, loads, spreads = [], [], [], [], [], []
    for backend in args.backends:
        steps = args.jax_steps if backend == "jax" else args.steps
        t = _in_subprocess(backend, "throughput", image_dir=small, rounds=args.rounds, steps=steps, **common)
        for kind in ("wall", "cpu"):
            rate = t[f"{kind}_img_s"]
            cached, decoding = (rate[feed] / rate["arrays"] for feed in ("batches_cached", "batches_decoding"))
            throughput_rows.append(
                [
                    backend,
                    f"{t['model']} ({t['params'] / 1e6:.2f} M)",
                    kind,
                    t["workers"],
                    f"{rate['arrays']:.1f}",
                    f"{rate['batches_cached']:.1f}",
                    f"**{cached:.2f}**",
                    f"{rate['batches_decoding']:.1f}",
                    f"{decoding:.2f}",
                ]
            )
            verdicts.append(
                f"{backend}, {kind} time: throughput ratio {cached:.2f} "
                f"({'meets' if cached >= 0.9 else 'MISSES'} >= 0.90); without the cache {decoding:.2f}"
            )
        loads.append(f"{backend} {t['load_average'][0]:.1f} -> {t['load_average'][1]:.1f}")
        spreads.append(
            f"{backend} {min(t['round_wall_ratios']['batches_cached']):.2f} .. "
            f"{max(t['round_wall_ratios']['batches_cached']):.2f}"
        )
        decode_rows.append([backend, f"{t['decode_1thread_img_s']:.0f}", f"{t['wall_img_s']['arrays']:.1f}"])
        print(json.dumps({"backend": backend, "throughput": t}), flush=True)
        for feed in ("batches", "arrays") if backend == args.backends[0] else ("batches",):
            m = {
                n: _in_subprocess(backend, "memory", image_dir=d, feed=feed, **common)
                for n, d in ((args.small, small), (args.large, large))
            }
            ratio = m[args.large]["peak_rss_mb"] / m[args.small]["peak_rss_mb"]
            memory_rows.append(
                [
                    backend,
                    "`pipeline.batches()`" if feed == "batches" else "arrays in memory",
                    f"{m[args.small]['rss_before_fit_mb']:.0f}",
                    f"{m[args.small]['peak_rss_mb']:.0f}",
                    f"{m[args.large]['rss_before_fit_mb']:.0f}",
                    f"{m[args.large]['peak_rss_mb']:.0f}",
                    f"**{ratio:.2f}**" if feed == "batches" else f"{ratio:.2f}",
                ]
            )
            if feed == "batches":
                verdicts.append(
                    f"{backend}: peak RSS ratio {ratio:.2f} ({'meets' if ratio <= 1.3 else 'MISSES'} <= 1.3)"
                )
            print(json.dumps({"backend": backend, "memory": feed, "result": m}), flush=True)

    versions = _versions()
    command = "python benchmarks/train_input.py " + " ".join(sys.argv[1:])
    throughput = _table(
        [
            "backend",
            "model",
            "per step",
            "decode threads",
            "arrays img/s",
            "batches() img/s",
            "ratio",
            "batches(cache=False) img/s",
            "ratio",
        ],
        throughput_rows,
    )
    decode = _table(["backend", "decode only, 1 thread, img/s", "model on arrays, img/s"], decode_rows)
    memory = _table(
        [
            "backend",
            "fed by",
            f"RSS before fit, {args.small} (MiB)",
            f"peak RSS, {args.small} (MiB)",
            f"RSS before fit, {args.large} (MiB)",
            f"peak RSS, {args.large} (MiB)",
            "peak ratio",
        ],
        memory_rows,
    )
    return f"""# Training input pipeline: `pipeline.batches()` vs arrays in memory

Command: `{command.strip()}`  
Date: {datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}  
Machine: {_machine()}  
Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}

Synthetic fetched folders ({args.small:,} and {args.large:,} JPEGs of {args.image_size} px, {args.classes} classes,
`manifest.csv`), input {args.input_size} px, batch {args.batch_size}. Each cell is measured in a fresh
subprocess with `KERAS_BACKEND` set.

## (a) fit() throughput (target: ratio >= 0.90)

The same compiled model trains on the first {args.steps} batches ({args.jax_steps} under JAX, which is slower
on CPU) of the {args.small:,}-image folder per epoch, fed from float32 arrays already in memory, by
`pipeline.batches()` (decoded-image cache on, the default: each JPEG is decoded once, in the first epoch, and
read back from a temporary file after), or by `pipeline.batches(cache=False)` (every JPEG decoded every epoch,
in worker threads). After one warm-up epoch on arrays (compiles) and one on `pipeline.batches()` (fills the
cache), {args.rounds} rounds run one epoch of each feed, in an order rotated each round. Rates are batch size
over the median, from one training step's end to the next, of: "wall" time (the step plus any wait for
data), and "cpu" time of the whole process (all threads, model and input pipeline: the feed's cost
whatever else runs on the machine; on a machine of our own where training keeps the cores busy,
throughput follows it). Load average (1 min) before -> after the timed rounds: {"; ".join(loads)}
(this machine has {os.cpu_count()} cores and is shared: the wall ratios of single rounds spread over
{"; ".join(spreads)}).

{throughput}

Input side alone: the uncached batches iterated in one thread, without a model, vs the model's speed.

{decode}

## (b) peak RSS of one epoch over every image (target: ratio <= 1.3)

A tiny conv net (the point is the input pipeline's memory) trains one epoch on the train split and
validates on the rest, so all images are read once. Peak = `ru_maxrss` of the subprocess.
"Arrays in memory" (first backend only) loads the images with `data.load_images` first, for comparison.

{memory}

## Verdict

{chr(10).join(f"- {v}" for v in verdicts)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(ROOT / "data" / "interim" / "bench"), help="synthetic folders")
    parser.add_argument("--report", default=str(ROOT / "reports" / "benchmarks" / "train_input.md"))
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=96, help="stored JPEG size (px)")
    parser.add_argument("--input-size", type=int, default=64, help="model input size (px)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10, help="timed epochs per feed")
    parser.add_argument("--steps", type=int, default=4, help="batches per epoch in the throughput runs")
    parser.add_argument("--jax-steps", type=int, default=3, help="the same under JAX (slower on CPU)")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--worker", choices=["throughput", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--image-dir", help=argparse.SUPPRESS)
    parser.add_argument("--feed", choices=["batches", "arrays"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        sys.path.insert(0, str(ROOT))
        measure = measure_throughput if args.worker == "throughput" else measure_memory
        print(json.dumps(measure(args)))
        return 0
    write_report(run(args), args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
