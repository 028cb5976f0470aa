"""Benchmark: training and prediction on a GPU through the project's own input path.

For each plain model (Res-Incep at 250 px, ResNet-50 at 224 px) and precision (float32, mixed_bfloat16),
each in a fresh subprocess (one dtype policy, one device-memory peak per process):

- training images/s from JPEG files on disk through ``pipeline.batches()`` as ``train.train`` uses it:
  its first epoch decodes every JPEG (and fills the decoded-image cache), the later ones read the
  cache; beside them the same compiled model fed from one batch already on the device (no input
  cost at all): the ``train_input`` rule wants the cached path at >= 90% of it;
- the step-time split: the share of each epoch's wall time that the training loop spent waiting
  for its next batch (in ``ImageBatches.__getitem__``, with the read-ahead running) vs the rest
  (dispatch and device compute);
- prediction images/s from JPEG files (``pipeline.batches(cache=False)``, decoding every image);
- peak device memory (JAX ``device.memory_stats()["peak_bytes_in_use"]``; "n/a" where the backend
  does not tell, e.g. on the CPU);
- validation top-1 after the same epochs, so that bfloat16 can be compared with float32.

Two more configurations (``--models`` names them; by default all four run) ask whether an augmented
or a retrieval model still trains compiled, now that the augmentation runs in the input pipeline
(``landmarklib.augment``) rather than as Keras random layers that switched XLA off under JAX:

- ``res_incep_photo``: Res-Incep with ``augment="photo"`` (``models.build``), its batches from
  ``pipeline.batches(..., augmentation=model.augmentation)`` exactly as ``train.train`` makes them (the
  random resized crop, flips and colour jitter in the decoding threads, anew every epoch);
- ``retrieval``: the same backbone under ``retrieval.embedding_model`` (GeM, 512-d embedding, cosine
  head), compiled with the ArcFace loss (``recipes.make_loss``), with the same photo augmentation.

Each reports training images/s (decoding, cached, on device), the input wait, and whether its train
step is compiled (``model.jit_compile`` after ``train.compile_model``: the table's "XLA" column, beside
an "augmentation" column). It must be on JAX and on any GPU: a configuration where it is not is
refused (reported, not timed: it would train op by op; ``train.compile_model`` itself refuses it on
JAX) and the run exits with status 1 after writing its report. On a TensorFlow CPU, Keras'
``jit_compile="auto"`` leaves XLA off: "no", not a failure. They run at ``--augmented-precisions``
(default mixed_bfloat16, ``params/gpu.yaml``'s) for ``--augmented-epochs`` (default 3: one decoding,
two from the cache) and skip prediction and validation (the model is the plain one's).

Optionally (``--report-run``) the ``params/gpu.yaml`` report is run too and its wall time per notebook
listed (about 15 minutes: not part of the 8-minute device run below).

The images are synthetic (coloured shapes on noise, ``benchmarks/train_input.py``'s folders), written
once under ``data/interim/bench``. Issue #9's targets (one H200): ResNet-50 >= 2,500 images/s in
float32 training and >= 1.8x that with bfloat16, Res-Incep >= 1,500 images/s; validation accuracy
with bfloat16 within 1 point of float32.

    .venv/bin/python benchmarks/gpu.py --smoke --report /tmp/gpu.md   # CPU: 1-2 minutes (see --smoke)
    KERAS_BACKEND=jax python benchmarks/gpu.py                       # GPU box: reports/benchmarks/gpu.md

The device run (a lent machine: one H200, 16 cores, CUDA JAX preinstalled, NO TensorFlow, NO package
registry). Here, on the CPU machine, first fetch the wheels it lacks, at the versions this project's
.venv was tested with (``--wheel-recipe`` prints the command with them; ``.whl/`` is git-ignored):

    .venv/bin/python benchmarks/gpu.py --wheel-recipe        # prints: python3 -m pip download ... -d .whl ...
    # i.e. python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
    #        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
    #        -d .whl keras==V absl-py==V rich==V ... pillow==V pandas==V tqdm==V pyyaml==V ...

then ONE call of the device tool, ``carry: [".whl"]``, ``timeout_s: 600``, with this command:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \\
      && export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax \\
      && python3 -m landmarklib.devices --require gpu \\
      && python3 benchmarks/gpu.py --report $OUT/gpu.md

(the device check stops the run at once, in one line, when the machine's JAX sees no GPU). Not yet
timed on a GPU: it is sized for the 8-minute device budget (8,192 JPEGs written once, then four
plain configurations, each a process start, one XLA compilation of the train and predict steps and
4 x 48 + 2 x 48 training steps of 128 images; then the two augmented ones, each a process start, one
compilation of the train step only and 3 x 48 + 2 x 48 steps). The two augmented configurations add
two process starts and two compilations, 480 steps to the plain ones' 1,152 and no prediction: an
estimated 1.5-2 minutes (compilation dominates; on one H100 or H200 the steps take seconds), a run
of about 7-8 minutes in all. If it runs past the limit, rerun only some: ``--models res_incep resnet50``
(the plain ones, the run as it was before), ``--models res_incep_photo retrieval`` (only the XLA check
of the augmented ones, about 2 minutes), ``--models resnet50``, or ``--epochs 3``. Each configuration's
numbers (``jit_compile`` among them) are printed as one JSON line as soon as it finishes, so even a
run cut short shows them. Copy the returned ``gpu.md`` to ``reports/benchmarks/gpu.md`` and commit it.

``--smoke`` (this CPU): tiny JPEGs and a tiny Res-Incep standing for both backbones: the plain one at
both precisions, ``res_incep_photo`` and ``retrieval``; XLA's cheapest CPU code generation and one JAX
compilation cache shared by its subprocesses keep it to 1-2 minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_report  # noqa: E402  (benchmarks/common.py)
from train_input import _machine, _table, make_folder  # noqa: E402  (the synthetic folders)

MODELS = {"res_incep": 250, "resnet50": 224}  # backbone -> input size (px)
CONFIGS = {  # --models: configuration -> (backbone, augmentation, loss)
    "res_incep": ("res_incep", False, "crossentropy"),
    "resnet50": ("resnet50", False, "crossentropy"),
    "res_incep_photo": ("res_incep", "photo", "crossentropy"),  # augmented in pipeline.batches' threads
    "retrieval": ("res_incep", "photo", "arcface"),  # retrieval.embedding_model: GeM + ArcFace head
}
AUGMENTED = ("res_incep_photo", "retrieval")
"""The configurations that catch an augmented or retrieval model training op by op (no XLA): they
run at ``--augmented-precisions`` for ``--augmented-epochs`` epochs and skip prediction and validation."""
PRECISIONS = ("float32", "mixed_bfloat16")
# What the device lacks (CUDA JAX and numpy are there): the project's imports and their own dependencies.
WHEELS = (
    "keras",
    "absl-py",
    "rich",
    "markdown-it-py",
    "mdurl",
    "pygments",
    "namex",
    "h5py",
    "optree",
    "typing-extensions",
    "packaging",
    "pillow",
    "pandas",
    "python-dateutil",
    "six",
    "tzdata",
    "tqdm",
    "pyyaml",
)


# --------------------------------------------------------------------------- one configuration (subprocess)


def _timed_class(base: type) -> type:
    """``base`` (an ``ImageBatches``) that adds up the time its caller waits in ``__getitem__``."""

    class Timed(base):
        wait = 0.0

        def __getitem__(self, index):
            start = time.perf_counter()
            try:
                return super().__getitem__(index)
            finally:
                self.wait += time.perf_counter() - start

    return Timed


def _on_device_batches(x: np.ndarray, y: np.ndarray, steps: int):
    """A dataset serving one batch already on the device ``steps`` times: the no-input-cost baseline."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        x, y = jax.device_put(x), jax.device_put(y)

    class OnDevice(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, index):
            return x, y

    return OnDevice()


