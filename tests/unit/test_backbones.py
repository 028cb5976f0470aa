"""Backbones from keras.applications (``nets.applications``): ImageNet weights from Keras' cache or a file, refused
in one line otherwise; every architecture's classifier and retrieval model, their layer names and ``pretrained``.

Offline and deterministic: the "ImageNet" files are written here (seeded networks), any connection fails the
tests that must not touch the network, and the refused download is a closed local port.
"""

from __future__ import annotations

import dataclasses
import importlib
import socket

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from landmarklib import config
from landmarklib.nets import applications, convnext_tiny, efficientnet_b0, layers, models, resnet50, retrieval

from conftest import TINY_NETWORK

SIZE = 32
CLASSES = 3
B0 = {"model": "efficientnet_b0", "input_size": SIZE, "weights_download_timeout": 0}
CLOSED_PORT = "http://127.0.0.1:9/notop.h5"  # refused at once, whatever the machine's network
BACKBONE_LAYER = {
    "res_incep": "stage4_block1_add",
    "resnet50": "conv5_block3_out",
    "efficientnet_b0": "top_activation",
    "convnext_tiny": "convnext_tiny_stage_3_block_2_pointwise_conv_2",
}
"""A layer deep in each architecture's backbone (the model's own, not a nested model's)."""
HEAD = {
    "res_incep": ["head_pool", "head_dense", "head_dropout", "predictions"],
    "resnet50": ["avg_pool", "predictions"],  # the study's benchmark: no dropout
    "efficientnet_b0": ["avg_pool", "head_dropout", "predictions"],
    "convnext_tiny": ["avg_pool", "head_dropout", "predictions"],
}
RETRIEVAL_HEAD = ["gem_pool", "embedding_dense", "embedding_bn", "embedding", "cosines"]
# Keras' save_weights under TensorFlow with NumPy 2 (keras/src/backend/tensorflow/core.py, once per weight): not ours
KERAS_TF_NUMPY2 = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")


