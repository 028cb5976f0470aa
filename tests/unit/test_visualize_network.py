"""Filters, feature maps and Grad-CAM on small models whose answers are known."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from landmarklib.visualize import network


def cam_check_model(seed: int = 0):
    """conv (same size as the image) -> 'features' -> GAP -> softmax Dense: Grad-CAM = classic CAM."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def cam_versus_manual() -> dict:
    """Grad-CAM of cam_check_model against the class activation map computed by hand
    (feature maps x the Dense weights of the class), under the current backend."""
    import keras

    model = cam_check_model()
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    classes = np.array([0, 1, 2, 1])
    cams = network.grad_cam(model, x, classes, layer="features")
    fmap = keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer("features").output)(x))
    w = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    manual = np.maximum(np.einsum("nhwk,kn->nhw", fmap, w[:, classes]), 0)
    manual = manual / manual.max(axis=(1, 2), keepdims=True)
    return {
        "backend": keras.backend.backend(),
        "shape": list(cams.shape),
        "max_diff": float(np.abs(cams - manual).max()),
    }


# The backend is fixed when Keras is imported: JAX runs in a fresh interpreter.
JAX_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_visualize_network import cam_versus_manual
print(json.dumps(cam_versus_manual()))
"""


@pytest.fixture(scope="module")
def small_res_incep():
    import keras

    from landmarklib.nets import res_incep

    keras.utils.set_random_seed(0)
    return res_incep.res_incep((64, 64, 3), 4, filters=(4, 4, 4, 4), stem_filters=6, dense_units=8)


def test_filter_images_scale_each_filter_to_unit_range():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 3, 5))
    kernel[..., 4] = 0.7  # a constant filter
    rgb = network.filter_images(kernel, "rgb")
    assert rgb.shape == (5, 3, 3, 3)
    assert np.allclose(rgb[:4].reshape(4, -1).min(axis=1), 0) and np.allclose(rgb[:4].reshape(4, -1).max(axis=1), 1)
    assert np.allclose(rgb[4], 0.5)
    assert np.allclose(rgb[1], (kernel[..., 1] - kernel[..., 1].min()) / np.ptp(kernel[..., 1]))
    deep = rng.normal(size=(5, 5, 7, 4))
    mean = network.filter_images(deep, "mean")
    assert mean.shape == (4, 5, 5)
    expected = deep[..., 2].mean(axis=2)
    assert np.allclose(mean[2], (expected - expected.min()) / np.ptp(expected))
    assert network.filter_images(deep, "first").shape == (4, 5, 5)
    with pytest.raises(ValueError, match="needs 3 input channels"):
        network.filter_images(deep, "rgb")
    with pytest.raises(ValueError, match="mode must be"):
        network.filter_images(deep, "max")


def test_layers_by_name_or_conv_position(small_res_incep):
    convs = network.conv_layers(small_res_incep)
    assert convs[0].name == "stem_conv"
    assert network.get_layer(small_res_incep, 1) is convs[0]
    assert network.get_layer(small_res_incep, 24) is convs[23]
    assert network.get_layer(small_res_incep, "predictions").name == "predictions"
    with pytest.raises(ValueError, match=f"has {len(convs)} Conv2D layers"):
        network.get_layer(small_res_incep, len(convs) + 1)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        network.get_layer(small_res_incep, "nope")
    assert max(network.deep_filter_layer(small_res_incep).kernel_size) > 1
    # 64 px: the last block is 2x2, so Grad-CAM takes the end of stage 3 (4x4)
    assert network.cam_layer(small_res_incep).name == "stage3_block2_add"
    assert network.cam_layer(small_res_incep, min_size=1).name == "stage4_block2_add"


def test_filter_figures(small_res_incep):
    import matplotlib.pyplot as plt

    fig = network.plot_filters(small_res_incep)
    assert len([ax for ax in fig.axes if ax.images]) == 6  # stem_conv has 6 filters
    assert "stem_conv" in fig._suptitle.get_text() and "RGB" in fig._suptitle.get_text()
    fig2 = network.plot_filters(small_res_incep, "stage4_block2_conv", max_filters=3)  # 4 filters, 16 inputs
    assert len([ax for ax in fig2.axes if ax.images]) == 3
    assert "3 of 4 filters" in fig2._suptitle.get_text()
    assert "mean over input channels" in fig2._suptitle.get_text()
    plt.close("all")


def test_feature_maps_of_conv_layers_2_8_24(small_res_incep):
    import matplotlib.pyplot as plt

    image = np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).astype(np.float32)
    maps = network.feature_maps(small_res_incep, image, [2, 8, 24], n_channels=10)
    convs = network.conv_layers(small_res_incep)
    assert list(maps) == [convs[1].name, convs[7].name, convs[23].name]
    for layer, fmap in zip((convs[1], convs[7], convs[23]), maps.values()):
        assert fmap.shape == (16, 16, min(10, layer.filters))
    wide = network.feature_maps(small_res_incep, image, ["stage1_block1_concat"], n_channels=10)
    assert wide["stage1_block1_concat"].shape == (16, 16, 10)  # 16 channels, first 10 kept
    with pytest.raises(ValueError, match="not a 4-D feature map"):
        network.feature_maps(small_res_incep, image, ["predictions"])
    fig = network.plot_feature_maps(image, maps)
    assert len([ax for ax in fig.axes if ax.images]) == 3 + sum(m.shape[-1] for m in maps.values())
    plt.close("all")


def test_grad_cam_on_res_incep(small_res_incep):
    x = np.random.default_rng(1).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    cams = network.grad_cam(small_res_incep, x)
    assert cams.shape == (3, 64, 64)
    assert cams.min() >= 0 and cams.max() <= 1
    chosen = network.grad_cam(small_res_incep, x, class_indices=[0, 1, 2])
    assert chosen.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="2 class indices for 3 images"):
        network.grad_cam(small_res_incep, x, class_indices=[0, 1])
    with pytest.raises(ValueError, match="does not separate the model"):
        network.grad_cam(small_res_incep, x, layer="stage3_block2_b4_1x1")


def test_grad_cam_equals_the_class_activation_map_under_tensorflow():
    result = cam_versus_manual()
    assert result["backend"] == "tensorflow" and result["shape"] == [4, 8, 8]
    assert result["max_diff"] < 1e-4


@pytest.mark.slow
def test_grad_cam_equals_the_class_activation_map_under_jax():
    pytest.importorskip("jax")
    out = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, os.path.dirname(__file__)],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["shape"] == [4, 8, 8]
    assert result["max_diff"] < 1e-4


def test_pick_examples_and_the_comparison_figure():
    import matplotlib.pyplot as plt

    predicted = np.array([1, 2, 3, 4, 5, 6])
    actual = np.array([1, 0, 3, 0, 5, 0])
    confidence = np.array([0.2, 0.9, 0.8, 0.1, 0.8, 0.5])
    right, wrong = network.pick_examples(predicted, confidence, actual, 2)
    assert right.tolist() == [2, 4]  # 0.8 and 0.8: the lower row first
    assert wrong.tolist() == [1, 5]

    image = np.full((8, 8, 3), 128.0)
    cam = np.linspace(0, 1, 64).reshape(8, 8)
    overlay = network.overlay_cam(image, cam)
    assert overlay.shape == (8, 8, 3) and overlay.min() >= 0 and overlay.max() <= 1
    ex = network.CamExample(image, cam, "true 1 / predicted 1 (0.80)")
    fig = network.plot_cam_comparison([ex, ex], [ex])
    assert len([ax for ax in fig.axes if ax.images]) == 3
    assert [ax.get_title() for ax in fig.axes if ax.images][0] == "true 1 / predicted 1 (0.80)"
    empty = network.plot_cam_comparison([ex], [])
    assert any("no wrong prediction" in t.get_text() for ax in empty.axes for t in ax.texts)
    plt.close("all")


def test_cam_examples_split_correct_and_wrong(small_res_incep):
    x = np.random.default_rng(2).uniform(0, 255, (6, 64, 64, 3)).astype(np.float32)
    predicted = small_res_incep.predict(x, verbose=0).argmax(axis=1)
    labels = predicted.copy()
    labels[[1, 3, 5]] = (predicted[[1, 3, 5]] + 1) % 4  # three wrong on purpose
    right, wrong = network.cam_examples(small_res_incep, x, labels, [10, 20, 30, 40], n=2)
    assert len(right) == 2 and len(wrong) == 2
    for ex in right + wrong:
        assert ex.image.shape == (64, 64, 3) and ex.cam.shape == (64, 64)
    true_id, pred_id = (int(part.split()[-1]) for part in wrong[0].caption.split(" (")[0].split(" / "))
    assert true_id != pred_id and {true_id, pred_id} <= {10, 20, 30, 40}
    assert right[0].caption.startswith("true ") and "/ predicted" in right[0].caption
