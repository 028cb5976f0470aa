"""Benchmark: every training kind on TensorFlow and on JAX, side by side, on this machine.

For each training kind (the study's classifier without augmentation, with ``add`` and ``replace``;
the modern recipe with the photo augmentation; retrieval with ArcFace and CosFace heads; the
ResNet-50 benchmark), under each Keras backend, in a fresh subprocess: ``train.train`` on the same
synthetic folder (``benchmarks/train_input.py``'s coloured shapes), and from its history

- the first epoch's wall time (on JAX: mostly the XLA compilation of the train and test steps),
- the later epochs' training seconds per epoch and per 1,000 images (``add`` trains every image
  twice per epoch: its per-image cost is the one to compare),
- whether the train step was compiled (``model.jit_compile``: on JAX it must be True),
- the ratio of each augmented kind's seconds per epoch to the same backend's unaugmented run.

Then, for a GPU's input pipeline, the CPU cost of feeding it: images per second on ONE core for
decoding a stored JPEG to the model's size, for reading the decoded-image cache, and for each
augmentation kind (``augment.Augmentation``), at 224 and 250 px; and the cores needed to feed
3,000 images/s (the ResNet-50 float32 target on one H200) from the cache with augmentation.

    .venv/bin/python benchmarks/backends.py                      # writes reports/benchmarks/backends.md
    .venv/bin/python benchmarks/backends.py --kinds study,modern-photo --backends jax --report /tmp/b.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    cpu_model,
    git_commit,
    write_report,
)  # benchmarks/common.py (this folder is on sys.path)
from train_input import make_folder

ROOT = Path(__file__).resolve().parent.parent

KINDS = {
    "study": {},
    "study-add": {"augment": "add"},
    "study-replace": {"augment": "replace"},
    "modern-photo": {"augment": "photo", "recipe": "modern"},
    "retrieval-arcface": {"augment": "photo", "recipe": "modern", "loss": "arcface"},
    "retrieval-cosface": {"augment": "photo", "recipe": "modern", "loss": "cosface"},
    "resnet50": {"model": "resnet50"},
}
"""Training kind -> what it changes from the study's classifier (the unaugmented baseline)."""

DEFAULT_KINDS = list(KINDS)
"""The kinds a run times by default (all of them)."""

FEED_TARGET = 3000
"""Images per second to feed: the ResNet-50 float32 target on one H200 (``benchmarks/gpu.py``)."""


# --------------------------------------------------------------------------- one training (subprocess)


