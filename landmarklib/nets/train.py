"""Compile, fit, checkpoint and time a landmark model on a fetched folder.

``train`` writes, under ``out_dir``:

    <name>.keras          the model at its best epoch (highest validation accuracy)
    <name>.labels.json    the label map (class index -> landmark_id)
    <name>.history.csv    one row per epoch: epoch, loss, accuracy, top5, val_loss,
                          val_accuracy, val_top5, seconds, train_seconds, images_per_second,
                          lr (the learning rate of the epoch's first step)
    <name>.resume/        while training runs: the last finished epoch, so that a
                          killed run given the same arguments resumes there
                          (removed when training ends)

Seeding: ``set_seed`` seeds Python, NumPy and the backend and, with
``deterministic``, asks TensorFlow (or PyTorch) for deterministic kernels, so the
same parameters on the same machine give the same metrics. Model weights are
drawn when the model is built, so call ``set_seed`` before building it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from tqdm import tqdm  # plain text bars: tqdm.auto warns in a kernel without ipywidgets

from .. import config, data, devices, evaluate, files, paths, study
from . import inference, models, pipeline, recipes, transfer
from .layers import StochasticDepth
from .metrics import StrictTopKAccuracy

COMPARISON_COLUMNS = [
    "params",
    "input_size",
    "epochs",
    "batch_size",
    "optimizer",
    "weights",
    "n_classes",
    "val_top1",
    "val_top5",
    "seconds_per_epoch",
    "images_per_second",
    "training_hours",
]
HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "accuracy",
    "top5",
    "val_loss",
    "val_accuracy",
    "val_top5",
    "seconds",
    "train_seconds",
    "images_per_second",
    "lr",
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
        health: ``"ok"``, ``"diverged"`` or ``"collapsed"`` (see ``diagnose``); a run that is
            not ok is no result, whatever its accuracy says.
        health_note: one sentence saying why, when not ok.
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
    health: str = "ok"
    health_note: str = ""

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
            "health": self.health,
            "health_note": self.health_note,
            "model_path": files.display_path(self.model_path),
            "label_map_path": files.display_path(self.label_map_path),
            "history_csv": files.display_path(self.history_csv),
        }


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend; optionally ask for deterministic kernels.

    Args:
        seed: the seed.
        deterministic: TensorFlow: ``enable_op_determinism`` (for the rest of the
            process); PyTorch: ``use_deterministic_algorithms`` (warn only). JAX on CPU
            is deterministic.
    """
    keras.utils.set_random_seed(int(seed))
    if not deterministic:
        return
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the backend in use: only TensorFlow has this switch

        tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch  # the backend in use: only PyTorch has this switch

        torch.use_deterministic_algorithms(True, warn_only=True)


def compile_model(model, settings: config.TrainConfig, steps_per_epoch: int = 1) -> None:
    """Compile for integer labels: the recipe's loss, top-1 ``accuracy`` and strict ``top5`` metrics.

    The optimizer and loss come from ``recipes`` (the study's recipe: the named optimizer at a
    constant step, plain cross-entropy; the modern one: AdamW, warmup + cosine, label smoothing).

    Args:
        model: a ``keras.Model``.
        settings: its optimizer, learning rate, momentum and recipe (``config.RECIPE_FIELDS``).
        steps_per_epoch: optimizer steps per epoch (for a learning-rate schedule).

    XLA: on JAX always (``jit_compile=True``; Keras' ``"auto"`` would silently train op by op when
    a layer cannot be compiled, over 30x slower: that is refused here, naming the layers); elsewhere
    ``"auto"``, i.e. XLA where it pays (a GPU), not on a TensorFlow CPU.

    Raises:
        RuntimeError: on JAX, the model has layers that XLA cannot compile.
    """
    jax = keras.backend.backend() == "jax"
    model.compile(
        optimizer=recipes.make_optimizer(
            settings.optimizer,
            settings.learning_rate,
            settings.momentum,
            settings,
            settings.epochs,
            steps_per_epoch,
            # a backbone that starts from weights: the head alone first, then the backbone slower (nets.transfer)
            head_layers=transfer.head_layers(model) if getattr(model, "pretrained", False) else None,
        ),
        loss=recipes.make_loss(settings),
        # strict top-5 (ties by class index): Keras' SparseTopKCategoricalAccuracy counts every tied class;
        # weighted: the zero-weight rows padding a data-parallel evaluation batch do not count (same names);
        # mixup/CutMix: soft training targets, integer validation labels, which Keras' "accuracy" (one kind,
        # fixed by the first batch) cannot both read: the strict top-1 reads both (a soft target's dominant label)
        weighted_metrics=[
            StrictTopKAccuracy(k=1, name="accuracy") if settings.mixup_alpha or settings.cutmix_alpha else "accuracy",
            StrictTopKAccuracy(k=5, name="top5"),
        ],
        jit_compile=True if jax else "auto",
    )
    if jax and not model.jit_compile:
        layers = sorted({type(layer).__name__ for layer in model._flatten_layers() if not layer.supports_jit})
        raise RuntimeError(
            f"model {model.name!r} cannot be compiled by XLA on JAX (layers {', '.join(layers)}): it would "
            "train op by op; put such work in the input pipeline (landmarklib.augment)"
        )
    portable_compile_config(model)


