"""Transfer: a backbone that starts from what another model learnt (``ModelConfig.init_from``).

With 40-60 photos per landmark, a network trained from scratch memorises them; the field starts from a
network trained on a bigger set (ImageNet, GLDv2) instead. ``init_from`` names a ``.keras`` model trained by
this project (any method: the study's or the modern classifier, retrieval; any data set) and copies its
**backbone** into the new model: every layer from the input to the cut where the head begins
(``backbone_layers``: the input of the architecture's pooling layer, ``FEATURES``, or of retrieval's
``gem_pool``), matched by name, weights and BatchNorm statistics alike. The head (the classifier's
Dense layers, or retrieval's embedding and cosine head) is new, sized for this run's landmarks.

A model that starts from weights (``model.pretrained``: ``init_from``, ImageNet or a weights file) then
trains as the field fine-tunes (``train.compile_model`` with ``optimizers``):

    BatchNorm         its layers in the backbone stay in inference mode (``ModelConfig.freeze_batchnorm``):
                      their statistics, learnt on the bigger set, are not re-estimated from small batches
    head first        ``TrainConfig.head_epochs`` epochs in which only the head learns
    then all of it    the backbone at ``TrainConfig.backbone_lr_fraction`` of the head's learning rate
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from .. import paths


def backbone_layers(model, features: str) -> list[str]:
    """Names of the layers from the input to the feature map (the input of layer ``features``), in model order.

    Args:
        model: a functional ``keras.Model``.
        features: the layer whose input is the backbone's feature map (``FEATURES``, or ``gem_pool``).
    """
    trunk = keras.Model(model.input, model.get_layer(features).input)  # shares the layers: nothing is copied
    return [layer.name for layer in trunk.layers if not isinstance(layer, keras.layers.InputLayer)]


def cut_of(model, candidates) -> str:
    """The first of ``candidates`` (layer names) that ``model`` has: where its head begins."""
    names = {layer.name for layer in model.layers}
    for name in candidates:
        if name in names:
            return name
    raise ValueError(f"model {model.name!r} has none of the layers {list(candidates)} where a head begins")


def initialise(model, source: str | os.PathLike, names: list[str]) -> int:
    """Copy the weights of the layers ``names`` (``model``'s backbone) from the saved model ``source``.

    Args:
        model: the new model.
        source: a ``.keras`` model of this project (relative to the project root or absolute).
        names: the backbone's layer names (``backbone_layers``).

    Returns:
        How many layers were copied (those with weights).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: ``source``'s backbone is not this one's (a layer missing, or of another shape).
    """
    path = paths.resolve(source)
    if not Path(path).is_file():
        raise FileNotFoundError(f"init_from: {path} does not exist (a .keras model trained by this project)")
    donor = keras.saving.load_model(path, compile=False)
    theirs = {layer.name: layer for layer in donor.layers}
    copied = 0
    for name in names:
        layer = model.get_layer(name)
        if not layer.weights:
            continue
        other = theirs.get(name)
        if other is None:
            raise ValueError(
                f"init_from {path}: its network has no layer {name!r}, so its backbone is not this one's "
                f"({donor.name!r}); train the new run with the same model, filters and blocks"
            )
        mine, given = [tuple(w.shape) for w in layer.weights], [tuple(w.shape) for w in other.weights]
        if mine != given:
            raise ValueError(
                f"init_from {path}: layer {name!r} has weights {given}, this model's {mine}: the same model, filters "
                "and blocks are needed"
            )
        layer.set_weights(other.get_weights())
        if hasattr(layer, "finalize_state"):  # Normalization computes from its state only after this
            layer.finalize_state()
        copied += 1
    if not copied:
        raise ValueError(f"init_from {path}: no backbone layer with weights to copy")
    return copied


def freeze_batchnorm(model, names: list[str]) -> int:
    """Keep the BatchNormalization layers among ``names`` in inference mode (Keras 3: ``trainable = False``).

    Returns:
        How many were frozen.
    """
    frozen = 0
    for name in names:
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            frozen += 1
    return frozen


def head_layers(model) -> list[str]:
    """The layers with weights outside the backbone (``model.backbone_layers``): what learns from the first step."""
    backbone = set(model.backbone_layers)
    return [layer.name for layer in model.layers if layer.weights and layer.name not in backbone]
