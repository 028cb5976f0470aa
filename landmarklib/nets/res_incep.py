"""The study's Res-Incep network, a Keras 3 model of built-in layers taking raw 0..255 RGB pixels.

Res-Incep (the study's "Implementation" section): a stem convolution, ten
residual blocks, each a convolution + BatchNormalization + LeakyReLU followed by
an inception block of four parallel branches (1x1 -> 3x3 -> 1x1, 1x1 -> 5x5 ->
1x1, 3x3 max-pool -> 1x1, and 1x1, with ReLU), concatenated, normalized and
passed through a LeakyReLU; a 1x1 projection on the shortcut when the stride or
the width changes; then two Dense layers with Dropout and a softmax.

Stochastic depth (``ModelConfig.stochastic_depth`` > 0; not the study's): each block's residual branch
passes a ``layers.StochasticDepth`` (``stage2_block1_stochastic_depth``) before the add, its drop rate rising
linearly with the block's depth, ``rate * k / K`` for block ``k`` of ``K``, to ``rate`` for the deepest one
(Huang et al. 2016). At 0 no such layer is made: the network is the study's, layer for layer.

Layer names follow ``keras/src/applications/resnet.py``: ``stem_conv``,
``stage2_block1_conv``, ``stage2_block1_b2_5x5``, ``stage2_block1_concat``,
``stage2_block1_add``, ``head_dense``, ``predictions``, so that the figures of
notebook 05 can ask for a layer by a name a reader understands.
"""

from __future__ import annotations

import keras
from keras import layers

from .. import config, study
from ..augment import mark_augmentation
from .layers import StochasticDepth

FEATURES = "head_pool"
"""The layer whose input is the feature map (``retrieval.embedding_model`` cuts the network there)."""


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


def residual_block(x, filters: int, strides: int = 1, name: str = "block", drop_rate: float = 0.0):
    """A residual-inception block: conv-BN-LeakyReLU, an inception block, plus the shortcut.

    Args:
        x: input tensor.
        filters: width of the convolution and of each inception branch.
        strides: stride of the block's convolution (and of its shortcut).
        name: block label.
        drop_rate: stochastic depth's drop rate of the residual branch (``layers.StochasticDepth``);
            0: no such layer.

    Returns:
        Output tensor with ``4 * filters`` channels.
    """
    out_channels = 4 * filters
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = layers.Conv2D(out_channels, 1, strides=strides, name=f"{name}_shortcut")(x)
    x = conv_bn_lrelu(x, filters, 3, strides=strides, name=name)
    x = inception_block(x, filters, name=name)
    if drop_rate > 0:
        x = StochasticDepth(drop_rate, name=f"{name}_stochastic_depth")(x)
    return layers.Add(name=f"{name}_add")([shortcut, x])


def stage(x, filters: int, blocks: int, strides: int, name: str, drop_rates: tuple[float, ...] = ()):
    """Residual-inception blocks of one width; the first one may downsample.

    Args:
        x: input tensor.
        filters: width of every block of the stage.
        blocks: number of blocks.
        strides: stride of the first block.
        name: stage label.
        drop_rates: each block's stochastic depth rate (empty: 0 for all).

    Returns:
        Output tensor.
    """
    rates = tuple(drop_rates) or (0.0,) * blocks
    x = residual_block(x, filters, strides=strides, name=f"{name}_block1", drop_rate=rates[0])
    for i in range(2, blocks + 1):
        x = residual_block(x, filters, name=f"{name}_block{i}", drop_rate=rates[i - 1])
    return x


def depth_rates(blocks: tuple[int, ...], rate: float) -> list[tuple[float, ...]]:
    """Stochastic depth's rate of each block, per stage: ``rate * k / K`` for block ``k`` of all ``K`` (from 1).

    ``depth_rates((2, 2), 0.2)`` -> ``[(0.05, 0.1), (0.15, 0.2)]``; ``rate`` 0: every rate 0.
    """
    total = sum(int(n) for n in blocks)
    rates, k = [], 0
    for n in blocks:
        rates.append(tuple(float(rate) * (k + j) / total for j in range(1, int(n) + 1)))
        k += int(n)
    return rates


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
    stochastic_depth: float = 0.0,
    randaugment_ops: int = 0,
    randaugment_magnitude: float = config.ModelConfig.randaugment_magnitude,
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
        augment: how ``train`` augments the data (``augment.AUGMENT_MODES``), recorded on the model
            (``augment.mark_augmentation``): ``"replace"`` (or ``True``), each image replaced by the study's
            random flips, rotation and zoom of it; ``"photo"``, the modern recipe's photo augmentation
            instead; ``"add"``, augmented copies added (``pipeline.augmented_copies``). The model itself is
            the same in every case.
        crop_scale: ``"photo"``'s largest random cut from a side.
        stochastic_depth: the deepest block's stochastic depth rate (``depth_rates``; 0: none, the study's network).
        randaugment_ops, randaugment_magnitude: RandAugment after the augmentation, recorded on the model like it
            (``augment.Augmentation``; needs an ``augment``).
        name: model name.

    Returns:
        An uncompiled ``keras.Model``.
    """
    if len(filters) != len(blocks):
        raise ValueError(f"filters {tuple(filters)} and blocks {tuple(blocks)} need one entry per stage")
    if not 0 <= stochastic_depth < 1:
        raise ValueError(f"stochastic_depth must be in [0, 1), not {stochastic_depth}")
    rates = depth_rates(tuple(blocks), stochastic_depth)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv_bn_lrelu(x, stem_filters, 3, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for i, (width, n) in enumerate(zip(filters, blocks), start=1):
        x = stage(x, int(width), int(n), strides=1 if i == 1 else 2, name=f"stage{i}", drop_rates=rates[i - 1])
    outputs = classifier_head(x, num_classes, dense_units, dropout)
    model = keras.Model(inputs, outputs, name=name)
    model.pretrained = False  # always starts random (models.build: True with init_from)
    # train() augments the data as marked
    return mark_augmentation(model, augment, crop_scale, randaugment_ops, randaugment_magnitude)


def build(settings: config.ModelConfig, num_classes: int):
    """``res_incep`` from a run's settings (``models.build``)."""
    return res_incep(
        (settings.input_size, settings.input_size, 3),
        num_classes,
        filters=settings.filters,
        blocks=settings.blocks,
        dense_units=settings.dense_units,
        dropout=settings.dropout,
        augment=settings.augment,
        crop_scale=settings.crop_scale,
        stochastic_depth=settings.stochastic_depth,
        randaugment_ops=settings.randaugment_ops,
        randaugment_magnitude=settings.randaugment_magnitude,
    )
