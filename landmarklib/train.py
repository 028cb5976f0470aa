"""Compile, fit, checkpoint and time a landmark model on a fetched folder.

``train`` writes, under ``out_dir``:

    <name>.keras          the model at its best epoch (highest validation accuracy)
    <name>.labels.json    the label map (class index -> landmark_id)
    <name>.history.csv    one row per epoch: epoch, loss, accuracy, top5, val_loss,
                          val_accuracy, val_top5, seconds, train_seconds, images_per_second
    <name>.resume/        while training runs: the last finished epoch, so that a
                          killed run given the same arguments resumes there
                          (removed when training ends)

Seeding: ``set_seed`` seeds Python, NumPy and the backend and, with
``deterministic``, asks TensorFlow (or PyTorch) for deterministic kernels, so the
same parameters on the same machine give the same metrics. Model weights are
drawn when the model is built, so call ``set_seed`` before building it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import data, evaluate, models, paths, recipes

OPTIMIZERS = ("sgd", "rmsprop")
# What the study reports for its two models (its "Implementation" section).
STUDY_RESULTS = {
    "res_incep": {"params": 2_200_000, "input_size": 250, "epochs": 30, "batch_size": 8, "optimizer": "sgd",
                  "val_top1": 0.0589, "training_hours": 10.0},
    "resnet50": {"params": 25_636_712, "input_size": 250, "epochs": 35, "batch_size": 55, "optimizer": "rmsprop",
                 "val_top1": 0.0402, "training_hours": 0.5, "weights": "imagenet"},
}
COMPARISON_COLUMNS = ["params", "input_size", "epochs", "batch_size", "optimizer", "weights", "n_classes",
                      "val_top1", "val_top5", "seconds_per_epoch", "images_per_second", "training_hours"]
HISTORY_COLUMNS = [
    "epoch", "loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5",
    "seconds", "train_seconds", "images_per_second",
]


@dataclass
class TrainResult:
    """What ``train`` produced.

    Attributes:
        model: the trained model, with the weights of its best epoch (from ``model_path``).
        history: one row per epoch (see ``HISTORY_COLUMNS``).
        model_path, label_map_path, history_csv: the files written.
        best_epoch: the epoch (1-based) whose weights were kept.
        epochs_run: epochs trained (fewer than asked when early stopping stopped the run).
        first_epoch_seconds: wall time of the first epoch (includes tracing/compilation).
        seconds_per_epoch: mean wall time of the later epochs (of the first when only one ran).
        images_per_second: training images per second over the same epochs (validation excluded).
        val_top1, val_top5, val_loss: the best epoch's scores on all validation rows (inference mode).
        train_top1: training accuracy of the best epoch (measured during training,
            with dropout and any augmentation active).
        n_train, n_val, n_classes, params: sizes of the data and of the model.
        landmark_ids: the landmark of each class index (as in the label map).
        majority: share of the validation rows in their most frequent class (what
            always answering that class scores; chance is ``1 / n_classes``).
        resumed_from: the epoch a killed run was resumed from (0 for a fresh run).
        settings: the run's settings as the metrics record them: ``model`` (its name),
            ``input_size``, ``epochs``, ``batch_size``, ``optimizer``, ``learning_rate``,
            ``momentum`` (SGD only), ``seed``.
    """

    model: Any
    history: pd.DataFrame
    model_path: Path
    label_map_path: Path
    history_csv: Path
    best_epoch: int
    epochs_run: int
    first_epoch_seconds: float
    seconds_per_epoch: float
    images_per_second: float
    val_top1: float
    val_top5: float
    val_loss: float
    train_top1: float
    n_train: int
    n_val: int
    n_classes: int
    landmark_ids: list[int]
    majority: float
    params: int
    resumed_from: int = 0
    settings: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """The numbers notebooks 03/04 write: plain values, paths relative to the project root when inside it."""
        return {
            **self.settings,
            "params": self.params,
            "n_classes": self.n_classes,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "chance": 1.0 / self.n_classes,
            "majority": self.majority,
            "val_top1": self.val_top1,
            "val_top5": self.val_top5,
            "val_loss": self.val_loss,
            "train_top1": self.train_top1,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "first_epoch_seconds": self.first_epoch_seconds,
            "seconds_per_epoch": self.seconds_per_epoch,
            "images_per_second": self.images_per_second,
            "resumed_from": self.resumed_from,
            "model_path": display_path(self.model_path),
            "label_map_path": display_path(self.label_map_path),
            "history_csv": display_path(self.history_csv),
        }


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the project root when it lies inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(paths.project_root()))
    except ValueError:
        return str(path)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend; optionally ask for deterministic kernels.

    Args:
        seed: the seed.
        deterministic: TensorFlow: ``enable_op_determinism`` (for the rest of the
            process); PyTorch: ``use_deterministic_algorithms`` (warn only). JAX on CPU
            is deterministic.
    """
    import keras

    keras.utils.set_random_seed(int(seed))
    if not deterministic:
        return
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9):
    """A Keras optimizer by the study's names.

    Args:
        name: ``"sgd"`` (with momentum) or ``"rmsprop"`` (the study's benchmark).
        learning_rate: step size.
        momentum: momentum of SGD (RMSprop keeps Keras' default of none).
    """
    import keras

    name = name.lower()
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")