def _peak_memory() -> int | None:
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _xla_expected(runtime: dict) -> bool:
    """Whether the train step must be compiled: always on JAX (``train.compile_model``), and on any GPU."""
    return runtime.get("backend") == "jax" or runtime.get("device") == "gpu"


def measure(args) -> dict:
    """Train (and predict) one configuration at one precision; the numbers of one table row."""
    import keras

    from landmarklib import config, data, devices
    from landmarklib.nets import models, pipeline, retrieval, train

    runtime = devices.setup(args.device, allow_cpu=args.device != "gpu", precision=args.precision, data_parallel=False)
    rows, _ = data.read_folder(args.image_dir)
    landmark_ids = np.sort(rows["landmark_id"].unique())
    rows = rows.assign(label=np.searchsorted(landmark_ids, rows["landmark_id"]).astype(np.int32))
    n_train = args.steps * args.batch_size  # whole batches only: no second compilation for a short last one
    train_rows, val_rows = rows.iloc[:n_train], rows.iloc[n_train : n_train + args.val_images]
    backbone, augment, loss = CONFIGS[args.model]
    settings = {"model": backbone, "input_size": args.input_size, "weights": None, "augment": augment}
    if args.tiny:
        settings.update(filters=(8, 8), blocks=(1, 1), dense_units=16)
    train.set_seed(0, deterministic=False)
    if loss == "crossentropy":
        model = models.build(config.ModelConfig(**settings), len(landmark_ids))
    else:  # as the retrieval notebook: the backbone cut before its pooling, GeM, embedding, cosine head
        embedding_dim = 16 if args.tiny else retrieval.EMBEDDING_DIM
        model = retrieval.embedding_model(settings, len(landmark_ids), embedding_dim=embedding_dim)
    augmentation = getattr(model, "augmentation", None)  # as train.train: applied by pipeline.batches
    result = {
        "model": args.model,
        "backbone": backbone,
        "loss": loss,
        "augmentation": augmentation.kind if augmentation is not None else "none",
        "precision": args.precision,
        "params": int(model.count_params()),
        "input_size": args.input_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "runtime": runtime,
        "ran_on": devices.summary(runtime),
        "xla_expected": _xla_expected(runtime),
    }
    try:
        train.compile_model(model, config.TrainConfig(optimizer="sgd", learning_rate=args.learning_rate, loss=loss))
    except RuntimeError as error:  # JAX: a layer XLA cannot compile; train.compile_model refuses it
        if getattr(model, "jit_compile", True):
            raise
        return {**result, "jit_compile": False, "refused": str(error)}
    result["jit_compile"] = bool(model.jit_compile)
    if result["xla_expected"] and not result["jit_compile"]:  # e.g. TensorFlow on a GPU: "auto" turned it off
        layers = sorted({type(layer).__name__ for layer in model._flatten_layers() if not layer.supports_jit})
        return {**result, "refused": f"train step not compiled by XLA (layers {', '.join(layers) or '?'})"}
    size, batch = args.input_size, args.batch_size
    predicting = args.model not in AUGMENTED  # the augmented ones only train: their question is XLA and input

    # compile the train (and predict) steps on a separate two-batch dataset of the same shapes
    warm_rows = train_rows.iloc[: 2 * batch]
    warm = pipeline.batches(warm_rows, size, batch, shuffle=True, cache=False, dtype="uint8", augmentation=augmentation)
    start = time.perf_counter()
    model.fit(warm, epochs=1, verbose=0)
    if predicting:
        model.predict(pipeline.batches(warm_rows, size, batch, cache=False, dtype="uint8"), verbose=0)
    compile_seconds = time.perf_counter() - start

    # as train.train: shuffled uint8 batches from the cache, augmented (if at all) in the decoding threads
    feed = pipeline.batches(train_rows, size, batch, shuffle=True, seed=0, dtype="uint8", augmentation=augmentation)
    feed.__class__ = _timed_class(type(feed))
    epochs = []
    for _epoch in range(args.epochs):
        feed.wait = 0.0
        start = time.perf_counter()
        model.fit(feed, epochs=1, verbose=0)
        keras.ops.convert_to_numpy(model.trainable_variables[0])  # the device has finished
        seconds = time.perf_counter() - start
        epochs.append({"seconds": seconds, "wait": feed.wait, "img_s": n_train / seconds})
    cached = epochs[1:] or epochs

    x0, y0 = feed[0][:2]
    baseline = _on_device_batches(x0, y0, args.steps)
    model.fit(baseline, epochs=1, verbose=0)  # the same shapes: already compiled; warms the feed
    start = time.perf_counter()
    model.fit(baseline, epochs=1, verbose=0)
    keras.ops.convert_to_numpy(model.trainable_variables[0])
    on_device = n_train / (time.perf_counter() - start)

    predict_img_s, scores = None, {}
    if predicting:
        predict_rows = rows.iloc[:n_train]
        start = time.perf_counter()
        model.predict(pipeline.batches(predict_rows, size, batch, cache=False, dtype="uint8"), verbose=0)
        predict_img_s = len(predict_rows) / (time.perf_counter() - start)
        scores = train.evaluate_split(model, val_rows, size, batch_size=batch) if len(val_rows) else {}
    return {
        **result,
        "epochs": epochs,
        "compile_seconds": compile_seconds,
        "train_decoding_img_s": epochs[0]["img_s"],
        "train_cached_img_s": statistics.median(e["img_s"] for e in cached),
        "input_wait_share": statistics.median(e["wait"] / e["seconds"] for e in cached),
        "on_device_img_s": on_device,
        "predict_img_s": predict_img_s,
        "peak_memory_bytes": _peak_memory(),
        "val_top1": scores.get("top1"),
        "n_val": scores.get("n"),
        "decode_workers": feed.decode_workers,
    }


