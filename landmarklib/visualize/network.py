"""What a trained convolutional network looks at: filters, feature maps, class activation maps.

Works on Keras 3 functional models whose layers sit in one graph (Res-Incep, or a
ResNet-50 built on the model's input tensor). Layers are asked for by name or by
their 1-based position among the model's ``Conv2D`` layers, as in the study
("conv layers 2, 8 and 24").

    conv_layers, get_layer            find layers
    filter_images, plot_filters       kernels as images (first and deeper convolutions)
    feature_maps, plot_feature_maps   activations of chosen layers for one image
    grad_cam, overlay_cam             Grad-CAM heatmaps (TensorFlow and JAX backends)
    pick_examples, cam_examples, plot_cam_comparison   correct vs wrong predictions, side by side
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import keras
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

# --------------------------------------------------------------------------- layers


def conv_layers(model) -> list:
    """The model's ``Conv2D`` layers in graph order (1-based position = index + 1)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def get_layer(model, which: str | int):
    """A layer by name, or by its 1-based position among the ``Conv2D`` layers.

    Args:
        model: a Keras functional model.
        which: a layer name (any layer), or an int ``k`` = the k-th ``Conv2D``.
    """
    if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
        convs = conv_layers(model)
        if not 1 <= which <= len(convs):
            raise ValueError(
                f"conv layer {which} asked for; the model has {len(convs)} Conv2D layers (1..{len(convs)})"
            )
        return convs[which - 1]
    try:
        return model.get_layer(str(which))
    except ValueError as err:
        raise ValueError(f"no layer named {which!r} in model {model.name!r}") from err


def deep_filter_layer(model):
    """The deepest ``Conv2D`` whose kernel is larger than 1x1 (1x1 kernels draw as single pixels)."""
    spatial = [layer for layer in conv_layers(model) if max(layer.kernel_size) > 1]
    if not spatial:
        raise ValueError(f"model {model.name!r} has no Conv2D layer with a kernel larger than 1x1")
    return spatial[-1]


def cam_layer(model, min_size: int = 4):
    """The feature map Grad-CAM uses by default: the end of the last block that is at least ``min_size`` wide.

    Candidates are layers with a 4-D output through which everything after them
    flows (a block's output, not a branch inside a block), latest first. At 64 px
    Res-Incep's last block is 2x2, too coarse to show anything, so the latest
    candidate at least ``min_size`` pixels wide is taken; when none is, the last one.
    """
    maps = []
    for layer in reversed(model.layers):
        if _is_input(layer):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            continue
        if len(shape) == 4:
            maps.append((layer, min(shape[1] or 0, shape[2] or 0) >= min_size))
    wide = [layer for layer, big in maps if big]
    for layer in (*wide, *(layer for layer, big in maps if not big)):
        if _separates(model, layer):
            return layer
    raise ValueError(f"model {model.name!r} has no 4-D feature map that the rest of the model depends on alone")


def _separates(model, layer) -> bool:
    """Whether the model's output can be computed from ``layer``'s output alone."""
    try:
        keras.Model(layer.output, model.output)
    except ValueError:
        return False
    return True


