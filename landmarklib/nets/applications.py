"""Backbones from ``keras.applications``: their ImageNet weights from Keras' cache, a file, or refused in one line.

What the architectures built on a ``keras.applications`` network share (``resnet50``, ``efficientnet_b0``,
``convnext_tiny``; each module gives its backbone and its ``ImageNetFile``):

- **Weights** (``resolve_weights``): ``None`` is random; a path is that file (``.weights.h5``, Keras 3's format,
  or a legacy ``.h5`` such as Keras' own download); ``"imagenet"`` is Keras' no-top ImageNet file: taken from
  Keras' cache (``keras_cache_dir``) by its path, so neither a hash check nor the network is involved; else the
  download server is probed for at most ``ModelConfig.weights_download_timeout`` seconds and, when it answers,
  Keras downloads the file into that cache (``keras.utils.get_file``, hash checked). When it cannot be had the
  build is refused (``WeightsUnavailable``, one line: which file is missing where, and how to supply it), or,
  with ``ModelConfig.imagenet_fallback``, the backbone is randomly initialized and the model says so loudly.
- **Model** (``classifier``): raw 0..255 RGB float input named ``image``; the family's preprocessing inside
  the model; the backbone's layers are the model's own (built on the input tensor, not a nested model), so
  ``model.get_layer("stem_conv")`` works; then the head: ``GlobalAveragePooling2D`` (``avg_pool``, the cut
  ``retrieval.embedding_model`` makes), ``Dropout`` (``head_dropout``, left out at rate 0) and the softmax
  ``Dense`` (``predictions``, float32 under any mixed-precision policy).
- **What it started from**, recorded on the model: ``weights_source`` (``"imagenet"``, the file's path, or
  ``"random"``), ``weights_note`` (why, when random), ``backbone_params`` and ``pretrained`` (ImageNet or a file).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import keras
from keras import layers
from keras.src.utils.naming import to_snake_case

from .. import config, paths
from ..augment import mark_augmentation


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for, Keras' cache lacks them, the download server cannot be reached, and
    ``imagenet_fallback`` is off. The message is one line saying how to supply them."""


@dataclass(frozen=True)
class ImageNetFile:
    """Keras' no-top ImageNet weights file of one ``keras.applications`` network, as Keras names, fetches and
    checks it (``keras/src/applications/<family>.py``).

    Attributes:
        network: the network's name in messages (``"ResNet-50"``).
        file: the file's name in Keras' cache (``<cache>/models/<file>``).
        url: where Keras downloads it from.
        file_hash: its hash as Keras checks a download (``WEIGHTS_HASHES``).
    """

    network: str
    file: str
    url: str
    file_hash: str


class Weights(NamedTuple):
    """The weights a backbone gets (``resolve_weights``).

    Attributes:
        keras_weights: what ``keras.applications`` is given: a file's path, ``"imagenet"`` (reachable but not
            cached: ``fetch`` downloads it) or ``None`` (random).
        source: as recorded on the model and in the metrics: ``"imagenet"``, the file's path, or ``"random"``.
        note: why the weights are random (empty otherwise).
    """

    keras_weights: str | None
    source: str
    note: str

    @property
    def pretrained(self) -> bool:
        """Whether the backbone starts from learnt weights (ImageNet or a file)."""
        return self.source != "random"


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models``, else ``~/.keras/models`` (``/tmp/.keras``
    when the home folder is not writable). Read when called: Keras itself reads ``KERAS_HOME`` once, on import,
    so the cached file is handed to it by its path."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "models"


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _unavailable(imagenet: ImageNetFile, reason: str, fallback: bool) -> Weights:
    """Random weights with a loud note (``fallback``), else ``WeightsUnavailable``."""
    cached = keras_cache_dir() / imagenet.file
    if fallback:
        note = (
            f"ImageNet weights unavailable: {cached} does not exist and {reason}. The {imagenet.network} backbone "
            f"is RANDOMLY INITIALIZED, so this is not a pretrained {imagenet.network}."
        )
        return Weights(None, "random", note)
    raise WeightsUnavailable(
        f"{imagenet.network} ImageNet weights unavailable: {cached} is not in Keras' cache and {reason}; to supply "
        f"them, copy {imagenet.file} from a machine with the network (its Keras cache, or downloaded from that URL) "
        f"into {cached.parent}, or pass weights=<a weights file>, or weights=None for random weights "
        "(imagenet_fallback=True falls back to those instead of refusing)"
    )


