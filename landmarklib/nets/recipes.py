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
from pathlib import Path

import keras

from .. import config
from . import optimizers
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
    head_layers: list[str] | None = None,
):
    """A Keras optimizer by name with the recipe's schedule, weight decay and weight averaging.

    Args:
        name: ``"sgd"`` (with momentum), ``"rmsprop"`` or ``"adamw"``.
        learning_rate: the (peak) step size.
        momentum: momentum of SGD.
        recipe: schedule, weight decay, ``ema_momentum`` (Keras' ``use_ema``), and for a pretrained backbone
            ``head_epochs`` and ``backbone_lr_fraction``.
        epochs, steps_per_epoch: the run's length, for the schedule.
        head_layers: a backbone that starts from weights: its head's layer names (``transfer.head_layers``); the
            optimizer is then ``optimizers.FINE_TUNE``'s (the backbone still for ``head_epochs``, then slower).
            None: one learning rate for every variable.
    """
    rate = globals()["learning_rate"](learning_rate, recipe, epochs, steps_per_epoch)
    name = name.lower()
    if name not in optimizers.FINE_TUNE:
        raise ValueError(f"optimizer must be sgd, rmsprop or adamw, not {name!r}")
    options = {"learning_rate": rate}
    if recipe.ema_momentum is not None:
        options.update(use_ema=True, ema_momentum=float(recipe.ema_momentum))
    if name == "sgd":
        options["momentum"] = momentum
    if name == "adamw":
        options["weight_decay"] = float(recipe.weight_decay)
    if head_layers is None or (recipe.head_epochs == 0 and recipe.backbone_lr_fraction == 1):
        plain = {"sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop, "adamw": keras.optimizers.AdamW}
        return plain[name](**options)
    return optimizers.FINE_TUNE[name](
        head_layers=head_layers,
        head_steps=int(round(recipe.head_epochs * steps_per_epoch)),
        backbone_lr_fraction=recipe.backbone_lr_fraction,
        **options,
    )


def schedule_values(peak: float, recipe: config.TrainConfig, epochs: int, steps_per_epoch: int) -> list[float]:
    """The learning rate at the start of each epoch (for tables and figures)."""
    rate = learning_rate(peak, recipe, epochs, steps_per_epoch)
    if isinstance(rate, float):
        return [rate] * int(epochs)
    return [float(rate(e * steps_per_epoch)) for e in range(int(epochs))]


# --------------------------------------------------------------------------- loss


def make_loss(recipe: config.TrainConfig = STUDY):
    """The Keras loss of a recipe (integer labels; with mixup or CutMix, soft targets too).

    ``crossentropy`` without smoothing or mixing is Keras' ``sparse_categorical_crossentropy`` (the
    study's); with smoothing, or with mixup/CutMix (``mixup_alpha``, ``cutmix_alpha`` > 0: the training
    batches carry soft ``(N, C)`` targets, validation integer labels), ``losses.SmoothedSparseCrossentropy``
    (smoothing 0 then: plain cross-entropy that reads both kinds of target). ``arcface`` and ``cosface``
    are ``losses.MarginLoss`` on a cosine head's output; they take one true class per image, so with
    mixing on they are refused (``config.ConfigError``, one line).
    """
    mixing = recipe.mixup_alpha > 0 or recipe.cutmix_alpha > 0
    if recipe.loss == "crossentropy":
        if recipe.label_smoothing == 0 and not mixing:
            return "sparse_categorical_crossentropy"
        return SmoothedSparseCrossentropy(recipe.label_smoothing)
    if mixing:
        raise config.ConfigError(
            f"loss: {recipe.loss} needs one landmark per image; mixup and CutMix (mixup_alpha "
            f"{recipe.mixup_alpha:g}, cutmix_alpha {recipe.cutmix_alpha:g}) need loss crossentropy"
        )
    return MarginLoss(recipe.loss, margin=recipe.margin, scale=recipe.scale, label_smoothing=recipe.label_smoothing)


def describe(train: config.TrainConfig, model: config.ModelConfig) -> str:
    """One line naming a run's recipe (its backbone's start, optimizer, schedule, loss, augmentation, RandAugment,
    mixup/CutMix, stochastic depth, EMA, dropout and fine-tuning schedule), for tables."""
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
    if model.randaugment_ops:
        parts.append(f"RandAugment {model.randaugment_ops} ops at {model.randaugment_magnitude:g}")
    mixing = (("mixup", train.mixup_alpha), ("CutMix", train.cutmix_alpha))
    mixes = [f"{method} {alpha:g}" for method, alpha in mixing if alpha]
    if mixes:
        parts.append(" or ".join(mixes) + (" (one per batch)" if len(mixes) == 2 else ""))
    if model.stochastic_depth:
        parts.append(f"stochastic depth {model.stochastic_depth:g}")
    if train.ema_momentum is not None:
        parts.append(f"EMA of the weights {train.ema_momentum:g}")
    if train.loss == "crossentropy" and model.model != "resnet50":  # the study's ResNet-50 head has no dropout
        parts.append(f"dropout {model.dropout:g}")
    if model.model != "res_incep":
        parts.insert(0, f"{model.model} ({'random' if model.weights is None else model.weights} weights)")
    if model.init_from:
        parts.insert(0, f"backbone from {Path(model.init_from).name}")
    if model.init_from or (model.model != "res_incep" and model.weights is not None):
        # a backbone that starts from weights (nets.transfer): its fine-tuning schedule
        parts.append(
            f"head alone {train.head_epochs:g} ep, then the backbone at {train.backbone_lr_fraction:g}x"
            + (", BatchNorm frozen" if model.freeze_batchnorm else "")
        )
    return ", ".join(parts)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (the last batch holds the remainder)."""
    return max(1, math.ceil(int(n_train) / int(batch_size)))