def _is_input(layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


# --------------------------------------------------------------------------- filters


def filter_images(kernel: np.ndarray, mode: str = "rgb") -> np.ndarray:
    """Convolution kernels as images, each scaled to 0..1 on its own.

    Args:
        kernel: weights of shape (kh, kw, in_channels, filters).
        mode: ``"rgb"`` (needs 3 input channels: the first convolution),
            ``"mean"`` (mean over input channels), or ``"first"`` (input channel 0).

    Returns:
        (filters, kh, kw, 3) for ``"rgb"``, else (filters, kh, kw).
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 4:
        raise ValueError(f"kernel must be (kh, kw, in, out); got shape {k.shape}")
    if mode == "rgb":
        if k.shape[2] != 3:
            raise ValueError(f"mode 'rgb' needs 3 input channels; this kernel has {k.shape[2]} (use 'mean' or 'first')")
        imgs = np.moveaxis(k, 3, 0)
    elif mode == "mean":
        imgs = np.moveaxis(k.mean(axis=2), 2, 0)
    elif mode == "first":
        imgs = np.moveaxis(k[:, :, 0, :], 2, 0)
    else:
        raise ValueError(f"mode must be 'rgb', 'mean' or 'first'; got {mode!r}")
    axes = tuple(range(1, imgs.ndim))
    lo = imgs.min(axis=axes, keepdims=True)
    span = imgs.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (imgs - lo) / np.where(span > 0, span, 1), 0.5)


def _grid(n: int, max_cols: int = 10) -> tuple[int, int]:
    cols = min(max_cols, max(1, n))
    return int(np.ceil(n / cols)), cols


def plot_filters(
    model, layer: str | int | None = None, mode: str | None = None, max_filters: int = 64, title: str | None = None
):
    """The kernels of one convolution as a grid (the study's Figure 15).

    Args:
        model: a Keras model.
        layer: name or 1-based Conv2D position; default the first convolution.
        mode: see ``filter_images``; default ``"rgb"`` when the layer sees 3 channels, else ``"mean"``.
        max_filters: draw at most this many filters.
        title: figure title; default names the layer, its filter count and kernel size.
    """
    conv = get_layer(model, 1 if layer is None else layer)
    kernel = np.asarray(conv.get_weights()[0])
    mode = mode or ("rgb" if kernel.shape[2] == 3 else "mean")
    imgs = filter_images(kernel, mode)[:max_filters]
    rows, cols = _grid(len(imgs))
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.1 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), imgs):
        ax.imshow(img, cmap=None if img.ndim == 3 else "gray", interpolation="nearest", vmin=0, vmax=1)
    shown = f"{len(imgs)} of {kernel.shape[3]}" if len(imgs) < kernel.shape[3] else f"{kernel.shape[3]}"
    how = {"rgb": "RGB", "mean": "mean over input channels", "first": "input channel 0"}[mode]
    fig.suptitle(title or f"{conv.name}: {shown} filters, {kernel.shape[0]}x{kernel.shape[1]} ({how})")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- feature maps


def feature_maps(model, image: np.ndarray, layers: Sequence[str | int], n_channels: int = 10) -> dict[str, np.ndarray]:
    """Activations of chosen layers for one image.

    Args:
        model: a Keras functional model taking (S, S, 3) images in 0..255.
        image: one image (S, S, 3).
        layers: names or 1-based Conv2D positions; each must output a 4-D map.
        n_channels: keep the first this many channels.

    Returns:
        layer name -> array (H, W, min(n_channels, C)), in the order asked for.
    """
    chosen = [get_layer(model, which) for which in layers]
    for layer in chosen:
        if len(layer.output.shape) != 4:
            raise ValueError(f"layer {layer.name!r} outputs shape {layer.output.shape}, not a 4-D feature map")
    probe = keras.Model(model.input, [layer.output for layer in chosen])
    x = np.asarray(image, dtype=np.float32)[None]
    outs = probe(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {layer.name: keras.ops.convert_to_numpy(out)[0, :, :, :n_channels] for layer, out in zip(chosen, outs)}


def plot_feature_maps(image: np.ndarray, maps: dict[str, np.ndarray], title: str | None = None):
    """One row per layer: the input image (titled with the layer's name and map size), then the
    first channels of that layer (the study's Figure 16)."""
    n_cols = 1 + max(m.shape[-1] for m in maps.values())
    fig, axes = plt.subplots(len(maps), n_cols, figsize=(1.3 * n_cols, 1.45 * len(maps) + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, (name, fmap) in zip(axes, maps.items()):
        row[0].imshow(np.clip(image, 0, 255).astype(np.uint8))
        row[0].set_title(f"{name}\n{fmap.shape[0]}x{fmap.shape[1]}", fontsize=7, loc="left")
        for c in range(fmap.shape[-1]):
            row[c + 1].imshow(fmap[:, :, c], cmap="viridis")
            row[c + 1].set_title(f"#{c}", fontsize=7)
    fig.suptitle(title or "Feature maps: first channels of each layer")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Grad-CAM


def _split_for_cam(model, layer):
    """(body: input -> feature map, head: feature map -> class scores before softmax)."""
    body = keras.Model(model.input, layer.output)
    last = model.layers[-1]
    softmax_dense = isinstance(last, keras.layers.Dense) and getattr(last.activation, "__name__", "") == "softmax"
    try:
        head = keras.Model(layer.output, last.input if softmax_dense else model.output)
    except ValueError as err:
        raise ValueError(
            f"layer {layer.name!r} does not separate the model: later layers also read earlier tensors "
            "(pick the output of the last block)"
        ) from err

    def scores(features):
        out = head(features, training=False)
        if softmax_dense:
            out = keras.ops.matmul(out, last.kernel)
            if last.use_bias:
                out = out + last.bias
        return out

    return body, scores


def _feature_gradients(scores, features, onehot):
    """d(sum of the chosen class scores) / d(features), per backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # the backend in use only

        features = tf.convert_to_tensor(features)
        with tf.GradientTape() as tape:
            tape.watch(features)
            picked = tf.reduce_sum(scores(features) * onehot)
        return tape.gradient(picked, features)
    if backend == "jax":
        import jax  # the backend in use only
        import jax.numpy as jnp  # the backend in use only

        return jax.grad(lambda f: jnp.sum(scores(f) * onehot))(features)
    raise NotImplementedError(f"Grad-CAM is implemented for the tensorflow and jax backends, not {backend!r}")


def grad_cam(
    model, images: np.ndarray, class_indices: Sequence[int] | None = None, layer: str | int | None = None
) -> np.ndarray:
    """Grad-CAM heatmaps: where in each image the evidence for a class lies.

    For the chosen feature map A (default ``cam_layer``: the end of the last
    convolution block at least 4 pixels wide), each channel is weighted by the spatial mean of the
    gradient of the class score (pre-softmax when the model ends in a softmax
    Dense) with respect to it; the weighted sum, through ReLU, is the heatmap
    (Selvaraju et al., 2017). Gradients use ``tf.GradientTape`` or ``jax.grad``
    depending on ``keras.backend.backend()``.

    Args:
        model: a Keras functional model taking (S, S, 3) images in 0..255.
        images: (N, S, S, 3) images.
        class_indices: class per image; default the predicted class.
        layer: name or 1-based Conv2D position of the feature map (one the rest of
            the model depends on alone); default ``cam_layer(model)``.

    Returns:
        (N, S, S) heatmaps scaled to 0..1 per image, at the image size.
    """
    target = cam_layer(model) if layer is None else get_layer(model, layer)
    body, scores = _split_for_cam(model, target)
    x = np.asarray(images, dtype=np.float32)
    features = body(x, training=False)
    if class_indices is None:
        class_indices = np.argmax(keras.ops.convert_to_numpy(scores(features)), axis=1)
    class_indices = np.asarray(class_indices, dtype=np.int64).ravel()
    if len(class_indices) != len(x):
        raise ValueError(f"{len(class_indices)} class indices for {len(x)} images")
    n_classes = int(model.output.shape[-1])
    onehot = np.eye(n_classes, dtype=np.float32)[class_indices]
    grads = keras.ops.convert_to_numpy(_feature_gradients(scores, features, onehot))
    fmap = keras.ops.convert_to_numpy(features)
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cams = np.maximum((fmap * weights).sum(axis=-1), 0)
    return np.stack([_resize_unit(c, x.shape[1:3]) for c in cams]) if len(cams) else np.zeros((0, *x.shape[1:3]))


def _resize_unit(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A heatmap scaled to 0..1 and resized (bilinear) to ``size`` (H, W)."""
    top = cam.max()
    unit = cam / top if top > 0 else np.zeros_like(cam)
    resized = Image.fromarray(unit.astype(np.float32)).resize((size[1], size[0]), Image.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def overlay_cam(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB image (0..1) with the heatmap drawn over it in the ``jet`` colour map."""
    base = np.clip(np.asarray(image, dtype=np.float32) / 255.0, 0, 1)
    heat = matplotlib.colormaps["jet"](np.clip(cam, 0, 1))[..., :3]
    return np.clip((1 - alpha) * base + alpha * heat, 0, 1)


class CamExample(NamedTuple):
    """One panel: the image (S, S, 3, 0..255), its heatmap (S, S, 0..1), a caption."""

    image: np.ndarray
    cam: np.ndarray
    caption: str


def pick_examples(
    predicted: np.ndarray, confidence: np.ndarray, actual: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the ``n`` most confident correct and the ``n`` most confident wrong predictions.

    Confident mistakes are the most telling: the heatmap shows what convinced the model.
    Ties go to the lower row index.
    """
    predicted = np.asarray(predicted)
    actual = np.asarray(actual)
    order = np.lexsort((np.arange(len(predicted)), -np.asarray(confidence, dtype=np.float64)))
    right = predicted[order] == actual[order]
    return order[right][:n], order[~right][:n]


def cam_examples(
    model,
    images: np.ndarray,
    labels: Sequence[int],
    landmark_ids: Sequence[int],
    n: int,
    probs: np.ndarray | None = None,
    batch_size: int = 64,
) -> tuple[list[CamExample], list[CamExample]]:
    """Predict ``images`` and explain the ``n`` most confident correct and wrong predictions.

    Each heatmap is Grad-CAM for the *predicted* class: for a mistake, it shows
    what the model took for the landmark it named.

    Args:
        model: a Keras model taking (S, S, 3) images in 0..255.
        images: (N, S, S, 3) images, e.g. the validation split.
        labels: true class index of each image.
        landmark_ids: landmark id of each class index (the model's label map).
        n: examples of each kind.
        probs: the model's class probabilities for ``images``, when already computed.
        batch_size: images per forward pass (when ``probs`` is not given).

    Returns:
        (correct examples, wrong examples), captioned "true A / predicted B (p%)".
    """
    x = np.asarray(images, dtype=np.float32)
    if probs is None:
        probs = model.predict(x, batch_size=batch_size, verbose=0)
    probs = np.asarray(probs)
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    labels = np.asarray(labels)
    groups = []
    for rows in pick_examples(predicted, confidence, labels, n):
        cams = grad_cam(model, x[rows], predicted[rows]) if len(rows) else []
        groups.append(
            [
                CamExample(
                    x[r],
                    cam,
                    f"true {landmark_ids[labels[r]]} / predicted {landmark_ids[predicted[r]]} ({confidence[r]:.0%})",
                )
                for r, cam in zip(rows, cams)
            ]
        )
    return groups[0], groups[1]


def plot_cam_comparison(correct: Sequence[CamExample], wrong: Sequence[CamExample], title: str | None = None):
    """Grad-CAM overlays: correct predictions in the left column, wrong ones in the right."""
    rows = max(1, len(correct), len(wrong))
    fig, axes = plt.subplots(rows, 2, figsize=(5.6, 2.8 * rows + 0.4), squeeze=False)
    for col, (examples, label) in enumerate(((correct, "correct"), (wrong, "wrong"))):
        for r in range(rows):
            ax = axes[r, col]
            ax.axis("off")
            if r < len(examples):
                ex = examples[r]
                ax.imshow(overlay_cam(ex.image, ex.cam))
                ax.set_title(ex.caption, fontsize=8)
            elif r == 0:
                ax.text(0.5, 0.5, f"no {label} prediction", ha="center", va="center", fontsize=9)
        axes[0, col].annotate(
            label.upper(), xy=(0.5, 1.18), xycoords="axes fraction", ha="center", fontsize=10, weight="bold"
        )
    fig.suptitle(title or "Grad-CAM: where the evidence for the predicted landmark lies", y=1.0)
    fig.tight_layout()
    return fig