@pytest.fixture
def no_network(monkeypatch):
    """Every connection or name lookup fails (and is recorded): what runs must not touch the network."""
    touched = []

    def refuse(*args, **kwargs):
        touched.append(args)
        raise AssertionError(f"the network was touched: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield touched
    assert touched == []


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache: ``$KERAS_HOME/models``."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "models").mkdir(parents=True)
    return tmp_path / "keras" / "models"


def seeded_backbone(module, seed: int = 5):
    """A family's backbone without weights, seeded (different from any unseeded build)."""
    keras.utils.set_random_seed(seed)
    return module.backbone(keras.Input((SIZE, SIZE, 3)), None)


def with_weights(model) -> list:
    """The layers with weights, in model order, without the head's."""
    return [layer for layer in model.layers if layer.weights and layer.name not in ("predictions", "head_dense")]


def assert_same_weights(model, donor, but=()) -> None:
    """The backbone's weights are the donor's (but those of the layers of the types ``but``)."""
    mine, given = with_weights(model), with_weights(donor)
    assert len(mine) == len(given) > 100
    for layer, other in zip(mine, given):
        if isinstance(layer, but):
            continue
        for a, b in zip(layer.get_weights(), other.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)


@KERAS_TF_NUMPY2
def test_a_weights_h5_file_loads_into_the_backbone(tmp_path, no_network):
    donor = seeded_backbone(efficientnet_b0)
    path = tmp_path / "b0.weights.h5"
    donor.save_weights(path)
    model = models.build(config.ModelConfig(**B0, weights=str(path)), CLASSES)
    assert_same_weights(model, donor)
    assert (model.weights_source, model.weights_note, model.pretrained) == (str(path), "", True)
    assert model.backbone_params == efficientnet_b0.BACKBONE_PARAMS == 4_049_571
    with pytest.raises(FileNotFoundError, match="EfficientNet-B0 weights file not found: .*no-such.h5$"):
        models.build(config.ModelConfig(**B0, weights=str(tmp_path / "no-such.h5")), CLASSES)


@KERAS_TF_NUMPY2
def test_imagenet_weights_come_from_keras_cache_by_path_without_the_network(keras_home, no_network):
    """The family's no-top file, in Keras' legacy h5 layout as Keras downloads it, in ``$KERAS_HOME/models``;
    its ``Normalization`` holds ImageNet's mean and, as Keras' file does, the standard deviations as variance."""
    donor = seeded_backbone(efficientnet_b0)
    norm = next(layer for layer in donor.layers if isinstance(layer, keras.layers.Normalization))
    mean, std = np.array(efficientnet_b0.IMAGENET_MEAN_RGB), np.array(efficientnet_b0.IMAGENET_STDDEV_RGB)
    norm.set_weights([np.reshape(v, w.shape) for v, w in zip((mean, std, 1_000_000), norm.get_weights())])
    cached = keras_home / efficientnet_b0.IMAGENET_WEIGHTS.file
    with h5py.File(cached, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, donor)

    model = models.build(config.ModelConfig(**B0, weights="imagenet"), CLASSES)
    assert_same_weights(model, donor, but=keras.layers.Normalization)
    assert (model.weights_source, model.weights_note, model.pretrained) == ("imagenet", "", True)
    # Keras' normalisation with weights="imagenet", (x / 255 - mean) / std, though Keras was given a path: the
    # variance is squared, once (efficientnet_b0's docstring)
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    normalised = keras.Model(model.input, model.get_layer("efficientnetb0_normalization").output)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(normalised), (x / 255 - mean) / std, rtol=1e-4, atol=1e-4)
    stats = model.get_layer("efficientnetb0_normalization").get_weights()
    np.testing.assert_allclose(stats[1].ravel(), std**2, rtol=1e-6)
    assert not efficientnet_b0.standard_deviations_as_variance(model)
    # the same file given by its path: the same weights, the path recorded
    again = models.build(config.ModelConfig(**B0, weights=str(cached)), CLASSES)
    assert_same_weights(again, model)
    assert again.weights_source == str(cached) and again.pretrained
    # Keras' session-numbered layers get fixed names, the same in every build (transfer matches by name)
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def test_without_cache_or_network_the_weights_are_refused_in_one_line(keras_home, no_network):
    settings = config.ModelConfig(**B0, weights="imagenet")
    with pytest.raises(applications.WeightsUnavailable) as refused:
        models.build(settings, CLASSES)
    message = str(refused.value)
    assert isinstance(refused.value, RuntimeError) and "\n" not in message
    assert str(keras_home / "efficientnetb0_notop.h5") in message and "weights_download_timeout=0" in message
    assert f"into {keras_home}," in message and "weights=<a weights file>" in message
    assert "weights=None" in message

    model = models.build(settings.replace(imagenet_fallback=True), CLASSES)
    assert (model.weights_source, model.pretrained) == ("random", False)
    assert "RANDOMLY INITIALIZED" in model.weights_note and str(keras_home) in model.weights_note


@pytest.mark.parametrize("module", [resnet50, efficientnet_b0, convnext_tiny], ids=lambda m: m.__name__.split(".")[-1])
def test_an_unreachable_server_is_refused_naming_the_file_and_the_url(keras_home, module):
    imagenet = module.IMAGENET_WEIGHTS
    with pytest.raises(applications.WeightsUnavailable) as refused:
        applications.resolve_weights("imagenet", dataclasses.replace(imagenet, url=CLOSED_PORT), timeout=2.0)
    message = str(refused.value)
    assert "\n" not in message and str(keras_home / imagenet.file) in message
    assert f"{CLOSED_PORT} cannot be reached" in message and f"into {keras_home}," in message
    resolved = applications.resolve_weights("imagenet", imagenet, timeout=0, fallback=True)
    assert resolved == (None, "random", resolved.note) and not resolved.pretrained


