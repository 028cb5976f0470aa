"""The strict top-k accuracy as a Keras metric (ties by class index: ``evaluate.top_k_accuracy``'s rule),
registered for saving under ``landmarklib`` (the checkpoints ``train`` writes are compiled with it).

Soft targets (mixup, CutMix training batches: float ``(N, C)``, ``losses.soft_targets``) are read as their
dominant label: the class of the largest weight, ties to the lower class index (the same rule as the
predictions' ties; mixup's ``lam = 0.5`` between two classes counts the lower one). A training accuracy
measured on mixed batches is therefore the share of images whose prediction names the larger part of the
mix: lower than, and not comparable with, the accuracy on unmixed images. ``StrictTopKAccuracy(k=1,
name="accuracy")`` is ``train.compile_model``'s top-1 when mixing is on (Keras' ``"accuracy"`` picks one
kind of target for the whole run, from the first batch it sees); with integer labels it equals Keras'
sparse categorical accuracy (the first highest probability, i.e. ties to the lower index).
"""

from __future__ import annotations

import keras
from keras import ops

from .losses import soft_targets


def strict_sparse_top_k(y_true, y_pred, k=5):
    """1.0 where the true class (integer labels, or the dominant label of soft targets) is among the top ``k``."""
    y_pred = ops.convert_to_tensor(y_pred)
    n_classes = ops.shape(y_pred)[-1]
    y_true = ops.convert_to_tensor(y_true)
    if soft_targets(y_true, y_pred):
        y_true = ops.argmax(y_true, axis=-1)  # the dominant label; ties: the lowest index
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    valid = ops.logical_and(y_true >= 0, y_true < n_classes)
    y_safe = ops.where(valid, y_true, ops.zeros_like(y_true))
    truth = ops.take_along_axis(y_pred, y_safe[:, None], axis=-1)
    index = ops.arange(n_classes, dtype="int32")[None, :]
    ahead = ops.logical_or(
        ops.greater(y_pred, truth), ops.logical_and(ops.equal(y_pred, truth), ops.less(index, y_safe[:, None]))
    )
    rank = ops.sum(ops.cast(ahead, "int32"), axis=-1)
    hit = ops.logical_and(ops.logical_and(rank < k, valid), ops.isfinite(truth[:, 0]))
    return ops.cast(hit, "float32")


@keras.saving.register_keras_serializable(package="landmarklib")
class StrictTopKAccuracy(keras.metrics.MeanMetricWrapper):
    """Top-k accuracy with integer labels or soft targets (their dominant label), ties broken by class index
    (``evaluate.top_k_accuracy``)."""

    def __init__(self, k: int = 5, name: str = "top5", dtype=None):
        super().__init__(fn=strict_sparse_top_k, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}
