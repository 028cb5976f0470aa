"""The study's Res-Incep network and its ResNet-50 benchmark, as Keras 3 models.

Both models take raw RGB pixel values (float32, 0..255, shape ``(H, W, 3)``);
rescaling and preprocessing happen inside the model, so a saved model predicts
on images as ``landmarklib.data`` loads them. Only built-in ``keras.layers`` and
``keras.ops`` are used, so the models are backend-agnostic (tested under TensorFlow
and JAX) and ``keras.saving.load_model`` reads them without custom objects.

Res-Incep (the study's "Implementation" section): a stem convolution, ten
residual blocks, each a convolution + BatchNormalization + LeakyReLU followed by
an inception block of four parallel branches (1x1 -> 3x3 -> 1x1, 1x1 -> 5x5 ->
1x1, 3x3 max-pool -> 1x1, and 1x1, with ReLU), concatenated, normalized and
passed through a LeakyReLU; a 1x1 projection on the shortcut when the stride or
the width changes; then two Dense layers with Dropout and a softmax.

Layer names follow ``keras/src/applications/resnet.py``: ``stem_conv``,
``stage2_block1_conv``, ``stage2_block1_b2_5x5``, ``stage2_block1_concat``,
``stage2_block1_add``, ``head_dense``, ``predictions``, so that the figures of
notebook 05 can ask for a layer by a name a reader understands.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras import layers, ops

from . import augment as augment_lib
from . import config, data, evaluate, recipes, study

# Layer names -> block: "stage2_block1_b1_3x3" -> "stage2_block1", "conv3_block2_1_conv" -> "conv3_block2".
_BLOCK_NAME = re.compile(r"^((?:stage|conv)\d+_block\d+|[a-z]+\d*)(?:_|$)")

# ResNet-50's convolutional part (the study's count, study.RESNET50_PARAMS, includes Keras' 1000-class top).
RESNET50_BACKBONE_PARAMS = 23_587_712

# Keras' ResNet-50 (ImageNet, "caffe" preprocessing): BGR channel means.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
RESNET50_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_NOTOP_FILE


def conv_bn_lrelu(x, filters: int, kernel_size: int, strides: int = 1, name: str = "conv"):
    """Convolution, BatchNormalization and LeakyReLU: the study's basic convolution.

    The normalization's running statistics use momentum 0.9 (Keras' default is 0.99),
    so that they settle within the few hundred steps of a small run.

    Args:
        x: input tensor.
        filters: number of output channels.
        kernel_size: side of the square kernel.
        strides: stride of the convolution.
        name: prefix of the three layer names (``_conv``, ``_bn``, ``_lrelu``).

    Returns:
        Output tensor.
    """
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5, name=f"{name}_bn")(x)
    return layers.LeakyReLU(negative_slope=0.1, name=f"{name}_lrelu")(x)


def inception_block(x, filters: int, name: str):
    """Four parallel branches concatenated, then BatchNormalization and LeakyReLU.

    Branches (every convolution with ReLU): 1x1 -> 3x3 -> 1x1; 1x1 -> 5x5 -> 1x1;
    3x3 max-pool -> 1x1; 1x1. The leading 1x1 convolutions of the first two
    branches halve the width before the expensive 3x3 and 5x5 convolutions
    ("compute reductions", Szegedy et al.); the trailing 1x1 brings it back.

    Args:
        x: input tensor.
        filters: output channels of each branch; the block outputs ``4 * filters``.
        name: block label.

    Returns:
        Output tensor with ``4 * filters`` channels.
    """
    reduced = max(1, filters // 2)

    def conv(t, width, size, label):
        return layers.Conv2D(width, size, padding="same", activation="relu", name=f"{name}_{label}")(t)

    b1 = conv(x, reduced, 1, "b1_1x1a")
    b1 = conv(b1, reduced, 3, "b1_3x3")
    b1 = conv(b1, filters, 1, "b1_1x1b")

    b2 = conv(x, reduced, 1, "b2_1x1a")
    b2 = conv(b2, reduced, 5, "b2_5x5")
    b2 = conv(b2, filters, 1, "b2_1x1b")

    b3 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b3_pool")(x)
    b3 = conv(b3, filters, 1, "b3_1x1")

    b4 = conv(x, filters, 1, "b4_1x1")

    x = layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])
    x = layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5, name=f"{name}_concat_bn")(x)
    return layers.LeakyReLU(negative_slope=0.1, name=f"{name}_out")(x)


def residual_block(x, filters: int, strides: int = 1, name: str = "block"):
    """A residual-inception block: conv-BN-LeakyReLU, an inception block, plus the shortcut.

    Args:
        x: input tensor.
        filters: width of the convolution and of each inception branch.
        strides: stride of the block's convolution (and of its shortcut).
        name: block label.

    Returns:
        Output tensor with ``4 * filters`` channels.
    """
    out_channels = 4 * filters
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = layers.Conv2D(out_channels, 1, strides=strides, name=f"{name}_shortcut")(x)
    x = conv_bn_lrelu(x, filters, 3, strides=strides, name=name)
    x = inception_block(x, filters, name=name)
    return layers.Add(name=f"{name}_add")([shortcut, x])


def stage(x, filters: int, blocks: int, strides: int, name: str):
    """Residual-inception blocks of one width; the first one may downsample.

    Args:
        x: input tensor.
        filters: width of every block of the stage.
        blocks: number of blocks.
        strides: stride of the first block.
        name: stage label.

    Returns:
        Output tensor.
    """
    x = residual_block(x, filters, strides=strides, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block(x, filters, name=f"{name}_block{i}")
    return x


AUGMENT_MODES = ("add", "replace", "photo")
"""``augment`` values: ``"add"`` (the study's: augmented copies added to the training images, each
epoch sees every original and one augmented copy of it), ``"replace"`` (each epoch sees one augmented
version of each image instead of the original), or ``"photo"`` (as ``"replace"``, with the modern
recipe's photo augmentation instead of the study's). ``True`` means ``"replace"``; ``False``/``None``:
no augmentation. The augmentation itself (``augment.Augmentation``) runs in the input pipeline, on the
CPU, so that the model stays plain and compiles with XLA (``augment``'s docstring says why)."""


def augment_mode(augment) -> str | None:
    """``augment`` as ``"add"``, ``"replace"``, ``"photo"`` or ``None`` (``True`` -> ``"replace"``)."""
    if augment is None or augment is False or augment == "none":
        return None
    if augment is True:
        return "replace"
    if augment in AUGMENT_MODES:
        return augment
    raise ValueError(f"augment must be one of {AUGMENT_MODES}, true or false; not {augment!r}")


def augmentation_of(augment, crop_scale: float = config.ModelConfig.crop_scale) -> augment_lib.Augmentation | None:
    """The ``augment.Augmentation`` that ``augment`` asks for (``None``: none).

    Args:
        augment: ``ModelConfig.augment``'s values (``augment_mode``).
        crop_scale: the photo augmentation's largest cut from a side.
    """
    mode = augment_mode(augment)
    if mode is None:
        return None
    return augment_lib.Augmentation("photo" if mode == "photo" else "study", crop_scale=crop_scale)


def mark_augmentation(model, augment, crop_scale: float = config.ModelConfig.crop_scale):
    """Record on ``model`` how ``train`` augments its data: ``model.augment_mode`` and ``model.augmentation``.

    Returns:
        ``model``.
    """
    model.augment_mode = augment_mode(augment)
    model.augmentation = augmentation_of(augment, crop_scale)
    return model


def augmented_copies(batches, augmentation: augment_lib.Augmentation | None = None):
    """Training batches with the study's augmented copies added: ``augment: add``.

    Batch ``2i`` is ``batches[i]`` as it is, batch ``2i + 1`` the same images augmented (drawn from
    the batches' seed, the epoch and each image's row): an epoch holds every image twice, once as it
    is and once augmented, as the study "added" its augmented images "to the input data".

    Args:
        batches: a ``data.batches`` sequence of ``(x, y)`` (its epochs, shuffling and resume kept),
            without an augmentation of its own.
        augmentation: the copies' augmentation (default: the study's).

    Returns:
        A ``keras.utils.PyDataset`` of twice as many batches.
    """
    return AugmentedCopies(batches, augmentation or augment_lib.Augmentation("study"))


class AugmentedCopies(keras.utils.PyDataset):
    """``batches`` with every batch followed by its augmented copy (see ``augmented_copies``)."""

    def __init__(self, batches, augmentation: augment_lib.Augmentation):
        super().__init__()
        self.base = batches
        self.augmentation = augmentation

    def __len__(self):
        return 2 * len(self.base)

    def __getitem__(self, index):
        x, y = self.base[index // 2]
        if index % 2:  # the same dtype as the originals (uint8 batches stay uint8: one input signature)
            base = self.base
            copies = base.augmented(
                x.astype(np.uint8, copy=False), base._rows(index // 2), base.epoch, self.augmentation
            )
            x = copies if x.dtype == np.uint8 else copies.astype(x.dtype)
        return x, y

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def on_epoch_begin(self):
        self.base.on_epoch_begin()

    def on_epoch_end(self):
        self.base.on_epoch_end()


def classifier_head(x, num_classes: int, dense_units: int, dropout: float, name: str = "head"):
    """Global average pooling, a Dense layer, Dropout and the softmax Dense layer.

    Args:
        x: feature-map tensor.
        num_classes: number of landmarks.
        dense_units: width of the hidden Dense layer.
        dropout: dropout rate between the two Dense layers.
        name: prefix of the layer names (the softmax layer is ``predictions``).

    Returns:
        Class probabilities.
    """
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    x = layers.Dense(dense_units, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    # float32 under any mixed-precision policy: probabilities and the loss need its range
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def res_incep(
    input_shape: tuple[int, int, int],
    num_classes: int,
    filters: tuple[int, ...] = study.RES_INCEP_FILTERS,
    blocks: tuple[int, ...] = (3, 3, 2, 2),
    stem_filters: int = study.STEM_FILTERS,
    dense_units: int = 128,
    dropout: float = 0.5,
    augment: bool | str = False,
    crop_scale: float = config.ModelConfig.crop_scale,
    name: str = "res_incep",
):
    """The study's Res-Incep network.

    Downsampling: the stem is a stride-2 convolution and a stride-2 max-pool, and
    every stage after the first starts with a stride-2 block, so a 250 px image
    reaches the last stage at 8x8 (the study does not say where it downsampled;
    without any downsampling one 250 px image costs about 138 GMAC).

    Args:
        input_shape: ``(height, width, 3)`` of the raw 0..255 RGB input.
        num_classes: number of landmarks (the softmax width).
        filters: width of each stage; the study's final run used ``(40, 60, 75, 80)``
            (about 2.2M parameters), its first try ``(60, 120, 250, 600)`` (about 60M).
        blocks: residual-inception blocks per stage (ten in all in the study).
        stem_filters: filters of the stem convolution (35 in the study's Figure 15).
        dense_units: width of the hidden Dense layer.
        dropout: dropout rate before the softmax layer.
        augment: how ``train`` augments the data (``AUGMENT_MODES``), recorded on the model
            (``mark_augmentation``): ``"replace"`` (or ``True``), each image replaced by the study's
            random flips, rotation and zoom of it; ``"photo"``, the modern recipe's photo augmentation
            instead; ``"add"``, augmented copies added (``augmented_copies``). The model itself is
            the same in every case.
        crop_scale: ``"photo"``'s largest random cut from a side.
        name: model name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    if len(filters) != len(blocks):
        raise ValueError(f"filters {tuple(filters)} and blocks {tuple(blocks)} need one entry per stage")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv_bn_lrelu(x, stem_filters, 3, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for i, (width, n) in enumerate(zip(filters, blocks), start=1):
        x = stage(x, int(width), int(n), strides=1 if i == 1 else 2, name=f"stage{i}")
    outputs = classifier_head(x, num_classes, dense_units, dropout)
    model = keras.Model(inputs, outputs, name=name)
    return mark_augmentation(model, augment, crop_scale)  # train() augments the data as marked


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
    """A model from a run's settings.

    Args:
        settings: ``model`` (``res_incep`` or ``resnet50``), ``input_size``, and the builder's
            keywords: ``filters``, ``blocks``, ``dense_units``, ``dropout``, ``augment``
            (Res-Incep) or ``weights``, ``weights_download_timeout`` (ResNet-50).
        num_classes: number of landmarks.

    Returns:
        An uncompiled ``keras.Model``.
    """
    shape = (settings.input_size, settings.input_size, 3)
    if settings.model == "res_incep":
        return res_incep(
            shape,
            num_classes,
            filters=settings.filters,
            blocks=settings.blocks,
            dense_units=settings.dense_units,
            dropout=settings.dropout,
            augment=settings.augment,
            crop_scale=settings.crop_scale,
        )
    return resnet50_benchmark(
        shape, num_classes, weights=settings.weights, download_timeout=settings.weights_download_timeout
    )


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
    evaluate.strict_top_k_metric_class()  # registers the metric a model compiled by ``train`` was saved with
    path = Path(path)
    model = keras.saving.load_model(path, custom_objects=recipes.custom_objects())
    return model, data.load_label_map(path.with_name(path.name.removesuffix(".keras") + ".labels.json"))