def compile_model(model, optimizer: str = "sgd", learning_rate: float = 0.01, momentum: float = 0.9,
                  recipe: recipes.Recipe = recipes.STUDY, epochs: int = 1, steps_per_epoch: int = 1) -> None:
    """Compile for integer labels: the recipe's loss, top-1 ``accuracy`` and ``top5`` metrics.

    The optimizer and loss come from ``recipes`` (the study's recipe: the named optimizer at a
    constant step, plain cross-entropy). ``jit_compile="auto"``: XLA where it pays (GPU, JAX),
    not on a TensorFlow CPU.
    """
    import keras

    model.compile(
        optimizer=recipes.make_optimizer(optimizer, learning_rate, momentum, recipe, epochs, steps_per_epoch),
        loss=recipes.make_loss(recipe),
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")],
        jit_compile="auto",
    )


def evaluate_split(model, frame: pd.DataFrame, input_size: int, batch_size: int = 64) -> dict:
    """Top-1 and top-5 accuracy and mean cross-entropy of ``model`` on labelled rows.

    Args:
        model: a model mapping 0..255 RGB images to class probabilities.
        frame: rows with ``path`` and ``label`` (as in ``data.Split``).
        input_size: side of the model's input, in pixels.
        batch_size: images per prediction batch.

    Returns:
        ``{"top1", "top5", "loss", "n"}``.
    """
    labels = frame["label"].to_numpy(np.int64)
    probs = np.asarray(model.predict(data.batches(frame, input_size, batch_size), verbose=0), dtype=np.float64)
    picked = probs[np.arange(len(labels)), labels]
    return {
        "top1": evaluate.top_k_accuracy(probs, labels, k=1),
        "top5": evaluate.top_k_accuracy(probs, labels, k=5),
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "n": int(len(labels)),
    }


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` through a temporary file, so a kill never leaves half a CSV."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


@functools.cache
def _epoch_log_class() -> type:
    """``EpochLog``, defined on first use so that importing this module does not import Keras."""
    import keras
    from tqdm.auto import tqdm

    class EpochLog(keras.callbacks.Callback):
        """Times each epoch, keeps the history file and the resume state, shows an epoch bar.

        Args:
            rows: history rows of epochs already done (a resumed run).
            history_csv: where the history is rewritten after each epoch.
            resume_dir: where the last finished epoch is kept (weights with the
                optimizer state, and ``state.json``).
            fingerprint: the run's settings; a resume needs the same.
            n_train: training images per epoch.
            epochs: epochs asked for (for the bar).
            progress: show the bar.
        """

        def __init__(self, rows, history_csv, resume_dir, fingerprint, n_train, epochs, progress):
            super().__init__()
            self.rows = list(rows)
            self.history_csv = history_csv
            self.resume_dir = resume_dir
            self.fingerprint = fingerprint
            self.n_train = n_train
            self.bar = tqdm(total=epochs, initial=len(rows), desc="epochs", unit="epoch", disable=not progress)

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()
            self.validation_start = None

        def on_test_begin(self, logs=None):
            # fit() validates at the end of each epoch through evaluate(), which calls this.
            if self.validation_start is None:
                self.validation_start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            train_seconds = (self.validation_start or end) - self.start
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            row.update(seconds=end - self.start, train_seconds=train_seconds,
                       images_per_second=self.n_train / train_seconds if train_seconds > 0 else math.nan)
            self.rows.append(row)
            _write_csv_atomic(history_frame(self.rows), self.history_csv)
            self._save_state(epoch + 1)
            self.bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}",
                                 val_acc=f"{row.get('val_accuracy', math.nan):.3f}", s=f"{row['seconds']:.0f}",
                                 refresh=False)  # one line per epoch in a notebook's text output
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

        def _save_state(self, epoch: int) -> None:
            """Weights + optimizer after ``epoch``, then ``state.json`` naming them (written last).

            ``save_weights`` leaves out the random layers' seed-generator counters
            (dropout, augmentation); ``state.json`` keeps them, so a resumed run draws
            the same random numbers as an uninterrupted one.
            """
            self.resume_dir.mkdir(parents=True, exist_ok=True)
            weights = self.resume_dir / f"epoch{epoch}.weights.h5"
            self.model.save_weights(weights, overwrite=True)
            state = {"epoch": epoch, "weights": weights.name, "fingerprint": self.fingerprint,
                     "seed_generators": [np.asarray(v).tolist() for v in _seed_generator_states(self.model)]}
            tmp = self.resume_dir / "state.json.tmp"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.resume_dir / "state.json")
            for old in self.resume_dir.glob("epoch*.weights.h5"):
                if old != weights:
                    old.unlink()

    return EpochLog


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """History rows as a DataFrame with the columns of ``HISTORY_COLUMNS`` first."""
    frame = pd.DataFrame(rows)
    front = [c for c in HISTORY_COLUMNS if c in frame.columns]
    return frame[front + [c for c in frame.columns if c not in front]]


def _seed_generator_states(model) -> list:
    """The state variables of the model's random layers (dropout, augmentation), in model order."""
    return [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]


def _resume_point(resume_dir: Path, fingerprint: dict, history_csv: Path) -> tuple[int, dict | None, list[dict]]:
    """(epoch, state, history rows) of an interrupted run with the same settings, else (0, None, []).

    The state (``state.json``) names the weights file (``state["weights"]``, made a
    path here) and holds the seed-generator states.
    """
    state_path = resume_dir / "state.json"
    if not state_path.is_file():
        return 0, None, []
    state = json.loads(state_path.read_text())
    weights = resume_dir / state.get("weights", "")
    if state.get("fingerprint") != fingerprint or not weights.is_file() or not history_csv.is_file():
        shutil.rmtree(resume_dir, ignore_errors=True)
        return 0, None, []
    epoch = int(state["epoch"])
    rows = pd.read_csv(history_csv).to_dict("records")
    rows = [r for r in rows if int(r["epoch"]) <= epoch]
    if len(rows) != epoch:
        shutil.rmtree(resume_dir, ignore_errors=True)
        return 0, None, []
    return epoch, {**state, "weights": weights}, rows


def train(
    model,
    split: data.Split,
    input_size: int,
    epochs: int,
    batch_size: int,
    optimizer: str = "sgd",
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    early_stopping_patience: int | None = None,
    out_dir: str | os.PathLike = "models",
    name: str = "res_incep",
    seed: int = 42,
    deterministic: bool = True,
    progress: bool = True,
    recipe: recipes.Recipe | dict | None = None,
) -> TrainResult:
    """Train ``model`` on ``split``, keep its best epoch, and measure it.

    Args:
        model: an uncompiled (or compiled: it is recompiled) ``keras.Model`` taking
            0..255 RGB images of ``input_size`` px.
        split: the training and validation rows (``data.load_split``); needs validation rows.
        input_size: side of the images fed to the model, in pixels.
        epochs: epochs to train (at most).
        batch_size: images per step.
        optimizer: ``"sgd"`` (the study's Res-Incep) or ``"rmsprop"`` (its ResNet-50).
        learning_rate: step size.
        momentum: momentum of SGD.
        early_stopping_patience: stop after this many epochs without a better
            validation accuracy (``None``: never).
        out_dir: models folder (relative to the project root or absolute).
        name: stem of the files written (``res_incep``, ``resnet50``, ...).
        seed: seed of the backend, the shuffling and the dropout.
        deterministic: ask for deterministic kernels (see ``set_seed``).
        progress: show an epoch progress bar.
        recipe: weight decay, learning-rate schedule, label smoothing and loss
            (``recipes.Recipe`` or a dict of its fields); ``None``: the study's.

    Returns:
        A ``TrainResult``.
    """
    import keras

    if len(split.val) == 0:
        raise ValueError("the split has no validation rows: lower min_images or raise val_fraction")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive (got {epochs}, {batch_size})")
    out = paths.resolve(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / f"{name}.keras"
    label_map_path = data.save_label_map(out / f"{name}.labels.json", split.landmark_ids)
    history_csv = out / f"{name}.history.csv"
    resume_dir = out / f"{name}.resume"
    settings = {
        "model": model.name, "input_size": int(input_size), "epochs": int(epochs), "batch_size": int(batch_size),
        "optimizer": optimizer.lower(), "learning_rate": float(learning_rate),
        "momentum": float(momentum) if optimizer.lower() == "sgd" else None, "seed": int(seed),
    }
    recipe = recipes.from_settings(recipe) if isinstance(recipe, dict) else (recipe or recipes.STUDY)
    settings.update(recipe.as_dict())
    # what a killed run must share with this one to be resumed (more epochs may be asked for)
    fingerprint = {**{k: v for k, v in settings.items() if k != "epochs"}, "params": int(model.count_params()),
                   "n_train": len(split.train), "n_val": len(split.val),
                   "landmark_ids": [int(v) for v in split.landmark_ids]}

    set_seed(seed, deterministic)
    compile_model(model, optimizer, learning_rate, momentum, recipe, epochs,
                  recipes.steps_per_epoch(len(split.train), batch_size))
    train_data = data.batches(split.train, input_size, batch_size, shuffle=True, seed=seed)
    val_data = data.batches(split.val, input_size, batch_size)

    initial_epoch, state, rows = _resume_point(resume_dir, fingerprint, history_csv)
    if state is not None:
        model.optimizer.build(model.trainable_variables)
        model.load_weights(state["weights"])
        for variable, value in zip(_seed_generator_states(model), state.get("seed_generators", [])):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        train_data.set_epoch(initial_epoch)
    best_so_far = max((r["val_accuracy"] for r in rows), default=None)
    callbacks = [
        _epoch_log_class()(rows, history_csv, resume_dir, fingerprint, len(split.train), epochs, progress),
        keras.callbacks.ModelCheckpoint(
            model_path, monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far, verbose=0,
        ),
    ]
    if early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=int(early_stopping_patience)))
    if initial_epoch < epochs:
        # shuffle=False: the batches are already permuted per epoch from the seed; Keras' own
        # shuffle would reorder them from Python's global random state, which a resumed run lacks.
        model.fit(train_data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, shuffle=False, verbose=0)
    shutil.rmtree(resume_dir, ignore_errors=True)

    history = history_frame(callbacks[0].rows)
    best = history.loc[history["val_accuracy"].idxmax()]
    if best["epoch"] != history["epoch"].iloc[-1] or initial_epoch >= epochs:
        model.load_weights(model_path)  # the best epoch; its validation scores are in the history
    later = history.iloc[1:] if len(history) > 1 else history
    return TrainResult(
        model=model,
        history=history,
        model_path=model_path,
        label_map_path=label_map_path,
        history_csv=history_csv,
        best_epoch=int(best["epoch"]),
        epochs_run=int(history["epoch"].max()),
        first_epoch_seconds=float(history["seconds"].iloc[0]),
        seconds_per_epoch=float(later["seconds"].mean()),
        images_per_second=float(len(split.train) * len(later) / later["train_seconds"].sum()),
        val_top1=float(best["val_accuracy"]),
        val_top5=float(best["val_top5"]),
        val_loss=float(best["val_loss"]),
        train_top1=float(best["accuracy"]),
        n_train=len(split.train),
        n_val=len(split.val),
        n_classes=len(split.landmark_ids),
        landmark_ids=[int(v) for v in split.landmark_ids],
        majority=float(split.val["label"].value_counts().max() / len(split.val)),
        params=int(model.count_params()),
        resumed_from=initial_epoch,
        settings=settings,
    )


def comparison_table(runs: dict[str, dict | None]) -> pd.DataFrame:
    """Models side by side, each as measured in this run and as the study reports it.

    Args:
        runs: model name (``res_incep``, ``resnet50``) -> its metrics (``TrainResult.metrics()``
            or a notebook's metrics file), or ``None`` when that model was not trained.

    Returns:
        One row per (model, source), source ``this run`` or ``study``, with ``COMPARISON_COLUMNS``
        (missing values empty); ``training_hours`` of this run is ``epochs_run * seconds_per_epoch``.
    """
    rows = []
    for name, measured in runs.items():
        if measured:
            epochs = measured.get("epochs_run", measured.get("epochs", 0))
            hours = epochs * (measured.get("seconds_per_epoch") or 0) / 3600
            rows.append({"model": name, "source": "this run", **{k: measured.get(k) for k in COMPARISON_COLUMNS},
                         "training_hours": round(hours, 4)})
        if name in STUDY_RESULTS:
            study = STUDY_RESULTS[name]
            rows.append({"model": name, "source": "study", **{k: study.get(k) for k in COMPARISON_COLUMNS}})
    return pd.DataFrame(rows, columns=["model", "source", *COMPARISON_COLUMNS]).set_index(["model", "source"])


def _same_data(split: data.Split, result: TrainResult) -> bool:
    """Whether ``split`` holds the landmarks and split sizes that ``result`` was trained on."""
    return (split.landmark_ids == result.landmark_ids and len(split.train) == result.n_train
            and len(split.val) == result.n_val)


def _slug(text: str) -> str:
    """A file-name-safe form of a variant name: ``"min_images=5"`` -> ``"min_images_5"``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "variant"


def train_variants(
    variants: list[dict],
    settings: dict,
    baseline: TrainResult | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, TrainResult]]:
    """Train each variant of a run: ``settings`` with the variant's own keys changed.

    Args:
        variants: dicts with a ``name`` and the settings it changes, e.g.
            ``{"name": "augmentation", "augment": True}`` or ``{"name": "min_images=5", "min_images": 5}``.
        settings: ``train_dir``, ``min_images``, ``val_fraction``, ``input_size``,
            ``epochs``, ``batch_size``, ``optimizer``, ``learning_rate``, ``momentum``,
            ``early_stopping_patience``, ``out_dir``, ``name``, ``seed``, ``deterministic``,
            and the model's (``models.build``: ``model``, ``filters``, ``augment``,
            ``weights``, ...). A variant may change any of them but ``name`` and ``out_dir``.
        baseline: a result trained with ``settings`` (the same epochs): reused, instead of
            training the same model again, for a variant that changes nothing, or only
            ``min_images`` without changing which images and landmarks are kept.
        progress: show epoch bars.

    Returns:
        (table, results): one row per variant (``name``, ``changes``, ``reused`` and the
        accuracy and timing numbers of ``TrainResult.metrics``), and the results by name.
    """
    rows, results = [], {}
    for variant in variants:
        changes = {k: v for k, v in variant.items() if k != "name"}
        unknown = sorted(set(changes) - set(settings) | set(changes) & {"name", "out_dir"})
        if unknown:
            raise ValueError(f"variant {variant.get('name')!r}: cannot change {unknown} (settings: {sorted(settings)})")
        name = str(variant.get("name") or ", ".join(f"{k}={v}" for k, v in changes.items()) or "baseline")
        run = {**settings, **changes}
        same_settings = baseline is not None and baseline.settings.get("epochs") == settings["epochs"] and all(
            run[k] == settings[k] for k in run if k != "min_images")
        split = None
        if same_settings and "min_images" in changes:
            split = data.load_split(run["train_dir"], min_images=run["min_images"],
                                    val_fraction=run["val_fraction"], seed=run["seed"])
        if same_settings and (split is None or _same_data(split, baseline)):
            result, reused = baseline, True
            if progress and changes:
                print(f"variant {name}: the same images and landmarks as the main run, which it reuses", flush=True)
        else:
            split = split or data.load_split(run["train_dir"], min_images=run["min_images"],
                                             val_fraction=run["val_fraction"], seed=run["seed"])
            set_seed(run["seed"], run["deterministic"])
            model = models.build(run, len(split.landmark_ids))
            if progress:
                print(f"variant {name}: {changes or 'no change'}", flush=True)
            result, reused = train(
                model, split, run["input_size"], run["epochs"], run["batch_size"], run["optimizer"],
                run["learning_rate"], run["momentum"], run["early_stopping_patience"], run["out_dir"],
                f"{settings['name']}-{_slug(name)}", run["seed"], run["deterministic"], progress,
                recipe=recipes.from_settings(run),
            ), False
        results[name] = result
        rows.append({"name": name, "changes": changes, "reused": reused, **result.metrics()})
    return pd.DataFrame(rows), results
