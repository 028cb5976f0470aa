"""The registry of architectures, and building, summarising and loading a model of any of them.

Every model takes raw RGB pixel values (float32, 0..255, shape ``(H, W, 3)``); rescaling and
preprocessing happen inside it, so a saved model predicts on images as ``landmarklib.data`` loads
them. Layer names follow ``keras/src/applications/resnet.py`` (``stem_conv``, ``stage2_block1_add``,
``predictions``), so that notebook 05's figures can ask for a layer by a name a reader understands.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from pathlib import Path

import keras
import pandas as pd

from .. import config, data
from . import layers, losses, metrics, optimizers, transfer  # noqa: F401  (registered for loading)

ARCHITECTURES = {name: importlib.import_module(f"{__package__}.{name}") for name in config.ARCHITECTURES}
"""``ModelConfig.model`` -> its module (``landmarklib/nets/<name>.py``): ``build(settings, num_classes)`` and
``FEATURES`` (the layer whose input is its feature map). Another architecture is one module beside these and
its name in ``config.ARCHITECTURES``."""

# Layer names -> block: "stage2_block1_b1_3x3" -> "stage2_block1", "conv3_block2_1_conv" -> "conv3_block2".
_BLOCK_NAME = re.compile(r"^((?:stage|conv)\d+_block\d+|[a-z]+\d*)(?:_|$)")


def build(settings: config.ModelConfig, num_classes: int):
    """An uncompiled ``keras.Model`` of ``settings.model``'s architecture (``ARCHITECTURES``) for ``num_classes``
    landmarks, its other settings (``input_size``, ``filters``, ``weights``...) as the builder takes them.

    The model records ``backbone_layers`` (the layers before its head: ``transfer.backbone_layers``) and
    ``pretrained`` (its backbone starts from weights). With ``settings.init_from`` the backbone is copied from that
    model (``transfer.initialise``); a pretrained backbone's BatchNorm layers are then kept in inference mode when
    ``settings.freeze_batchnorm`` (``transfer.freeze_batchnorm``).
    """
    if settings.model not in ARCHITECTURES:
        raise ValueError(f"unknown model {settings.model!r}: expected one of {sorted(ARCHITECTURES)}")
    if settings.init_from:  # its backbone's weights come from that model: nothing to resolve or download
        settings = dataclasses.replace(settings, weights=None)
    model = ARCHITECTURES[settings.model].build(settings, num_classes)
    model.backbone_layers = transfer.backbone_layers(model, ARCHITECTURES[settings.model].FEATURES)
    model.pretrained = bool(getattr(model, "pretrained", False))
    if settings.init_from:
        transfer.initialise(model, settings.init_from, model.backbone_layers)
        model.pretrained = True
        model.weights_source = model.init_from = str(settings.init_from)
        model.weights_note = ""
    if model.pretrained and settings.freeze_batchnorm:
        transfer.freeze_batchnorm(model, model.backbone_layers)
    return model


def block_summary(model) -> pd.DataFrame:
    """A compact summary: one row per block of layers (``stem``, ``stage1_block1``, ..., ``head``).

    Layers are grouped by the start of their names (``stage2_block1_*``,
    ``conv3_block2_*``, ``stem_*``, ...), in model order.

    Returns:
        A DataFrame with ``block``, ``layers``, ``output_shape`` (of its last layer) and ``params``.
    """
    rows: list[dict] = []
    for layer in model.layers:
        match = _BLOCK_NAME.match(layer.name)
        block = match.group(1) if match else layer.name
        shape = "x".join(str(d) for d in tuple(layer.output.shape)[1:])
        if rows and rows[-1]["block"] == block:
            rows[-1].update(
                layers=rows[-1]["layers"] + 1, output_shape=shape, params=rows[-1]["params"] + layer.count_params()
            )
        else:
            rows.append({"block": block, "layers": 1, "output_shape": shape, "params": layer.count_params()})
    return pd.DataFrame(rows)


def load(path: str | os.PathLike):
    """Load a saved model and its label map.

    Args:
        path: ``<models_dir>/<name>.keras``; the label map is ``<name>.labels.json`` beside it.

    Returns:
        ``(model, landmark_ids)``: the ``keras.Model`` and the landmark id of each class index.
    """
    path = Path(path)
    model = keras.saving.load_model(path)
    return model, data.load_label_map(path.with_name(path.name.removesuffix(".keras") + ".labels.json"))
