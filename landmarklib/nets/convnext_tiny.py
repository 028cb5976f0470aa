"""ConvNeXt-Tiny (Liu et al. 2022), Keras' ``keras.applications.ConvNeXtTiny`` without its top, as a classifier.

The backbone is Keras' own (its layer names: ``convnext_tiny_stem``, ``convnext_tiny_stage_3_block_2_...``; the
stem and the downsampling blocks are small ``Sequential`` models, as in Keras), built by
``applications.classifier``: ImageNet weights from Keras' cache or a file, the head ``avg_pool`` ->
``head_dropout`` -> ``predictions``. Its preprocessing is inside it, as in Keras: a ``Normalization`` of the raw
0..255 RGB image by ImageNet's mean and standard deviation (``convnext_tiny_prestem_normalization``). Without
its top, Keras ends the backbone with a ``LayerNormalization`` of the feature map
(``convnext_tiny_layer_normalization``).

Stochastic depth: ``ModelConfig.stochastic_depth`` is ConvNeXt's ``drop_path_rate`` (Keras' default for Tiny:
0): the 18 blocks' rates rise linearly from 0 to it (``stage_3_block_2`` drops its residual branch with
probability ``stochastic_depth`` while training). Keras' own stochastic depth layer draws unseeded random numbers,
which JAX refuses inside a compiled training step; the project's seeded ``layers.StochasticDepth`` (the same
per-sample drop and scaling) takes its place while the backbone is built. ``keras.applications.ConvNeXtTiny``
does not take the rate, so Keras' generic ``ConvNeXt`` builder is called with Tiny's configuration.
"""

from __future__ import annotations

import contextlib

from keras.src.applications import convnext as keras_convnext

from .. import config
from . import applications
from .layers import StochasticDepth

FEATURES = "avg_pool"
"""The layer whose input is the feature map (``retrieval.embedding_model`` cuts the network there)."""
BACKBONE_PARAMS = 27_820_128
"""ConvNeXt-Tiny's convolutional part (Keras' ``include_top=False``, its last ``LayerNormalization`` included)."""
IMAGENET_WEIGHTS = applications.ImageNetFile(
    network="ConvNeXt-Tiny",
    file="convnext_tiny_notop.h5",
    url="https://storage.googleapis.com/tensorflow/keras-applications/convnext/convnext_tiny_notop.h5",
    file_hash="d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
)
"""Keras' no-top ImageNet file (``keras/src/applications/convnext.py``: ``BASE_WEIGHTS_PATH``, ``WEIGHTS_HASHES``)."""


@contextlib.contextmanager
def seeded_stochastic_depth():
    """While building: Keras' ConvNeXt blocks make the project's seeded ``StochasticDepth`` instead of Keras'
    unseeded one (same arguments: the rate, then the name)."""
    keras_layer = keras_convnext.StochasticDepth
    keras_convnext.StochasticDepth = StochasticDepth
    try:
        yield
    finally:
        keras_convnext.StochasticDepth = keras_layer


def backbone(inputs, weights: str | None = None, drop_rate: float = 0.0):
    """Keras' ConvNeXt-Tiny without its top, built on ``inputs``.

    Args:
        inputs: the raw 0..255 RGB image tensor (at least 32 px).
        weights: a weights file's path, or ``None`` (random).
        drop_rate: ``drop_path_rate``, the deepest block's stochastic depth rate.

    Returns:
        The ``keras.Model`` (``convnext_tiny``) whose layers are built on ``inputs``.
    """
    tiny = keras_convnext.MODEL_CONFIGS["tiny"]
    with seeded_stochastic_depth():
        # the public ConvNeXtTiny fixes drop_path_rate at 0: its builder with Tiny's configuration takes it
        return keras_convnext.ConvNeXt(
            depths=tiny["depths"],
            projection_dims=tiny["projection_dims"],
            drop_path_rate=drop_rate,
            layer_scale_init_value=1e-6,
            default_size=tiny["default_size"],
            name="convnext_tiny",
            include_preprocessing=True,
            include_top=False,
            weights=weights,
            input_tensor=inputs,
            input_shape=tuple(inputs.shape[1:]),
            weights_name="convnext_tiny",
        )


def build(settings: config.ModelConfig, num_classes: int):
    """ConvNeXt-Tiny from a run's settings (``models.build``; ``applications.build``)."""
    return applications.build(settings, num_classes, backbone, IMAGENET_WEIGHTS)