def resolve_weights(
    weights: str | None,
    imagenet: ImageNetFile,
    timeout: float = config.ModelConfig.weights_download_timeout,
    fallback: bool = False,
) -> Weights:
    """Decide which weights a backbone gets, without a long network wait.

    Args:
        weights: ``"imagenet"``, a weights file (``.weights.h5`` or a legacy ``.h5``; a relative path is taken
            from the project root), or ``None`` (random).
        imagenet: the family's no-top ImageNet file.
        timeout: seconds to wait for the download server when the file is not cached (0: no try).
        fallback: when the ImageNet file cannot be had, random weights with a loud note instead of refusing.

    Returns:
        ``Weights``: the cached file's path when Keras' cache holds it, ``"imagenet"`` when the server answers.

    Raises:
        FileNotFoundError: ``weights`` names a file that does not exist.
        WeightsUnavailable: ``"imagenet"``, not cached, the server unreachable, and ``fallback`` off.
    """
    if weights is None:
        return Weights(None, "random", "weights=None was asked for: the backbone is randomly initialized.")
    if weights != "imagenet":
        path = paths.resolve(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{imagenet.network} weights file not found: {path}")
        return Weights(str(path), str(path), "")
    cached = keras_cache_dir() / imagenet.file
    if cached.is_file():
        return Weights(str(cached), "imagenet", "")
    if timeout <= 0:
        return _unavailable(imagenet, f"{imagenet.url} was not tried (weights_download_timeout=0)", fallback)
    try:
        with urllib.request.urlopen(urllib.request.Request(imagenet.url, method="HEAD"), timeout=timeout):
            return Weights("imagenet", "imagenet", "")
    except (TimeoutError, urllib.error.URLError, OSError) as err:
        reason = _one_line(getattr(err, "reason", err))
    return _unavailable(imagenet, f"{imagenet.url} cannot be reached ({reason})", fallback)


def fetch(resolved: Weights, imagenet: ImageNetFile, fallback: bool = False) -> Weights:
    """``resolved`` with ``"imagenet"`` replaced by the file Keras downloads into its cache (hash checked), so that
    every pretrained backbone is built the same way: from a file's path.

    Raises:
        WeightsUnavailable: the download failed and ``fallback`` is off (with it: random weights, a loud note).
    """
    if resolved.keras_weights != "imagenet":
        return resolved
    try:
        path = keras.utils.get_file(
            imagenet.file,
            imagenet.url,
            cache_dir=str(keras_cache_dir().parent),
            cache_subdir="models",
            file_hash=imagenet.file_hash,
        )
    except Exception as err:  # Keras wraps every failure of the download in a plain Exception
        return _unavailable(imagenet, f"the download from {imagenet.url} failed ({_one_line(err)})", fallback)
    return Weights(str(path), "imagenet", "")


def name_unnamed_layers(backbone, prefix: str) -> None:
    """Give the layers Keras named by a session counter (``normalization_3``) a fixed name (``<prefix>_normalization``).

    ``transfer.initialise`` and the figures find a layer by its name; Keras names the few layers its builders
    leave unnamed after how many of their kind the process made before.
    """
    taken = {layer.name for layer in backbone.layers}
    for layer in backbone.layers:
        auto = to_snake_case(type(layer).__name__)
        if isinstance(layer, keras.layers.InputLayer) or not re.fullmatch(rf"{re.escape(auto)}(_\d+)?", layer.name):
            continue
        name, i = f"{prefix}_{auto}", 1
        while name in taken:
            name, i = f"{prefix}_{auto}_{i}", i + 1
        taken.add(name)
        layer.name = name


def classifier_head(x, num_classes: int, dropout: float = 0.0):
    """Global average pooling, Dropout and the softmax Dense layer.

    Args:
        x: the backbone's feature map.
        num_classes: number of landmarks.
        dropout: dropout rate before the softmax layer (0: no Dropout layer).

    Returns:
        Class probabilities (layers ``avg_pool``, ``head_dropout``, ``predictions``).
    """
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 under any mixed-precision policy: probabilities and the loss need its range
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


Backbone = Callable[..., keras.Model]
"""``backbone(inputs, weights, drop_rate)``: a ``keras.applications`` network without its top, built on
``inputs`` (the raw 0..255 image tensor, its preprocessing first) with ``weights`` (a file's path or ``None``)
and stochastic depth ``drop_rate``; its layers become the classifier's own."""


def classifier(
    backbone: Backbone,
    imagenet: ImageNetFile,
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str | None = "imagenet",
    download_timeout: float = config.ModelConfig.weights_download_timeout,
    imagenet_fallback: bool = False,
    dropout: float = 0.0,
    stochastic_depth: float = 0.0,
    name: str = "classifier",
):
    """A ``keras.applications`` backbone with the classifier head (``classifier_head``).

    Args:
        backbone: builds the backbone on the input tensor (``Backbone``).
        imagenet: its no-top ImageNet file.
        input_shape: ``(height, width, 3)`` of the raw 0..255 RGB input (at least 32 px).
        num_classes: number of landmarks.
        weights: ``"imagenet"``, a weights file, or ``None`` (``resolve_weights``).
        download_timeout: seconds to wait for the ImageNet weights server.
        imagenet_fallback: random weights with a loud note when the ImageNet weights cannot be had.
        dropout: the head's dropout rate.
        stochastic_depth: the backbone's stochastic depth rate (as the family's builder takes it).
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` with ``weights_source``, ``weights_note``, ``backbone_params`` and
        ``pretrained``.

    Raises:
        FileNotFoundError, WeightsUnavailable: as ``resolve_weights``.
    """
    resolved = resolve_weights(weights, imagenet, timeout=download_timeout, fallback=imagenet_fallback)
    resolved = fetch(resolved, imagenet, fallback=imagenet_fallback)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    net = backbone(inputs, resolved.keras_weights, stochastic_depth)
    name_unnamed_layers(net, net.name)
    model = keras.Model(inputs, classifier_head(net.output, num_classes, dropout), name=name)
    model.weights_source = resolved.source
    model.weights_note = resolved.note
    model.backbone_params = int(net.count_params())
    model.pretrained = resolved.pretrained
    return model


def build(settings: config.ModelConfig, num_classes: int, backbone: Backbone, imagenet: ImageNetFile, **kwargs):
    """``classifier`` from a run's settings (an architecture module's ``build``): its ``input_size``, ``weights``,
    ``weights_download_timeout``, ``imagenet_fallback``, ``dropout`` and ``stochastic_depth``; the augmentation
    settings are recorded on the model for ``train`` (``augment.mark_augmentation``). ``kwargs`` win over them."""
    options = {
        "weights": settings.weights,
        "download_timeout": settings.weights_download_timeout,
        "imagenet_fallback": settings.imagenet_fallback,
        "dropout": settings.dropout,
        "stochastic_depth": settings.stochastic_depth,
        "name": settings.model,
        **kwargs,
    }
    model = classifier(backbone, imagenet, (settings.input_size, settings.input_size, 3), num_classes, **options)
    return mark_augmentation(model, settings)
