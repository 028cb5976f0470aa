"""EfficientNet-B0 (Tan & Le 2019), Keras' ``keras.applications.EfficientNetB0`` without its top, as a classifier.

The backbone is Keras' own (its layer names: ``stem_conv``, ``block6d_add``, ``top_activation``...), built by
``applications.classifier``: ImageNet weights from Keras' cache or a file, the head ``avg_pool`` ->
``head_dropout`` -> ``predictions``. Its preprocessing is inside it, as in Keras: the raw 0..255 RGB image is
divided by 255 and normalised by a ``Normalization`` layer whose mean and variance come with the weights
(zero and one when random).

ImageNet's normalisation: Keras' ImageNet file stores the standard deviations as the ``Normalization`` layer's
variance, and Keras' builder corrects that with one more ``Rescaling`` only when it is given
``weights="imagenet"``, not a file's path (tensorflow issue 49930); the backbone here always gets a path (the
cached file, or a weights file). So, once the weights are loaded, a ``Normalization`` variance equal to ImageNet's
standard deviations is squared (``standard_deviations_as_variance``): the layer then computes
``(x / 255 - mean) / std``, as Keras' ``weights="imagenet"`` network does, and holds what it uses, so a weights
file or a model saved from it (``init_from``) carries the right statistics; any other statistics (a random
backbone's zeros and ones) are left as they are.

Stochastic depth: ``ModelConfig.stochastic_depth`` is EfficientNet's ``drop_connect_rate`` (Keras' B0 default
0.2; here 0 unless asked): block ``b`` of the 16 drops its residual branch with probability
``stochastic_depth * b / 16`` while training (Keras' ``Dropout`` of noise shape ``(N, 1, 1, 1)``, layers
``block2b_drop``...). ``keras.applications.EfficientNetB0`` does not take the rate, so Keras' generic
``EfficientNet`` builder is called with B0's coefficients.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers
from keras.src.applications import efficientnet as keras_efficientnet

from .. import config
from . import applications

FEATURES = "avg_pool"
"""The layer whose input is the feature map (``retrieval.embedding_model`` cuts the network there)."""
BACKBONE_PARAMS = 4_049_571
"""EfficientNet-B0's convolutional part (Keras' ``include_top=False``), its ``Normalization`` statistics included."""
IMAGENET_WEIGHTS = applications.ImageNetFile(
    network="EfficientNet-B0",
    file="efficientnetb0_notop.h5",
    url="https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
    file_hash="50bc09e76180e00e4465e1a485ddc09d",
)
"""Keras' no-top ImageNet file (``keras/src/applications/efficientnet.py``: ``BASE_WEIGHTS_PATH``, ``WEIGHTS_HASHES``)."""
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
"""The mean the ImageNet file's ``Normalization`` layer holds (of 0..1 pixels)."""
IMAGENET_STDDEV_RGB = tuple(keras_efficientnet.IMAGENET_STDDEV_RGB)
"""The standard deviations it holds as its variance (0.229, 0.224, 0.225)."""


def standard_deviations_as_variance(net) -> bool:
    """Square the ``Normalization`` variance of ``net`` when it holds ImageNet's standard deviations (Keras' file).

    Args:
        net: an EfficientNet whose weights were just loaded.

    Returns:
        Whether the variance was squared.
    """
    norm = next(layer for layer in net.layers if isinstance(layer, layers.Normalization))
    mean, variance = (keras.ops.convert_to_numpy(v) for v in (norm.adapt_mean, norm.adapt_variance))
    imagenet = np.allclose(mean.ravel(), IMAGENET_MEAN_RGB, rtol=0, atol=1e-6)
    if not (imagenet and np.allclose(variance.ravel(), IMAGENET_STDDEV_RGB, rtol=0, atol=1e-6)):
        return False
    norm.adapt_variance.assign(np.square(variance))
    norm.finalize_state()  # the layer computes with the mean and variance it derived from its variables on loading
    return True


def backbone(inputs, weights: str | None = None, drop_rate: float = 0.0):
    """Keras' EfficientNet-B0 without its top, built on ``inputs``.

    Args:
        inputs: the raw 0..255 RGB image tensor (at least 32 px).
        weights: a weights file's path (``standard_deviations_as_variance`` once loaded), or ``None`` (random).
        drop_rate: ``drop_connect_rate``: block ``b`` of 16 drops its residual branch at ``drop_rate * b / 16``.

    Returns:
        The ``keras.Model`` (``efficientnetb0``) whose layers are built on ``inputs``.
    """
    # the public EfficientNetB0 fixes drop_connect_rate at 0.2: its builder with B0's coefficients takes it
    net = keras_efficientnet.EfficientNet(
        1.0,
        1.0,
        224,
        0.2,
        drop_connect_rate=drop_rate,
        name="efficientnetb0",
        include_top=False,
        weights=weights,
        input_tensor=inputs,
        input_shape=tuple(inputs.shape[1:]),
        weights_name="b0",
    )
    if weights is not None:
        standard_deviations_as_variance(net)
    return net


def build(settings: config.ModelConfig, num_classes: int):
    """EfficientNet-B0 from a run's settings (``models.build``; ``applications.build``)."""
    return applications.build(settings, num_classes, backbone, IMAGENET_WEIGHTS)
