"""Fine-tuning optimizers: the head at the recipe's learning rate, the backbone slower (after a head-only start).

The field's schedule for a backbone that starts from weights (ImageNet, a file, or a model of this project:
``transfer``): train the new head alone first, so that its random start does not send large gradients into the
learnt features, then the whole network with the backbone at a lower learning rate. Keras 3 has one learning rate
per optimizer; these subclasses of Keras' own optimizers scale it per variable inside ``update_step`` (and the
decoupled weight decay with it), so the schedule stays one compiled train step (XLA on JAX) and one optimizer:

    head variable       the recipe's learning rate (its schedule: warmup, cosine)
    backbone variable   0 while ``iterations < head_steps``, then ``backbone_lr_fraction`` x the learning rate

A variable belongs to the head when its layer (the first part of ``variable.path``) is in ``head_layers``. The
classes are registered for saving, so a model trained with one loads anywhere ``nets.models`` is imported.
"""

from __future__ import annotations

import keras
from keras import ops


class _BackboneRate:
    """Mixin: ``update_step`` and the weight decay at a per-variable share of the learning rate.

    Args:
        head_layers: names of the layers trained at the full rate from the first step.
        head_steps: optimizer steps during which the other layers (the backbone) do not move.
        backbone_lr_fraction: the backbone's share of the learning rate afterwards.
    """

    def __init__(self, *args, head_layers=(), head_steps=0, backbone_lr_fraction=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_layers = tuple(str(name) for name in head_layers)
        self.head_steps = int(head_steps)
        self.backbone_lr_fraction = float(backbone_lr_fraction)

    def build(self, variables):
        # which variables are the head's, by index: update_step gets the backend's own variable (TensorFlow's has
        # no Keras path), and the optimizer's index of it (as Adam finds its moments)
        self._in_head = [variable.path.split("/")[0] in self.head_layers for variable in variables]
        super().build(variables)

    def _rate_share(self, variable):
        """None for a head variable, else the backbone's share of the learning rate at this step."""
        if self._in_head[self._get_variable_index(variable)]:
            return None
        after = ops.cast(self.backbone_lr_fraction, variable.dtype)
        return ops.where(self.iterations < self.head_steps, ops.zeros((), variable.dtype), after)

    def update_step(self, gradient, variable, learning_rate):
        share = self._rate_share(variable)
        if share is not None:
            learning_rate = ops.cast(learning_rate, variable.dtype) * share
        super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = ops.cast(self.learning_rate, variable.dtype)
                share = self._rate_share(variable)
                if share is not None:
                    lr = lr * share
                variable.assign(variable - variable * ops.cast(self.weight_decay, variable.dtype) * lr)

    def get_config(self):
        return {
            **super().get_config(),
            "head_layers": list(self.head_layers),
            "head_steps": self.head_steps,
            "backbone_lr_fraction": self.backbone_lr_fraction,
        }


@keras.saving.register_keras_serializable(package="landmarks")
class FineTuneAdamW(_BackboneRate, keras.optimizers.AdamW):
    """AdamW (the modern recipe's) with the backbone's learning rate scaled (``_BackboneRate``)."""


@keras.saving.register_keras_serializable(package="landmarks")
class FineTuneSGD(_BackboneRate, keras.optimizers.SGD):
    """SGD with momentum (the study's) with the backbone's learning rate scaled (``_BackboneRate``)."""


@keras.saving.register_keras_serializable(package="landmarks")
class FineTuneRMSprop(_BackboneRate, keras.optimizers.RMSprop):
    """RMSprop (the study's ResNet-50's) with the backbone's learning rate scaled (``_BackboneRate``)."""


FINE_TUNE = {"adamw": FineTuneAdamW, "sgd": FineTuneSGD, "rmsprop": FineTuneRMSprop}
"""``TrainConfig.optimizer`` -> its fine-tuning class."""