KERAS_SOURCES = {
    resnet50: ("resnet", "resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    efficientnet_b0: ("efficientnet", "b0", "efficientnetb0_notop.h5"),
    convnext_tiny: ("convnext", "convnext_tiny", "convnext_tiny_notop.h5"),
}
"""Architecture module -> its keras/src/applications module, its key in WEIGHTS_HASHES, the no-top file Keras names."""


@pytest.mark.parametrize("module", list(KERAS_SOURCES), ids=lambda m: m.__name__.split(".")[-1])
def test_the_imagenet_files_are_keras_own(module):
    """The file names, URLs and hashes are Keras' (a Keras upgrade that moves them fails here)."""
    source, key, file = KERAS_SOURCES[module]
    keras_module = importlib.import_module(f"keras.src.applications.{source}")
    imagenet = module.IMAGENET_WEIGHTS
    assert imagenet.file == file and imagenet.url == keras_module.BASE_WEIGHTS_PATH + file
    assert imagenet.file_hash == keras_module.WEIGHTS_HASHES[key][1]  # (with its top, without)


@pytest.mark.parametrize("arch", config.ARCHITECTURES)
def test_every_architecture_builds_a_classifier_and_a_retrieval_model(arch):
    assert set(BACKBONE_LAYER) == set(HEAD) == set(config.ARCHITECTURES)  # a new architecture is listed here
    params = TINY_NETWORK if arch == "res_incep" else {"model": arch, "input_size": SIZE, "weights": None}
    settings = config.ModelConfig.from_params(params)
    model = models.build(settings, CLASSES)
    names = [layer.name for layer in model.layers]
    assert model.input.name == "image" and model.name == arch and model.output_shape == (None, CLASSES)
    assert names[-len(HEAD[arch]) :] == HEAD[arch] and names[-len(HEAD[arch])] == models.ARCHITECTURES[arch].FEATURES
    assert model.get_layer(BACKBONE_LAYER[arch]).name in model.backbone_layers
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    assert model.pretrained is False
    assert arch == "res_incep" or (model.weights_source, model.backbone_params) == (
        "random",
        model.count_params() - sum(layer.count_params() for layer in model.layers if layer.name in HEAD[arch]),
    )

    embedding = retrieval.embedding_model(settings, CLASSES, embedding_dim=8)
    names = [layer.name for layer in embedding.layers]
    assert names[-len(RETRIEVAL_HEAD) :] == RETRIEVAL_HEAD and models.ARCHITECTURES[arch].FEATURES not in names
    assert names[1 : len(model.backbone_layers) + 1] == model.backbone_layers  # the same names in a second build
    assert embedding.pretrained is False and embedding.output_shape == (None, CLASSES)


def test_stochastic_depth_is_each_family_drop_rate():
    """EfficientNet's ``drop_connect_rate`` (Keras' Dropout layers ``<block>_drop``: block ``b`` of 16 drops at
    ``rate * b / 16``); ConvNeXt's ``drop_path_rate`` (the project's seeded StochasticDepth: JAX-compilable) is checked
    by ``test_jax_xla``; ResNet-50 has none and refuses it."""
    model = models.build(
        config.ModelConfig(model="efficientnet_b0", input_size=SIZE, weights=None, stochastic_depth=0.2), 2
    )
    drops = {layer.name: layer.rate for layer in model.layers if layer.name.endswith("_drop")}
    assert drops["block6d_drop"] == pytest.approx(0.2 * 14 / 16) and drops["block2b_drop"] == pytest.approx(
        0.2 * 2 / 16
    )
    assert not any(isinstance(layer, layers.StochasticDepth) for layer in model.layers)
    with pytest.raises(ValueError, match="resnet50 has no stochastic depth"):
        resnet50.backbone(keras.Input((SIZE, SIZE, 3)), None, drop_rate=0.1)
