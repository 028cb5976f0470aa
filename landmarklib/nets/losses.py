"""The project's Keras losses, registered for saving under ``landmarks``: label-smoothed cross-entropy
against integer labels or soft targets (mixup, CutMix), and ArcFace/CosFace on a ``layers.CosineHead``'s
output (``recipes.make_loss``)."""

from __future__ import annotations

import math

import keras
from keras import ops

from .. import config


def soft_targets(y_true, y_pred) -> bool:
    """Whether ``y_true`` holds soft targets ``(N, C)`` (mixup, CutMix) rather than integer labels ``(N,)`` / ``(N, 1)``.

    Read from the static shapes (fixed under JAX's tracing, so a Python branch is fine): soft when ``y_true``
    has ``y_pred``'s rank and its last dimension ``C``. With one class, ``(N, 1)`` reads as soft; either
    reading gives the same loss and accuracy then.
    """
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    return len(true_shape) == len(pred_shape) and true_shape[-1] == pred_shape[-1]


@keras.saving.register_keras_serializable(package="landmarks")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of softmax probabilities against integer labels or soft targets, with label smoothing.

    ``y_true``: integer labels ``(N,)`` (validation, the unmixed training) or soft targets ``(N, C)`` (mixup
    and CutMix training batches; ``soft_targets``). The smoothing acts alike on both: the target is
    ``(1 - eps) * t + eps / C`` with ``t`` the one-hot label or the soft target, so a one-hot soft target gives
    the loss of its integer label, and smoothing a mix equals mixing the smoothed labels.

    Args:
        label_smoothing: ``eps`` (0: plain cross-entropy, what ``recipes.make_loss`` uses with mixing on).
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        if soft_targets(y_true, y_pred):
            target = ops.cast(y_true, y_pred.dtype)
        else:
            n_classes = ops.shape(y_pred)[-1]
            target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), n_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(target, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="landmarks")
class MarginLoss(keras.losses.Loss):
    """ArcFace or CosFace on a ``CosineHead``'s output, against integer labels.

    For the true class ``y`` with cosine ``cos(theta_y)``, the logit is
    ``s * cos(theta_y + m)`` (ArcFace; where ``theta_y + m`` would pass pi the logit falls back to
    ``s * (cos(theta_y) - m * sin(m))``, which keeps it decreasing in ``theta_y``) or
    ``s * (cos(theta_y) - m)`` (CosFace); every other class keeps ``s * cos(theta_c)``.
    The loss is the softmax cross-entropy of those logits, with optional label smoothing.

    Integer labels only: the margin belongs to one true class per image, which a mixed (mixup, CutMix)
    image does not have; soft targets are refused when the loss is traced, and ``recipes.make_loss``
    refuses a margin loss with mixing on before that.

    Args:
        kind: ``"arcface"`` or ``"cosface"``.
        margin: ``m`` (radians for ArcFace).
        scale: ``s``.
        label_smoothing: share of the target spread over all classes.
    """

    def __init__(
        self,
        kind: str = "arcface",
        margin: float = config.TrainConfig.margin,
        scale: float = config.TrainConfig.scale,
        label_smoothing: float = 0.0,
        name: str = "margin_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if kind not in config.MARGIN_LOSSES:
            raise ValueError(f"kind must be one of {config.MARGIN_LOSSES}, not {kind!r}")
        self.kind, self.margin, self.scale = kind, float(margin), float(scale)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        if soft_targets(y_true, y_pred):
            raise ValueError(
                f"{self.kind} takes integer labels, not soft targets of shape {tuple(y_true.shape)}: mixup and "
                "CutMix need the crossentropy loss"
            )
        cos = ops.clip(ops.cast(y_pred, "float32"), -1.0 + 1e-7, 1.0 - 1e-7)
        target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(cos)[-1], dtype=cos.dtype)
        m = self.margin
        if self.kind == "arcface":
            sin = ops.sqrt(ops.maximum(1.0 - ops.square(cos), 0.0))
            shifted = cos * math.cos(m) - sin * math.sin(m)
            shifted = ops.where(cos > math.cos(math.pi - m), shifted, cos - m * math.sin(m))
        else:
            shifted = cos - m
        logits = self.scale * (target * shifted + (1.0 - target) * cos)
        return keras.losses.categorical_crossentropy(
            target, logits, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "margin": self.margin,
            "scale": self.scale,
            "label_smoothing": self.label_smoothing,
        }
