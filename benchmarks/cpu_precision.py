"""Benchmark: Res-Incep training speed on the CPU in float32 and in mixed_bfloat16.

    .venv/bin/python benchmarks/cpu_precision.py [--input-size 96] [--rounds 3]

Each cell is one fresh subprocess (TensorFlow backend, every core): it builds the study's
Res-Incep (filters 40/60/75/80) with the modern recipe's photo augmentation and dropout, compiles
it with AdamW, fits one untimed epoch (tracing), then times ``--epochs`` epochs of ``--images``
random images in batches of 32. The two policies alternate, their order swapped every round,
so that the machine's other work weighs on both alike; the ratio is taken per round, and the
table gives each round and the median. ``mixed_bfloat16`` keeps float32 variables and a float32
softmax (``devices.set_precision``); it pays where the CPU computes in bfloat16 (AVX512-BF16, AMX).
Writes ``reports/benchmarks/cpu_precision.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from common import cpu_model, git_commit

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ("float32", "mixed_bfloat16")

CELL = r"""
import os, sys, time
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np
import keras
from landmarklib import config, devices
from landmarklib.nets import models
size, images, epochs, policy = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
devices.set_precision(policy)
keras.utils.set_random_seed(0)
settings = config.ModelConfig(model="res_incep", input_size=size, filters=(40, 60, 75, 80), dropout=0.1, augment="photo")
model = models.build(settings, 23)
model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05), loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (images, size, size, 3)).astype("float32")
y = (np.arange(images) % 23).astype("int64")
model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
start = time.perf_counter()
model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
print("RATE", epochs * images / (time.perf_counter() - start))
"""


def cell(size: int, images: int, epochs: int, policy: str) -> float:
    """Training images per second of one fresh process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CELL, str(size), str(images), str(epochs), policy],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    rates = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("RATE")]
    if out.returncode or not rates:
        raise SystemExit(f"{policy} cell failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return float(rates[0])


def cpu_flags() -> str:
    """The CPU's bfloat16 features (Linux), as a short text."""
    try:
        flags = next(
            line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines() if "flags" in line
        )
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(found) or "none of avx512_bf16, amx_bf16"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input-size", type=int, default=96)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "cpu_precision.md")
    args = p.parse_args(argv)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    rows = []
    for r in range(args.rounds):
        order = POLICIES if r % 2 == 0 else POLICIES[::-1]
        rate = {policy: cell(args.input_size, args.images, args.epochs, policy) for policy in order}
        rows.append((r + 1, " then ".join(order), rate["float32"], rate["mixed_bfloat16"]))
        print(f"round {r + 1}: float32 {rate['float32']:.1f} img/s, mixed_bfloat16 {rate['mixed_bfloat16']:.1f} img/s")
    ratios = [b / f for _, _, f, b in rows]
    table = [
        "| round | order | float32 img/s | mixed_bfloat16 img/s | ratio |",
        "|---:|---|---:|---:|---:|",
        *(f"| {r} | {o} | {f:.1f} | {b:.1f} | {b / f:.2f}x |" for r, o, f, b in rows),
        f"| median | | {statistics.median(f for _, _, f, _ in rows):.1f} | "
        f"{statistics.median(b for _, _, _, b in rows):.1f} | **{statistics.median(ratios):.2f}x** |",
    ]
    text = "\n".join(
        [
            "# Benchmark: Res-Incep training on the CPU, float32 against mixed_bfloat16",
            "",
            f"Command: `python benchmarks/{Path(__file__).name} {' '.join(argv or sys.argv[1:])}`  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {git_commit()}  ",
            f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}); "
            f"bfloat16 features: {cpu_flags()}; load average at start {load}  ",
            f"Cell: Res-Incep (filters 40/60/75/80, photo augmentation, dropout 0.1), {args.input_size} px, AdamW, "
            f"{args.epochs} timed epochs of {args.images} random images, batch 32, after one untimed epoch; one fresh "
            "process per cell, TensorFlow backend.",
            "",
            *table,
            "",
            "Ratio: mixed_bfloat16 images/s over float32 images/s in the same round. Accuracy is a separate "
            "question: `reports/benchmarks/recognition.md` records which precision each run trained in.",
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n".join(table))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