def _smoke_env(out_dir: str) -> dict:
    """A smoke run's compile speed-ups (its numbers mean nothing): XLA's cheapest CPU code generation, and
    JAX's compilation cache shared by its subprocesses (the same tiny layers' initializers, compiled once)."""
    flags = os.environ.get("XLA_FLAGS", "")
    return {
        "XLA_FLAGS": f"{flags} --xla_backend_optimization_level=0".strip(),
        "JAX_COMPILATION_CACHE_DIR": str(Path(out_dir) / "jax-cache-smoke"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


def _in_subprocess(env: dict | None = None, **options) -> dict:
    command = [sys.executable, __file__, "--worker"]
    for key, value in options.items():
        if value is True:
            command.append(f"--{key.replace('_', '-')}")
        elif value not in (False, None):
            command += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore", **(env or {}))
    env.setdefault("KERAS_BACKEND", "jax")
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{options.get('model')} {options.get('precision')} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the report run (optional)


def report_run(params: str) -> list[list]:
    """Run ``landmarks report --params params`` and read each notebook's wall time from its summary."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "landmarklib.cli", "report", "--params", params, "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    total = time.perf_counter() - start
    rows = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts and parts[0][:2].isdigit() and len(parts) >= 3:
            rows.append([parts[0], " ".join(parts[1:-1]), parts[-1]])
    rows.append(["total", f"exit {done.returncode}", f"{total:.0f}"])
    return rows


# --------------------------------------------------------------------------- report


def _versions() -> str:
    names = ("keras", "jax", "jaxlib", "numpy", "pillow")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return f"python {platform.python_version()}, " + ", ".join(found)


def _gib(value) -> str:
    return "n/a" if value is None else f"{value / 2**30:.1f}"


def run(args) -> tuple[str, bool]:
    """The report, and whether a configuration was refused (its train step not compiled where it must be)."""
    folder = make_folder(
        Path(args.out_dir) / f"synthetic-{args.images}-{args.image_size}px", args.images, args.classes, args.image_size
    )
    plain = [m for m in args.models if m not in AUGMENTED]
    augmented = [m for m in args.models if m in AUGMENTED]
    configs = [(m, p, args.epochs) for m in plain for p in args.precisions]
    configs += [(m, p, args.augmented_epochs) for m in augmented for p in args.augmented_precisions]
    results = []
    for model, precision, epochs in configs:
        r = _in_subprocess(
            env=_smoke_env(args.out_dir) if args.smoke else None,
            model=model,
            precision=precision,
            image_dir=folder,
            input_size=args.input_size or MODELS[CONFIGS[model][0]],
            batch_size=args.batch_size,
            steps=args.steps,
            epochs=epochs,
            val_images=args.val_images,
            learning_rate=args.learning_rate,
            device=args.device,
            tiny=args.smoke,
        )
        print(json.dumps({k: v for k, v in r.items() if k != "epochs"}), flush=True)
        results.append(r)

    rows, verdicts = [], []
    measured = [r for r in results if "refused" not in r]
    fp32 = {r["model"]: r for r in measured if r["precision"] == "float32"}
    for r in results:
        name = f"{r['model']} ({r['params'] / 1e6:.2f} M)"
        if r["model"] == "retrieval":
            name = f"retrieval: {r['backbone']} + GeM + {r['loss']} ({r['params'] / 1e6:.2f} M)"
        xla = "yes" if r["jit_compile"] else ("**NO**" if r["xla_expected"] else "no")
        head = [name, r["input_size"], r["precision"], r["augmentation"], xla, r["batch_size"]]
        if "refused" in r:
            rows.append(head + ["refused"] + ["-"] * 7)
            verdicts.append(
                f"{r['model']} {r['precision']}: REFUSED, the train step would run op by op ({r['refused']})"
            )
            continue
        ratio = r["train_cached_img_s"] / r["on_device_img_s"]
        speedup = r["train_cached_img_s"] / fp32[r["model"]]["train_cached_img_s"] if r["model"] in fp32 else None
        rows.append(
            head
            + [
                f"{r['train_decoding_img_s']:.0f}",
                f"**{r['train_cached_img_s']:.0f}**",
                f"{r['on_device_img_s']:.0f}",
                f"{ratio:.2f}",
                f"{r['input_wait_share']:.0%}",
                "-" if r["predict_img_s"] is None else f"{r['predict_img_s']:.0f}",
                _gib(r["peak_memory_bytes"]),
                "n/a" if r["val_top1"] is None else f"{r['val_top1']:.1%}",
                f"{speedup:.2f}x" if speedup else "",
            ]
        )
        verdicts.append(
            f"{r['model']} {r['precision']}: cached feed at {ratio:.2f} of the on-device batch "
            f"({'meets' if ratio >= 0.9 else 'MISSES'} >= 0.90)"
        )
        if r["model"] in AUGMENTED:
            compiled = (
                "train step compiled by XLA"
                if r["jit_compile"]
                else "train step not compiled (Keras' jit_compile='auto' on a TensorFlow CPU; a GPU run compiles)"
            )
            unaugmented = next(
                (u for u in measured if u["model"] == "res_incep" and u["precision"] == r["precision"]), None
            )
            cost = (
                f"; {r['train_cached_img_s'] / unaugmented['train_cached_img_s']:.2f}x the unaugmented "
                "res_incep's cached images/s"
                if unaugmented
                else ""
            )
            verdicts.append(
                f"{r['model']} {r['precision']} ({r['augmentation']} augmentation in the input pipeline): "
                f"{compiled}, input wait {r['input_wait_share']:.0%}{cost}"
            )
    for model in fp32 if not args.smoke else []:  # the targets are for the full models on a GPU
        if model in AUGMENTED:
            continue
        bf16 = next((r for r in measured if r["model"] == model and r["precision"] == "mixed_bfloat16"), None)
        f = fp32[model]["train_cached_img_s"]
        target = {"resnet50": 2500, "res_incep": 1500}[model]
        verdicts.append(f"{model} float32: {f:.0f} images/s ({'meets' if f >= target else 'MISSES'} >= {target:,})")
        if bf16:
            b = bf16["train_cached_img_s"]
            verdicts.append(
                f"{model} bfloat16: {b / f:.2f}x float32"
                + (f" ({'meets' if b >= 1.8 * f else 'MISSES'} >= 1.8x)" if model == "resnet50" else "")
            )
            if fp32[model]["val_top1"] is not None and bf16["val_top1"] is not None:
                gap = abs(bf16["val_top1"] - fp32[model]["val_top1"])
                verdicts.append(
                    f"{model}: validation top-1 bfloat16 vs float32 differs by {gap:.1%} "
                    f"({'meets' if gap <= 0.01 else 'MISSES'} <= 1 point)"
                )
    table = _table(
        [
            "model",
            "px",
            "precision",
            "augmentation",
            "XLA",
            "batch",
            "train img/s, epoch 1 (decoding JPEGs)",
            "train img/s, later epochs (cache)",
            "train img/s, one batch on device",
            "cache / on device",
            "input wait",
            "predict img/s (decoding JPEGs)",
            "peak device GiB",
            "val top-1",
            "vs float32",
        ],
        rows,
    )
    report_section = ""
    if args.report_run:
        report_section = (
            "\n## The `params/gpu.yaml` report\n\n"
            + _table(["notebook", "status", "seconds"], report_run(args.report_run))
            + "\n"
        )
    command = "python benchmarks/gpu.py " + " ".join(sys.argv[1:])
    smoke = (
        "\n**Smoke run** (`--smoke`): tiny images, a tiny Res-Incep, a few steps on this machine's CPU. "
        "It checks that the script works; its numbers say nothing about a GPU.\n"
        if args.smoke
        else ""
    )
    ran_on = sorted({r["ran_on"] for r in results})
    augmented_note = ""
    if augmented:
        augmented_note = f"""
{", ".join(f"`{m}`" for m in augmented)} (at {", ".join(args.augmented_precisions)}, {args.augmented_epochs} epochs,
training only) ask whether an augmented or retrieval model still trains compiled: `res_incep_photo` is Res-Incep
with `augment="photo"`, `retrieval` the same backbone under `retrieval.embedding_model`'s GeM + cosine head with
the ArcFace loss. Their batches come from `pipeline.batches(..., augmentation=model.augmentation)` as in
`train.train`: the photo augmentation runs in the decoding threads, on the cache's images, anew every epoch.
"XLA" is `model.jit_compile` after `train.compile_model`: it must be "yes" on JAX and on any GPU; a
configuration where it is not is refused (not timed: it would train op by op) and the run exits with status 1.
"""
    report = f"""# Training and prediction on a GPU: images/s through the project's input path
{smoke}
Command: `{command.strip()}`  
Date: {datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}  
Machine: {_machine()}  
Ran on: {"; ".join(ran_on)}  
Versions: {_versions()}

{args.images:,} synthetic JPEGs of {args.image_size} px on disk ({args.classes} classes); each configuration
in a fresh subprocess, on one device, trains {args.steps} steps of {args.batch_size} images per epoch
(SGD, learning rate {args.learning_rate}) after compiling on a separate two-batch set. Epoch 1 decodes every
JPEG with {measured[0]["decode_workers"] if measured else "?"} threads (and fills the decoded-image cache);
"later epochs" is the median of epochs 2-{args.epochs}, read from the cache as `train.train` does. "One batch on
device" feeds the same compiled model one batch already in device memory each step: no input cost.
"Input wait" is the median share of a later epoch's wall time spent waiting for the next batch. Prediction
decodes every JPEG. "Val top-1" is measured on {args.val_images:,} held-out images after the {args.epochs}
epochs: float32 and bfloat16 start from the same weights and see the same batches.
{augmented_note}
{table}

## Verdict

{chr(10).join(f"- {v}" for v in verdicts)}
{report_section}"""
    return report, any("refused" in r for r in results)


def wheel_recipe(dest: str = ".whl", python_version: str = "3.12") -> str:
    """The ``pip download`` command for the wheels the lent GPU machine lacks, at this environment's versions."""
    pins = []
    for name in WHEELS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return (
        "python3 -m pip download --no-deps --only-binary=:all: "
        f"--python-version {python_version} --implementation cp "
        "--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "
        f"-d {dest} " + " ".join(pins)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny images, a tiny Res-Incep (plain, photo-augmented, retrieval), a few steps: checks the script on a CPU",
    )
    parser.add_argument("--report", default=str(ROOT / "reports" / "benchmarks" / "gpu.md"))
    parser.add_argument("--out-dir", default=str(ROOT / "data" / "interim" / "bench"), help="synthetic folders")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list(CONFIGS),
        default=list(CONFIGS),
        help="configurations to run (default: all; `res_incep resnet50`: the plain ones only)",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS + ("mixed_float16",),
        default=list(PRECISIONS),
        help="precisions of res_incep and resnet50",
    )
    parser.add_argument(
        "--augmented-precisions",
        nargs="+",
        choices=PRECISIONS + ("mixed_float16",),
        default=["mixed_bfloat16"],
        help="precisions of res_incep_photo and retrieval (default: params/gpu.yaml's mixed_bfloat16)",
    )
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--image-size", type=int, default=256, help="stored JPEG size (px)")
    parser.add_argument("--input-size", type=int, default=None, help="model input (default: 250 / 224 px)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=48, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epoch 1 decodes, the later ones read the cache")
    parser.add_argument(
        "--augmented-epochs", type=int, default=3, help="epochs of res_incep_photo and retrieval (training only)"
    )
    parser.add_argument("--val-images", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--device", choices=["auto", "gpu", "cpu"], default="auto")
    parser.add_argument(
        "--report-run",
        metavar="PARAMS",
        default=None,
        help="also run `landmarks report --params PARAMS` and list its wall time per notebook",
    )
    parser.add_argument("--wheel-recipe", action="store_true", help="print the pip download command for the device")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--image-dir", help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.wheel_recipe:
        print(wheel_recipe())
        return 0
    if args.worker:
        print(json.dumps(measure(args)))
        return 0
    if args.smoke:
        args.models = [m for m in args.models if m != "resnet50"] or ["res_incep"]  # a tiny Res-Incep for both
        args.images, args.image_size, args.input_size, args.classes = 96, 40, 32, 4
        args.batch_size, args.steps, args.epochs, args.augmented_epochs, args.val_images = 8, 3, 2, 2, 16
    report, refused = run(args)
    write_report(report, args.report)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