def train_one(args) -> dict:
    """Train one kind for ``args.epochs`` epochs under this process's backend; its timings."""
    import keras

    from landmarklib import config, data
    from landmarklib.nets import models, retrieval, train

    changes = KINDS[args.kind]
    split = data.load_split(args.image_dir, val_fraction=0.2, seed=0)
    if changes.get("model") == "resnet50":  # 23.6M weights: a quarter of the rows keeps the CPU run short
        keep = split.train.sample(frac=0.25, random_state=0).sort_index()
        split = dataclasses.replace(split, train=keep, val=split.val.iloc[: len(split.val) // 4])
    network = {
        "model": changes.get("model", "res_incep"),
        "input_size": args.input_size,
        "augment": False,
    }
    network.update({k: v for k, v in changes.items() if k == "augment"})
    if network["model"] == "resnet50":
        network.update(weights=None, weights_download_timeout=0)
    recipe = config.MODERN_RECIPE if changes.get("recipe") == "modern" else {"learning_rate": 0.002}
    loss = {k: v for k, v in changes.items() if k == "loss"}
    with tempfile.TemporaryDirectory() as models_dir:
        settings = config.TrainConfig.from_params(
            recipe,
            epochs=args.epochs,
            batch_size=args.batch_size,
            models_dir=models_dir,
            **loss,
        )
        model_config = config.ModelConfig.from_params({**config.MODERN_RECIPE, **network} if recipe else network)
        train.set_seed(0)
        if loss:
            model = retrieval.embedding_model(model_config, len(split.landmark_ids), embedding_dim=128)
        else:
            model = models.build(model_config, len(split.landmark_ids))
        result = train.train(model, split, settings, name=args.kind, progress=False)
    history = result.history
    later = history.iloc[1:]
    images = len(split.train) * (2 if changes.get("augment") == "add" else 1)
    return {
        "backend": keras.backend.backend(),
        "kind": args.kind,
        "jit_compile": bool(model.jit_compile),
        "first_epoch_s": float(history["seconds"].iloc[0]),
        "train_s_per_epoch": float(later["train_seconds"].mean()),
        "train_s_per_epoch_all": [round(float(v), 3) for v in later["train_seconds"]],
        "ms_per_image": 1000 * float(later["train_seconds"].mean()) / images,
        "images_per_epoch": images,
        "val_top1": float(result.val_top1),
    }


def _subprocess(backend: str, kind: str, args) -> dict:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
    }
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--kind",
        kind,
        "--image-dir",
        str(args.image_dir),
    ]
    command += [
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--input-size",
        str(args.input_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(ROOT))
    if done.returncode != 0:
        raise RuntimeError(f"{backend} {kind} failed:\n{done.stderr[-3000:]}")
    if "jit_compile=False" in done.stderr:
        raise RuntimeError(f"{backend} {kind}: Keras fell back to op-by-op execution:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the CPU cost of feeding


def _per_second(function, n: int, repeats: int = 3) -> float:
    """Calls of ``function(i)`` per second on one thread (the best of ``repeats`` rounds of ``n``)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            function(i)
        best = min(best, time.perf_counter() - start)
    return n / best


def _rates_at(size: int, files: list[Path]) -> dict[str, float]:
    """Images/s on one core at ``size`` px: decode a stored JPEG, read the decoded cache, each augmentation."""
    from landmarklib import augment, data
    from landmarklib.nets import pipeline

    decoded = [data._decode(str(f), size) for f in files]
    cache = pipeline.DecodedCache(len(decoded), size)
    for i, image in enumerate(decoded):
        cache.write(i, np.ascontiguousarray(image))
    out = np.empty((size, size, 3), np.uint8)
    rates = {
        "decode JPEG": _per_second(lambda i: data._decode(str(files[i % len(files)]), size), 64),
        "read cache": _per_second(lambda i: cache.read(i % len(decoded), out), 256),
    }
    for kind in augment.KINDS:
        aug = augment.Augmentation(kind)
        rates[f"augment {kind}"] = _per_second(
            lambda i, aug=aug: aug.image(decoded[i % len(decoded)], augment.rng(0, 0, i)),
            64,
        )
    return rates


def feeding(args) -> list[dict]:
    """``_rates_at`` 224 and 250 px, as rows."""
    files = sorted(Path(args.large_dir).rglob("*.jpg"))[:32]
    return [
        {"size": size, "step": step, "per_core": rate}
        for size in (224, 250)
        for step, rate in _rates_at(size, files).items()
    ]


# --------------------------------------------------------------------------- the report


def _table(header: list[str], rows: list[list]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(runs: list[dict], feed: list[dict], args, seconds: float) -> str:
    by = {(r["backend"], r["kind"]): r for r in runs}
    rows = []
    for kind in args.kinds:
        for backend in args.backends:
            r = by.get((backend, kind))
            if r is None:
                continue
            base = by.get((backend, "study"))
            ratio_epoch = r["train_s_per_epoch"] / base["train_s_per_epoch"] if base and kind != "study" else None
            ratio_image = r["ms_per_image"] / base["ms_per_image"] if base and kind != "study" else None
            rows.append(
                [
                    kind,
                    backend,
                    "yes" if r["jit_compile"] else "**no**",
                    f"{r['first_epoch_s']:.1f}",
                    f"{r['train_s_per_epoch']:.2f}",
                    f"{r['ms_per_image']:.2f}",
                    f"{ratio_epoch:.2f}x" if ratio_epoch else "",
                    f"{ratio_image:.2f}x" if ratio_image else "",
                    f"{r['val_top1']:.3f}",
                ]
            )
    cross = []
    for kind in args.kinds:
        tf, jx = by.get(("tensorflow", kind)), by.get(("jax", kind))
        if tf and jx:
            cross.append([kind, f"{jx['train_s_per_epoch'] / tf['train_s_per_epoch']:.2f}x"])
    feed_rows, cores = [], []
    for size in (224, 250):
        rates = {r["step"]: r["per_core"] for r in feed if r["size"] == size}
        for step, rate in rates.items():
            feed_rows.append([f"{size} px", step, f"{rate:,.0f}"])
        for kind in ("study", "photo"):
            per_core = 1 / (1 / rates["read cache"] + 1 / rates[f"augment {kind}"])
            first = 1 / (1 / rates["decode JPEG"] + 1 / rates[f"augment {kind}"])
            cores.append(
                [
                    f"{size} px",
                    kind,
                    f"{per_core:,.0f}",
                    f"{FEED_TARGET / per_core:.1f}",
                    f"{FEED_TARGET / first:.1f}",
                ]
            )
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return "\n".join(
        [
            "# Training kinds on TensorFlow and JAX (this CPU)",
            "",
            f"{when}, commit {git_commit()}, {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"`benchmarks/backends.py` in {seconds / 60:.1f} min. Each row: a fresh process, `train.train` for "
            f"{args.epochs} epochs of a synthetic folder ({args.n_images} coloured-shape JPEGs, {args.classes} classes, "
            f"{args.input_size} px, batch {args.batch_size}; ResNet-50 on a quarter of the rows). Augmentation runs in "
            "the input pipeline's threads (`landmarklib/augment.py`), so every model is plain and, on JAX, compiled "
            "by XLA. `s/epoch` is the mean training time of the epochs after the first (validation excluded); "
            "`vs study` divides it by the same backend's unaugmented run (`add` trains each image twice per epoch: "
            "compare it per image). Same machine, one run after the other: ratios compare like with like; the "
            "absolute times move with the machine's load.",
            "",
            _table(
                [
                    "kind",
                    "backend",
                    "XLA",
                    "first epoch s",
                    "s/epoch",
                    "ms/image",
                    "vs study (epoch)",
                    "vs study (image)",
                    "val top-1",
                ],
                rows,
            ),
            "",
            "JAX / TensorFlow seconds per epoch, by kind (XLA's CPU convolutions are slower than TensorFlow's oneDNN "
            "ones: a guard against falling back to op by op, not a ranking of backends):",
            "",
            _table(["kind", "JAX / TF"], cross),
            "",
            "## Feeding a GPU: the input pipeline's CPU cost",
            "",
            "Images per second on one core (one thread, best of 3 rounds; `decode JPEG`: a stored 256 px JPEG "
            "decoded and resized as `pipeline.batches` does in the first epoch; `read cache`: the decoded-image "
            "cache of the later epochs; `augment`: one `augment.Augmentation` draw):",
            "",
            _table(["size", "step", "images/s per core"], feed_rows),
            "",
            f"Cores to feed {FEED_TARGET:,} images/s (the ResNet-50 float32 target on one H200), augmenting every "
            "image: from the cache (every epoch after the first), and decoding every JPEG (the first epoch):",
            "",
            _table(
                [
                    "size",
                    "augmentation",
                    "images/s per core (cache + augment)",
                    "cores (cache)",
                    "cores (decode)",
                ],
                cores,
            ),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=str(ROOT / "reports" / "benchmarks" / "backends.md"))
    parser.add_argument(
        "--out-dir",
        default=str(ROOT / "data" / "interim" / "bench"),
        help="synthetic folders",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(DEFAULT_KINDS),
        help=f"comma-separated, of {', '.join(KINDS)}",
    )
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--epochs", type=int, default=3, help="the first compiles; the others are timed")
    parser.add_argument("--n-images", type=int, default=960)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--image-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(train_one(args)))
        return 0
    args.kinds = [k for k in args.kinds.split(",") if k]
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(args.kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}")
    start = time.perf_counter()
    out = Path(args.out_dir)
    args.image_dir = make_folder(out / f"backends-{args.n_images}", args.n_images, args.classes, 96)
    args.large_dir = make_folder(out / "backends-feed-256", 32, 4, 256)
    runs = []
    for kind in args.kinds:
        for backend in args.backends:
            run = _subprocess(backend, kind, args)
            print(
                f"{kind:18s} {backend:10s} XLA {run['jit_compile']!s:5s} first {run['first_epoch_s']:6.1f} s  "
                f"{run['train_s_per_epoch']:6.2f} s/epoch {statistics.fmean([run['ms_per_image']]):6.2f} ms/image",
                flush=True,
            )
            runs.append(run)
    feed = feeding(args)
    write_report(report(runs, feed, args, time.perf_counter() - start), args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