def portable_compile_config(model) -> None:
    """Make a saved copy of ``model`` decide XLA on the backend that loads it (``jit_compile="auto"``).

    Keras saves ``jit_compile`` as resolved where the model was compiled: ``True`` for a model trained
    on JAX. TensorFlow then loads it with ``jit_compile=True`` and, with deterministic ops on, warns
    "Proceeding with `jit_compile=False`" (issue 17: the warning the test suite printed). Keras keeps
    the saved compile arguments in ``_compile_config`` (no public setter); only the saved value changes,
    the model in memory keeps its own.
    """
    saved = getattr(model, "_compile_config", None)
    if saved is not None and "jit_compile" in getattr(saved, "config", {}):
        saved.config["jit_compile"] = "auto"


def evaluate_split(model, frame: pd.DataFrame, input_size: int, batch_size: int = 64) -> dict:
    """Top-1 and top-5 accuracy and mean cross-entropy of ``model`` on labelled rows (inference mode).

    Top-k is strict (ties broken by class index, ``evaluate.top_k_accuracy``). The loss is the
    training loss' cross-entropy, from the logits behind the softmax (``inference.log_probabilities``),
    so it matches the ``val_loss`` of ``fit`` for the same weights.

    Args:
        model: a model mapping 0..255 RGB images to class probabilities.
        frame: rows with ``path`` and ``label`` (as in ``data.Split``).
        input_size: side of the model's input, in pixels.
        batch_size: images per prediction batch.

    Returns:
        ``{"top1", "top5", "loss", "n", "predicted_classes"}`` (the last: how many distinct
        classes the model predicts on these rows).
    """
    labels = frame["label"].to_numpy(np.int64)
    replicas = devices.replicas()  # data parallel: batches split evenly, the last one padded (trimmed here)
    batches = pipeline.batches(
        frame, input_size, max(replicas, batch_size // replicas * replicas), replicas=replicas, dtype="uint8"
    )  # the model casts on the device
    probs, logs = inference.predict_probabilities(model, batches, with_log=True)
    probs, logs = probs[: len(labels)], logs[: len(labels)]
    return {
        "top1": evaluate.top_k_accuracy(probs, labels, k=1),
        "top5": evaluate.top_k_accuracy(probs, labels, k=5),
        "loss": float(-logs[np.arange(len(labels)), labels].mean()),
        "n": int(len(labels)),
        "predicted_classes": int(len(np.unique(probs.argmax(axis=1)))),
    }


EXPLODED_TRAIN_LOSS = 10.0
"""A training loss above this many times chance level (``ln C``) has exploded."""
EXPLODED_VAL_LOSS = 100.0
"""A validation loss above this many times ``ln C`` has exploded (validation on few images can be
confidently wrong without the run diverging: a tiny run reached 7x; the diverged ResNet-50 of issue 8, 6,000x)."""


def _loss_text(value: float) -> str:
    """``23787.2`` -> ``"23,787"``, ``10.107`` -> ``"10.1"``."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def diagnose(
    history: pd.DataFrame, n_classes: int, predicted_classes: int | None = None, val_classes: int | None = None
) -> tuple[str, str]:
    """Whether a run is a result: ``("ok", "")``, ``("diverged", why)`` or ``("collapsed", why)``.

    Diverged: a training loss that is not finite or above ``EXPLODED_TRAIN_LOSS * ln C`` in the
    last epoch, or a best-epoch validation loss not finite or above ``EXPLODED_VAL_LOSS * ln C``
    (``ln C``: the loss of a model that answers every class alike). Collapsed: the kept model
    answers one class for every validation image, though they show several.

    Args:
        history: one row per epoch (``loss``, ``val_loss``, ``val_accuracy``).
        n_classes: classes of the model.
        predicted_classes: distinct classes the kept model predicts on the validation rows.
        val_classes: distinct true classes of the validation rows.
    """
    chance = math.log(max(n_classes, 2))
    loss = history["loss"].to_numpy(dtype=float)
    val_loss = history["val_loss"].to_numpy(dtype=float) if "val_loss" in history else np.array([np.nan])
    best = int(history["val_accuracy"].fillna(-1).to_numpy().argmax()) if "val_accuracy" in history else -1
    if not np.isfinite(loss).all():
        epoch = int(history["epoch"].iloc[int(np.argmin(np.isfinite(loss)))])
        return "diverged", f"the training loss is not finite from epoch {epoch} on"
    if loss[-1] > EXPLODED_TRAIN_LOSS * chance:
        return "diverged", (
            f"the training loss exploded to {_loss_text(loss[-1])} (a model that answers every one "
            f"of the {n_classes} classes alike scores {chance:.3g})"
        )
    if not np.isfinite(val_loss[best]):
        return "diverged", "the validation loss of the kept epoch is not finite"
    if val_loss[best] > EXPLODED_VAL_LOSS * chance:
        return "diverged", (
            f"the validation loss of the kept epoch is {_loss_text(val_loss[best])} (a model that "
            f"answers every one of the {n_classes} classes alike scores {chance:.3g})"
        )
    if predicted_classes == 1 and (val_classes or 0) > 1:
        return "collapsed", (
            f"the kept model answers the same landmark for every validation image (they show {val_classes} landmarks)"
        )
    return "ok", ""


def _save_portable(model, path: Path) -> None:
    """Save the kept model to ``path`` compiled with Keras' own loss and metric only (atomically).

    The checkpoints written during training carry the strict top-5 metric, a class of this
    project (``metrics.StrictTopKAccuracy``) that plain ``keras.saving.load_model`` cannot
    find; the final file is a copy with the same weights compiled with ``accuracy`` alone, which
    any Keras reads without custom objects.
    """
    portable = keras.models.clone_model(model)
    portable.set_weights(model.get_weights())
    # the trained optimizer itself: its state is saved as the checkpoints saved it, and a loaded
    # model's optimizer finds as many variables as it expects (else Keras warns on every load);
    # weighted accuracy, as compile_model (padded data-parallel batches)
    portable.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    portable_compile_config(portable)
    with files.atomic_path(path, keep_suffix=True) as tmp:
        portable.save(tmp)


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
        # the schedule at the optimizer's step count: a resumed run shows whether it continued it
        self.lr = float(self.model.optimizer.learning_rate)

    def on_test_begin(self, logs=None):
        # fit() validates at the end of each epoch through evaluate(), which calls this.
        if self.validation_start is None:
            self.validation_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        train_seconds = (self.validation_start or end) - self.start
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row.update(
            lr=self.lr,
            seconds=end - self.start,
            train_seconds=train_seconds,
            images_per_second=self.n_train / train_seconds if train_seconds > 0 else math.nan,
        )
        self.rows.append(row)
        files.write_csv(history_frame(self.rows), self.history_csv)
        self._save_state(epoch + 1)
        self.bar.set_postfix(
            loss=f"{row['loss']:.3f}",
            acc=f"{row['accuracy']:.3f}",
            val_acc=f"{row.get('val_accuracy', math.nan):.3f}",
            s=f"{row['seconds']:.0f}",
            refresh=False,
        )  # one line per epoch in a notebook's text output
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
        state = {
            "epoch": epoch,
            "weights": weights.name,
            "fingerprint": self.fingerprint,
            "seed_generators": [np.asarray(v).tolist() for v in _seed_generator_states(self.model)],
        }
        files.write_json(self.resume_dir / "state.json", state, indent=None)
        for old in self.resume_dir.glob("epoch*.weights.h5"):
            if old != weights:
                old.unlink()


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """History rows as a DataFrame with the columns of ``HISTORY_COLUMNS`` first."""
    frame = pd.DataFrame(rows)
    front = [c for c in HISTORY_COLUMNS if c in frame.columns]
    return frame[front + [c for c in frame.columns if c not in front]]


def _seed_generator_states(model) -> list:
    """The state variables of the model's random layers (dropout, augmentation), in model order."""
    return [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]


def _fingerprint(recorded: dict, model, split: data.Split) -> dict:
    """What a killed run must share with this one to be resumed.

    More epochs may be asked for at a constant learning rate; a schedule spans the run's epochs,
    so with one the epochs must match too (else the resumed epochs would follow another curve).
    """
    return {
        **{k: v for k, v in recorded.items() if k != "epochs" or recorded.get("lr_schedule", "constant") != "constant"},
        "params": int(model.count_params()),
        "n_train": len(split.train),
        "n_val": len(split.val),
        "landmark_ids": [int(v) for v in split.landmark_ids],
    }


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
    settings: config.TrainConfig,
    *,
    name: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``split``, keep its best epoch, and measure it.

    Args:
        model: an uncompiled (or compiled: it is recompiled) ``keras.Model`` taking
            0..255 RGB square images (its input size is read from it).
        split: the training and validation rows (``data.load_split``); needs validation rows.
        settings: epochs, batch size, optimizer, learning rate, momentum, the recipe (weight decay,
            learning-rate schedule, label smoothing, loss: ``recipes``), early stopping,
            ``models_dir`` (relative to the project root or absolute), seed, determinism.
        name: stem of the files written (default: the model's name, ``res_incep``, ``resnet50``).
        progress: show an epoch progress bar.

    Returns:
        A ``TrainResult``.
    """
    if len(split.val) == 0:
        raise ValueError("the split has no validation rows: lower min_images or raise val_fraction")
    input_size = int(model.input_shape[1])
    name = name or model.name
    out = paths.resolve(settings.models_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / f"{name}.keras"
    label_map_path = data.save_label_map(out / f"{name}.labels.json", split.landmark_ids)
    history_csv = out / f"{name}.history.csv"
    resume_dir = out / f"{name}.resume"
    sgd = settings.optimizer == "sgd"
    recorded = {
        "model": model.name,
        "input_size": input_size,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "optimizer": settings.optimizer,
        "learning_rate": settings.learning_rate,
        "momentum": settings.momentum if sgd else None,
        "seed": settings.seed,
        "augment_mode": getattr(model, "augment_mode", None),
        "init_from": getattr(model, "init_from", None),
        "augmentation": repr(getattr(model, "augmentation", None)),  # RandAugment's operations and magnitude too
        "stochastic_depth": sorted(
            float(layer.rate) for layer in model._flatten_layers() if isinstance(layer, StochasticDepth)
        ),
    }
    recorded.update({name: getattr(settings, name) for name in config.RECIPE_FIELDS})
    fingerprint = _fingerprint(recorded, model, split)

    set_seed(settings.seed, settings.deterministic)
    replicas = devices.replicas()  # > 1: each batch split across that many devices (devices.distribute)
    # uint8 images: a quarter of the bytes to the device, the model's float32 Input casts there
    # the augmentation runs here, in the input pipeline's threads (``augment``): the model stays plain and compiles
    adding = getattr(model, "augment_mode", None) == "add"  # the study's: augmented copies added to the data
    augmentation = getattr(model, "augmentation", None)
    train_data = pipeline.batches(
        split.train,
        input_size,
        settings.batch_size,
        shuffle=True,
        seed=settings.seed,
        replicas=replicas,
        dtype="uint8",
        augmentation=None if adding else augmentation,
        mixup_alpha=settings.mixup_alpha,  # mixup/CutMix: soft (N, C) targets; "add" mixes its copies too
        cutmix_alpha=settings.cutmix_alpha,
        num_classes=len(split.landmark_ids),
    )
    epoch_images = len(split.train)
    if adding:
        train_data = pipeline.augmented_copies(train_data, augmentation)
        epoch_images *= 2
    val_data = pipeline.batches(split.val, input_size, settings.batch_size, replicas=replicas, dtype="uint8")
    compile_model(model, settings, steps_per_epoch=len(train_data))

    initial_epoch, state, rows = _resume_point(resume_dir, fingerprint, history_csv)
    if state is not None:
        model.optimizer.build(model.trainable_variables)
        model.load_weights(state["weights"])  # with the optimizer's variables, its step count among them
        # the learning-rate schedule is a function of that count: continue it where the killed run
        # stopped (Keras 3.15 restores it from the file already; this also holds for a file without it)
        model.optimizer.iterations.assign(initial_epoch * len(train_data))
        for variable, value in zip(_seed_generator_states(model), state.get("seed_generators", [])):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        train_data.set_epoch(initial_epoch)
    best_so_far = max((r["val_accuracy"] for r in rows), default=None)
    epochs = settings.epochs
    # EMA of the weights: validated and kept (checkpoint) with the averaged weights, trained with the raw ones; the
    # resume state (EpochLog, first) holds the raw weights and the optimizer's averages
    ema = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if settings.ema_momentum is not None else []
    callbacks = [
        EpochLog(rows, history_csv, resume_dir, fingerprint, epoch_images, epochs, progress),
        *ema,
        keras.callbacks.ModelCheckpoint(
            model_path,
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,
            verbose=0,
        ),
    ]
    if settings.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=settings.early_stopping_patience)
        )
    if initial_epoch < epochs:
        # shuffle=False: the batches are already permuted per epoch from the seed; Keras' own
        # shuffle would reorder them from Python's global random state, which a resumed run lacks.
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=devices.fit_callbacks(val_data) + callbacks,
            shuffle=False,
            verbose=0,
        )
    shutil.rmtree(resume_dir, ignore_errors=True)

    history = history_frame(callbacks[0].rows)
    best = history.loc[history["val_accuracy"].idxmax()]
    if best["epoch"] != history["epoch"].iloc[-1] or initial_epoch >= epochs:
        model.load_weights(model_path)  # the best epoch; its validation scores are in the history
    _save_portable(model, model_path)
    later = history.iloc[1:] if len(history) > 1 else history
    kept = evaluate_split(model, split.val, input_size, settings.batch_size)
    health, health_note = diagnose(
        history, len(split.landmark_ids), kept["predicted_classes"], int(split.val["label"].nunique())
    )
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
        images_per_second=float(epoch_images * len(later) / later["train_seconds"].sum()),
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
        settings=recorded,
        health=health,
        health_note=health_note,
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
            rows.append(
                {
                    "model": name,
                    "source": "this run",
                    **{k: measured.get(k) for k in COMPARISON_COLUMNS},
                    "training_hours": round(hours, 4),
                }
            )
        if name in study.RESULTS:
            published = study.RESULTS[name]
            rows.append({"model": name, "source": "study", **{k: published.get(k) for k in COMPARISON_COLUMNS}})
    return pd.DataFrame(rows, columns=["model", "source", *COMPARISON_COLUMNS]).set_index(["model", "source"])


def _same_data(split: data.Split, result: TrainResult) -> bool:
    """Whether ``split`` holds the landmarks and split sizes that ``result`` was trained on."""
    return (
        split.landmark_ids == result.landmark_ids
        and len(split.train) == result.n_train
        and len(split.val) == result.n_val
    )


def _slug(text: str) -> str:
    """A file-name-safe form of a variant name: ``"min_images=5"`` -> ``"min_images_5"``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "variant"


def train_variants(
    variants: list[dict],
    run: config.RunConfig,
    baseline: TrainResult | None = None,
    *,
    name: str = "res_incep",
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, TrainResult]]:
    """Train each variant of a run: ``run`` with the variant's own settings changed.

    Args:
        variants: dicts with a ``name`` and the settings it changes (any field of the run's
            split, model or training but ``models_dir``), e.g. ``{"name": "augmentation",
            "augment": True}`` or ``{"name": "min_images=5", "min_images": 5}``.
        run: the main run's settings.
        baseline: a result trained with ``run``: reused, instead of training the same model
            again, for a variant that changes nothing, or only ``min_images`` without changing
            which images and landmarks are kept.
        name: the main run's file stem; a variant's files are ``<name>-<variant>.*``.
        progress: show epoch bars.

    Returns:
        (table, results): one row per variant (``name``, ``changes``, ``reused`` and the
        accuracy and timing numbers of ``TrainResult.metrics``), and the results by name.

    Raises:
        config.ConfigError: a variant changes a setting the run does not have (named), or
            gives one a wrong value.
    """
    rows, results = [], {}
    for variant in variants:
        changes = {k: v for k, v in variant.items() if k != "name"}
        label = str(variant.get("name") or ", ".join(f"{k}={v}" for k, v in changes.items()) or "baseline")
        try:
            changed = run.replace(**changes)
        except config.ConfigError as err:
            raise config.ConfigError(f"variant {label!r}: {err}") from None
        same_settings = (
            baseline is not None
            and baseline.settings.get("epochs") == run.train.epochs
            and dataclasses.replace(changed.split, min_images=run.split.min_images) == run.split
            and (changed.model, changed.train) == (run.model, run.train)
        )
        split = None
        if same_settings and changed.split != run.split:
            split = data.load_split(changed.split)
        if same_settings and (split is None or _same_data(split, baseline)):
            result, reused = baseline, True
            if progress and changes:
                print(f"variant {label}: the same images and landmarks as the main run, which it reuses", flush=True)
        else:
            split = split or data.load_split(changed.split)
            set_seed(changed.train.seed, changed.train.deterministic)
            model = models.build(changed.model, len(split.landmark_ids))
            if progress:
                print(f"variant {label}: {changes or 'no change'}", flush=True)
            result = train(model, split, changed.train, name=f"{name}-{_slug(label)}", progress=progress)
            reused = False
        results[label] = result
        rows.append({"name": label, "changes": changes, "reused": reused, **result.metrics()})
    return pd.DataFrame(rows), results
