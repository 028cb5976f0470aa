"""The study's benchmark: Keras' ResNet-50 without its top, with ImageNet weights when they can be had."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import keras
from keras import layers, ops

from .. import config

FEATURES = "avg_pool"
"""The layer whose input is the feature map (``retrieval.embedding_model`` cuts the network there)."""
# ResNet-50's convolutional part (the study's count, study.RESNET50_PARAMS, includes Keras' 1000-class top).
RESNET50_BACKBONE_PARAMS = 23_587_712
# Keras' ResNet-50 (ImageNet, "caffe" preprocessing): BGR channel means.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
RESNET50_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_NOTOP_FILE


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "models"


def resolve_resnet50_weights(
    weights: str | None, timeout: float = config.ModelConfig.weights_download_timeout
) -> tuple[str | None, str, str]:
    """Decide which weights the ResNet-50 backbone gets, without a long network wait.

    ``"imagenet"`` uses Keras' cached file if present; otherwise the download URL is
    probed for at most ``timeout`` seconds (``timeout=0``: no probe) and, when it is
    unreachable, the backbone falls back to random initialization.

    Args:
        weights: ``"imagenet"``, a path to a weights file, or ``None`` (random).
        timeout: seconds to wait for the download server.

    Returns:
        ``(keras_weights, source, note)``: the value to pass to
        ``keras.applications.ResNet50`` (``"imagenet"``, a path or ``None``), the
        source as recorded in the metrics (``"imagenet"``, the path, or ``"random"``),
        and a sentence saying why, when the weights are random.
    """
    if weights is None:
        return None, "random", "weights=None was asked for: the backbone is randomly initialized."
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ResNet-50 weights file not found: {path}")
        return str(path), str(path), ""
    cached = keras_cache_dir() / RESNET50_NOTOP_FILE
    if cached.is_file():
        return "imagenet", "imagenet", ""
    if timeout <= 0:
        reason = "no download was attempted (timeout=0)"
    else:
        try:
            request = urllib.request.Request(RESNET50_NOTOP_URL, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                return "imagenet", "imagenet", ""
        except (TimeoutError, urllib.error.URLError, OSError) as err:
            reason = f"{RESNET50_NOTOP_URL} could not be reached ({getattr(err, 'reason', err)})"
    return (
        None,
        "random",
        f"ImageNet weights unavailable: {cached} does not exist and {reason}. "
        "The ResNet-50 backbone is RANDOMLY INITIALIZED, so this is not the study's "
        "pretrained benchmark.",
    )


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


def resnet50_benchmark(
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str | None = "imagenet",
    download_timeout: float = config.ModelConfig.weights_download_timeout,
    name: str = "resnet50",
):
    """The study's benchmark: Keras' ResNet-50 without its top, GlobalAveragePooling, a softmax Dense.

    The backbone's layers are part of the returned model (not a nested model), so
    ``model.get_layer("conv5_block3_out")`` works. The weights actually used are
    recorded on the model: ``model.weights_source`` (``"imagenet"``, a path, or
    ``"random"``) and ``model.weights_note`` (why, when random); ``model.backbone_params``
    is the backbone's parameter count (23,587,712).

    Args:
        input_shape: ``(height, width, 3)`` of the raw 0..255 RGB input (at least 32 px).
        num_classes: number of landmarks.
        weights: ``"imagenet"`` (falls back to random when unavailable), a path to a
            weights file for the backbone, or ``None``.
        download_timeout: seconds to wait for the ImageNet weights server.
        name: model name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    keras_weights, source, note = resolve_resnet50_weights(weights, timeout=download_timeout)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = caffe_preprocess(inputs)
    backbone = keras.applications.ResNet50(include_top=False, weights=keras_weights, input_tensor=x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.weights_source = source
    model.weights_note = note
    model.backbone_params = int(backbone.count_params())
    return model


def build(settings: config.ModelConfig, num_classes: int):
    """``resnet50_benchmark`` from a run's settings (``models.build``)."""
    return resnet50_benchmark(
        (settings.input_size, settings.input_size, 3),
        num_classes,
        weights=settings.weights,
        download_timeout=settings.weights_download_timeout,
    )
