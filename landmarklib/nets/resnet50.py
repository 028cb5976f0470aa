"""The study's benchmark: Keras' ResNet-50 without its top, with ImageNet weights when they can be had.

Built by ``applications.classifier`` (weights from Keras' cache, a file or the download server; see
``applications``) with the study's head: ``avg_pool`` and the softmax ``predictions``, no dropout. Keras'
"caffe" preprocessing is inside the model (``caffe_preprocess``), so it takes raw 0..255 RGB pixels.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers, ops

from .. import config
from . import applications

FEATURES = "avg_pool"
"""The layer whose input is the feature map (``retrieval.embedding_model`` cuts the network there)."""
# ResNet-50's convolutional part (the study's count, study.RESNET50_PARAMS, includes Keras' 1000-class top).
RESNET50_BACKBONE_PARAMS = 23_587_712
# Keras' ResNet-50 (ImageNet, "caffe" preprocessing): BGR channel means.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_WEIGHTS = applications.ImageNetFile(
    network="ResNet-50",
    file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    url="https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    file_hash="4d473c1dd8becc155b73f8504c6f6626",
)
"""Keras' no-top ImageNet file (``keras/src/applications/resnet.py``: ``BASE_WEIGHTS_PATH``, ``WEIGHTS_HASHES``)."""
RESNET50_NOTOP_FILE = IMAGENET_WEIGHTS.file
RESNET50_NOTOP_URL = IMAGENET_WEIGHTS.url
keras_cache_dir = applications.keras_cache_dir  # its former home


def resolve_resnet50_weights(
    weights: str | None, timeout: float = config.ModelConfig.weights_download_timeout
) -> applications.Weights:
    """``applications.resolve_weights`` for ResNet-50 with the fallback on (``RESNET50_NOTOP_FILE`` and
    ``RESNET50_NOTOP_URL`` read when called): ``(keras_weights, source, note)``; when the ImageNet file can
    be had neither from Keras' cache nor from the server, random weights and a note saying why."""
    imagenet = dataclasses.replace(IMAGENET_WEIGHTS, file=RESNET50_NOTOP_FILE, url=RESNET50_NOTOP_URL)
    return applications.resolve_weights(weights, imagenet, timeout=timeout, fallback=True)


def caffe_preprocess(x, name: str = "caffe"):
    """Keras' ResNet-50 ``preprocess_input`` inside the graph: RGB -> BGR, minus the ImageNet mean.

    Args:
        x: raw 0..255 RGB tensor.
        name: prefix of the layer name.

    Returns:
        Preprocessed tensor.
    """
    x = ops.flip(x, axis=-1)
    return layers.Rescaling(1.0, offset=[-m for m in IMAGENET_BGR_MEAN], name=f"{name}_mean")(x)


def backbone(inputs, weights: str | None = None, drop_rate: float = 0.0):
    """Keras' ResNet-50 without its top, built on ``inputs`` (``caffe_preprocess`` first).

    Args:
        inputs: the raw 0..255 RGB image tensor (at least 32 px).
        weights: a weights file's path, or ``None`` (random).
        drop_rate: must be 0: Keras' ResNet-50 has no stochastic depth.

    Returns:
        The ``keras.Model`` (``resnet50``) whose layers are built on ``inputs``.
    """
    if drop_rate:
        raise ValueError(
            f"resnet50 has no stochastic depth (keras.applications): stochastic_depth {drop_rate} must be 0"
        )
    return keras.applications.ResNet50(include_top=False, weights=weights, input_tensor=caffe_preprocess(inputs))


def resnet50_benchmark(
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str | None = "imagenet",
    download_timeout: float = config.ModelConfig.weights_download_timeout,
    name: str = "resnet50",
    imagenet_fallback: bool = True,
):
    """The study's benchmark: Keras' ResNet-50 without its top, GlobalAveragePooling, a softmax Dense.

    The backbone's layers are part of the returned model (not a nested model), so
    ``model.get_layer("conv5_block3_out")`` works. The weights actually used are
    recorded on the model: ``model.weights_source`` (``"imagenet"``, a path, or
    ``"random"``), ``model.weights_note`` (why, when random) and ``model.pretrained``;
    ``model.backbone_params`` is the backbone's parameter count (23,587,712).

    Args:
        input_shape: ``(height, width, 3)`` of the raw 0..255 RGB input (at least 32 px).
        num_classes: number of landmarks.
        weights: ``"imagenet"``, a path to a weights file for the backbone, or ``None``.
        download_timeout: seconds to wait for the ImageNet weights server.
        name: model name.
        imagenet_fallback: when the ImageNet weights cannot be had, random weights with a loud note
            (this function's default, as before); False refuses (``applications.WeightsUnavailable``).

    Returns:
        An uncompiled ``keras.Model``.
    """
    return applications.classifier(
        backbone,
        IMAGENET_WEIGHTS,
        input_shape,
        num_classes,
        weights=weights,
        download_timeout=download_timeout,
        imagenet_fallback=imagenet_fallback,
        name=name,
    )


def build(settings: config.ModelConfig, num_classes: int):
    """``resnet50_benchmark`` from a run's settings (``models.build``; ``applications.build``): the study's head
    has no dropout, whatever ``settings.dropout``; ``imagenet_fallback`` as the settings say."""
    return applications.build(settings, num_classes, backbone, IMAGENET_WEIGHTS, dropout=0.0, name="resnet50")
