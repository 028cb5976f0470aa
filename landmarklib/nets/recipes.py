"""Training recipes: the study's (SGD or RMSprop, constant step, cross-entropy) and a modern one.

A recipe is a handful of parameters that ``train.train`` turns into an optimizer, a loss
and (through ``models.build``'s ``augment``) an augmentation, so the study's settings stay
reproducible exactly and the modern ones sit beside them:

    optimizer        ``sgd`` | ``rmsprop`` (the study's) | ``adamw`` (AdamW, decoupled weight decay)
    weight_decay     AdamW's decoupled weight decay (0: none)
    lr_schedule      ``constant`` (the study's) | ``warmup_cosine``: linear warmup from 0 to the
                     learning rate over ``warmup_epochs``, then cosine decay to ``min_lr_fraction``
                     of it at the last epoch (Loshchilov & Hutter; Goyal et al. for the warmup)
    label_smoothing  the target puts ``1 - eps`` on the true class and ``eps / C`` everywhere
    loss             ``crossentropy`` (softmax models) | ``arcface`` | ``cosface`` (cosine-head
                     models of ``retrieval``, with ``margin`` and ``scale``: ``losses.MarginLoss``)
    augment          ``models.build``'s: ``False``, ``True``/``"replace"``/``"add"`` (the study's flips
                     both ways, rotation, zoom) or ``"photo"`` (random resized crops, horizontal
                     flips, colour jitter): ``augment.Augmentation``, run in the input pipeline

Each function takes the recipe as a ``config.TrainConfig`` (its fields ``config.RECIPE_FIELDS``);
``config.MODERN_RECIPE`` holds the modern values, ``STUDY`` the study's. Only Keras layers, ops,
losses and optimizers are used, so every recipe runs under TensorFlow and JAX.
"""

from __future__ import annotations

import math

import keras

from .. import config
from .losses import MarginLoss, SmoothedSparseCrossentropy

STUDY = config.TrainConfig()
"""The study's recipe: no weight decay, a constant step, plain cross-entropy (``TrainConfig``'s defaults)."""


# --------------------------------------------------------------------------- optimizer


def learning_rate(peak: float, recipe: config.TrainConfig = STUDY, epochs: int = 1, steps_per_epoch: int = 1):
    """The learning rate: ``peak`` (constant) or a Keras warmup + cosine decay schedule.

    Args:
        peak: the learning rate (after warmup).
        recipe: the recipe (``lr_schedule``, ``warmup_epochs``, ``min_lr_fraction``).
        epochs: epochs the run trains for: the cosine reaches its end at the last step.
        steps_per_epoch: optimizer steps per epoch.

    Returns:
        A float or a ``keras.optimizers.schedules.CosineDecay``.
    """
    if recipe.lr_schedule == "constant":
        return float(peak)
    total = max(1, int(epochs) * int(steps_per_epoch))
    warmup = min(total - 1, int(round(recipe.warmup_epochs * steps_per_epoch)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else float(peak),
        decay_steps=max(1, total - warmup),
        alpha=float(recipe.min_lr_fraction),
        warmup_target=float(peak) if warmup else None,
        warmup_steps=warmup,
        name="warmup_cosine",
    )


def make_optimizer(
    name: str,
    learning_rate: float,
    momentum: float = 0.9,
    recipe: config.TrainConfig = STUDY,
    epochs: int = 1,
    steps_per_epoch: int = 1,
):
    """A Keras optimizer by name with the recipe's schedule and weight decay.

    Args:
        name: ``"sgd"`` (with momentum), ``"rmsprop"`` or ``"adamw"``.
        learning_rate: the (peak) step size.
        momentum: momentum of SGD.
        recipe: schedule and weight decay.
        epochs, steps_per_epoch: the run's length, for the schedule.
    """
    rate = globals()["learning_rate"](learning_rate, recipe, epochs, steps_per_epoch)
    name = name.lower()
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=float(recipe.weight_decay))
    raise ValueError(f"optimizer must be sgd, rmsprop or adamw, not {name!r}")


def schedule_values(peak: float, recipe: config.TrainConfig, epochs: int, steps_per_epoch: int) -> list[float]:
    """The learning rate at the start of each epoch (for tables and figures)."""
    rate = learning_rate(peak, recipe, epochs, steps_per_epoch)
    if isinstance(rate, float):
        return [rate] * int(epochs)
    return [float(rate(e * steps_per_epoch)) for e in range(int(epochs))]


# --------------------------------------------------------------------------- loss


def make_loss(recipe: config.TrainConfig = STUDY):
    """The Keras loss of a recipe (integer labels).

    ``crossentropy`` without smoothing is Keras' ``sparse_categorical_crossentropy`` (the
    study's); with smoothing, ``losses.SmoothedSparseCrossentropy``; ``arcface`` and ``cosface``
    are ``losses.MarginLoss`` on a cosine head's output.
    """
    if recipe.loss == "crossentropy":
        if recipe.label_smoothing == 0:
            return "sparse_categorical_crossentropy"
        return SmoothedSparseCrossentropy(recipe.label_smoothing)
    return MarginLoss(recipe.loss, margin=recipe.margin, scale=recipe.scale, label_smoothing=recipe.label_smoothing)


def describe(train: config.TrainConfig, model: config.ModelConfig) -> str:
    """One line naming a run's recipe (its optimizer, schedule, loss, augmentation and dropout), for tables."""
    parts = [f"{train.optimizer} {train.learning_rate:g}"]
    if train.optimizer == "adamw":
        parts.append(f"weight decay {train.weight_decay:g}")
    if train.lr_schedule == "warmup_cosine":
        parts.append(f"warmup {train.warmup_epochs:g} ep + cosine to {train.min_lr_fraction:g}x")
    if train.label_smoothing:
        parts.append(f"label smoothing {train.label_smoothing:g}")
    if train.loss != "crossentropy":
        parts.append(f"{train.loss} (margin {train.margin:g}, scale {train.scale:g})")
    parts.append(
        {"photo": "photo augmentation", True: "study augmentation", "replace": "study augmentation"}.get(
            model.augment, "study augmentation (added copies)" if model.augment == "add" else "no augmentation"
        )
    )
    if train.loss == "crossentropy" and model.model == "res_incep":
        parts.append(f"dropout {model.dropout:g}")
    return ", ".join(parts)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (the last batch holds the remainder)."""
    return max(1, math.ceil(int(n_train) / int(batch_size)))
