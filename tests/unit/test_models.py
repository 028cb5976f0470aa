"""Res-Incep and the ResNet-50 benchmark: structure, parameter counts, preprocessing, weights, saving, backends."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from landmarklib import augment, config, data, study
from landmarklib.nets import models, res_incep, resnet50

ROOT = Path(__file__).resolve().parents[2]
TINY = {"filters": (4, 4, 4, 4), "blocks": (1, 1, 1, 1), "stem_filters": 6, "dense_units": 8}


def res_incep_params(filters, blocks, n_classes, stem_filters=study.STEM_FILTERS, dense_units=128) -> int:
    """Res-Incep's parameter count by hand, layer by layer (``models.res_incep``'s architecture).

    A convolution has ``k*k*c_in*c_out + c_out`` weights; a BatchNormalization ``4*c`` (gamma, beta and
    the two moving statistics, which ``count_params`` counts too); pooling, LeakyReLU, Add none.
    """
    bn = 4
    total = 3 * 3 * 3 * stem_filters + stem_filters + bn * stem_filters  # stem: 3x3 conv on RGB, BN
    c = stem_filters
    for stage, (f, n) in enumerate(zip(filters, blocks), start=1):
        r = max(1, f // 2)  # the inception branches' reduced width
        for block in range(1, n + 1):
            if (stage > 1 and block == 1) or c != 4 * f:  # stride 2 or another width: a 1x1 projection
                total += c * 4 * f + 4 * f
            total += 9 * c * f + f + bn * f  # the block's 3x3 conv, BN
            total += 2 * (f * r + r)  # b1_1x1a, b2_1x1a
            total += (9 * r * r + r) + (25 * r * r + r)  # b1_3x3, b2_5x5
            total += 2 * (r * f + f) + 2 * (f * f + f)  # b1_1x1b, b2_1x1b, b3_1x1, b4_1x1
            total += bn * 4 * f  # BN of the concatenated 4f channels
            c = 4 * f
    return total + c * dense_units + dense_units + dense_units * n_classes + n_classes  # two Dense layers


# Exact counts of the configurations built below (verified by building them, and by res_incep_params).
STUDY_FINAL_PARAMS = 2_342_132  # the study's final filters (40, 60, 75, 80), 2,274 classes
STUDY_FIRST_TRY_PARAMS = 38_171_594  # its first try (60, 120, 250, 600), 2,274 classes
TINY_3_CLASS_PARAMS = 4_459  # TINY, 3 classes
BLOCK_TEST_PARAMS = 113_969  # filters (8, 12, 16, 20), default blocks, stem and head, 5 classes


def test_res_incep_parameter_counts_are_exact():
    # The study's final filters at its 250 px input and its class count (2,286 landmarks - 12 empty folders).
    assert study.NUM_CLASSES == 2274
    shape = (study.IMAGE_SIZE, study.IMAGE_SIZE, 3)
    final = res_incep.res_incep(shape, study.NUM_CLASSES, filters=study.RES_INCEP_FILTERS)
    assert final.count_params() == STUDY_FINAL_PARAMS
    assert res_incep_params(study.RES_INCEP_FILTERS, (3, 3, 2, 2), study.NUM_CLASSES) == STUDY_FINAL_PARAMS
    # Global average pooling: the count does not depend on the input size.
    assert res_incep.res_incep((64, 64, 3), study.NUM_CLASSES).count_params() == STUDY_FINAL_PARAMS
    # The last stage works on 8x8 maps at 250 px: stride-2 stem and pool, stride 2 at stages 2-4.
    assert tuple(final.get_layer("stage4_block2_add").output.shape) == (None, 8, 8, 4 * 80)
    first_try = res_incep.res_incep(shape, study.NUM_CLASSES, filters=study.FIRST_TRY_FILTERS)
    assert first_try.count_params() == STUDY_FIRST_TRY_PARAMS
    assert res_incep_params(study.FIRST_TRY_FILTERS, (3, 3, 2, 2), study.NUM_CLASSES) == STUDY_FIRST_TRY_PARAMS
    assert res_incep.res_incep((32, 32, 3), 3, **TINY).count_params() == TINY_3_CLASS_PARAMS
    assert res_incep_params(TINY["filters"], TINY["blocks"], 3, 6, 8) == TINY_3_CLASS_PARAMS
    assert res_incep_params((8, 12, 16, 20), (3, 3, 2, 2), 5) == BLOCK_TEST_PARAMS

    # One block written out: stage1_block1 of the final model, 35 channels in, 40 filters, branches of 20.
    block = {
        "shortcut": 35 * 160 + 160,  # 1x1 projection 35 -> 4 * 40 (the width changes)
        "conv": 3 * 3 * 35 * 40 + 40,
        "bn": 4 * 40,
        "b1_1x1a": 40 * 20 + 20,
        "b1_3x3": 3 * 3 * 20 * 20 + 20,
        "b1_1x1b": 20 * 40 + 40,
        "b2_1x1a": 40 * 20 + 20,
        "b2_5x5": 5 * 5 * 20 * 20 + 20,
        "b2_1x1b": 20 * 40 + 40,
        "b3_1x1": 40 * 40 + 40,
        "b4_1x1": 40 * 40 + 40,
        "concat_bn": 4 * 160,
    }
    for name, count in block.items():
        assert final.get_layer(f"stage1_block1_{name}").count_params() == count, name
    weighted = {layer.name for layer in final.layers if layer.name.startswith("stage1_block1_") and layer.weights}
    assert weighted == {f"stage1_block1_{name}" for name in block}  # no other layer of the block has weights
    assert sum(block.values()) == 39_440
    # the head: 320 -> 128 -> 2,274; the softmax layer alone holds 293,346 of the 2,342,132
    assert final.get_layer("head_dense").count_params() == 320 * 128 + 128
    assert final.get_layer("predictions").count_params() == 128 * 2274 + 2274 == 293_346


def test_study_final_configuration_is_about_the_studys_2_2_million_parameters():
    # The study only says "around 2.2 million" (study.RES_INCEP_PARAMS): a loose statement, within 10%.
    # This rebuild has 2,342,132 (6.5% more): the study does not say where it downsampled, nor its head.
    assert abs(STUDY_FINAL_PARAMS / study.RES_INCEP_PARAMS - 1) < 0.10
    # Its first try, "approximately 60 million" (study.FIRST_TRY_PARAMS), is 38.2 million here: over ten
    # times the final model, as the study tells it, but not its number (only the filters are known).
    assert STUDY_FIRST_TRY_PARAMS > 10 * STUDY_FINAL_PARAMS


def test_block_structure_and_layer_names():
    model = res_incep.res_incep((32, 32, 3), 5, filters=(8, 12, 16, 20), augment=True)
    names = [layer.name for layer in model.layers]
    prefixes = ("image", "rescale", "stem_", "stage", "head_", "predictions")
    assert all(n.startswith(prefixes) for n in names), [n for n in names if not n.startswith(prefixes)]
    assert len({n.rsplit("_", 1)[0] for n in names if n.endswith("_add")}) == 10
    # the first block of each stage projects its shortcut; the others add their input
    for stage, width in zip(range(1, 5), (8, 12, 16, 20)):
        assert f"stage{stage}_block1_shortcut" in names
        assert f"stage{stage}_block2_shortcut" not in names
        assert model.get_layer(f"stage{stage}_block1_add").output.shape[-1] == 4 * width
        for branch in ("b1_1x1a", "b1_3x3", "b1_1x1b", "b2_1x1a", "b2_5x5", "b2_1x1b", "b3_pool", "b3_1x1", "b4_1x1"):
            assert f"stage{stage}_block1_{branch}" in names
    assert model.get_layer("stage1_block1_b2_5x5").kernel.shape[:2] == (5, 5)
    assert type(model.get_layer("stage1_block1_lrelu")).__name__ == "LeakyReLU"
    assert model.get_layer("predictions").get_config()["activation"] == "softmax"
    assert model.count_params() == BLOCK_TEST_PARAMS
    summary = models.block_summary(model)
    assert summary["params"].sum() == model.count_params()
    assert list(summary["block"][:3]) == ["image", "rescale", "stem"]


def test_rescaling_inside_the_model_and_augmentation_marked_for_the_input_pipeline():
    import keras

    model = res_incep.res_incep((32, 32, 3), 3, augment=True, **TINY)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    rescale = keras.Model(model.input, model.get_layer("rescale").output)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rescale(x, training=False)), x / 255, rtol=1e-6)
    # no random layer in the model (XLA compiles it whole); train() augments the data as marked
    assert not [layer.name for layer in model.layers if layer.name.startswith(("augment", "random"))]
    assert model.augment_mode == "replace" and model.augmentation == augment.Augmentation("study")
    plain = res_incep.res_incep((32, 32, 3), 3, **TINY)
    assert plain.augment_mode is None and plain.augmentation is None
    assert plain.count_params() == model.count_params() == TINY_3_CLASS_PARAMS


def test_photo_crop_scale_reaches_the_augmentation_and_is_checked():
    settings = config.ModelConfig(
        model="res_incep", input_size=32, filters=(4, 4, 4, 4), augment="photo", crop_scale=0.4
    )
    model = models.build(settings, 3)
    assert model.augmentation == augment.Augmentation("photo", crop_scale=0.4)
    default = models.build(dataclasses.replace(settings, crop_scale=config.ModelConfig.crop_scale), 3)
    assert default.augmentation.crop_scale == config.ModelConfig.crop_scale == augment.Augmentation().crop_scale
    with pytest.raises(config.ConfigError, match="crop_scale"):
        config.ModelConfig(crop_scale=1.0)


def test_mismatched_filters_and_blocks_are_an_error():
    with pytest.raises(ValueError, match="one entry per stage"):
        res_incep.res_incep((32, 32, 3), 3, filters=(4, 4, 4), blocks=(1, 1, 1, 1))


def test_resnet50_backbone_has_exactly_the_keras_parameter_count():
    model = resnet50.resnet50_benchmark((32, 32, 3), 7, weights=None)
    assert model.backbone_params == resnet50.RESNET50_BACKBONE_PARAMS == 23_587_712
    assert model.backbone_params + 2048 * 1000 + 1000 == study.RESNET50_PARAMS == 25_636_712
    assert model.count_params() == 23_587_712 + 2048 * 7 + 7
    assert model.weights_source == "random"
    assert model.get_layer("conv5_block3_out").output.shape[-1] == 2048  # backbone layers are the model's own


def test_resnet50_preprocessing_matches_keras_preprocess_input():
    import keras

    model = resnet50.resnet50_benchmark((32, 32, 3), 3, weights=None)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    inside = keras.Model(model.input, model.get_layer("caffe_mean").output)
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inside(x)), expected, rtol=1e-5, atol=1e-4)


def test_imagenet_weights_fall_back_to_random_quickly_and_say_why(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    # a closed local port: refused at once, whatever the machine's network
    monkeypatch.setattr(resnet50, "RESNET50_NOTOP_URL", "http://127.0.0.1:9/resnet50_notop.h5")
    keras_weights, source, note = resnet50.resolve_resnet50_weights("imagenet", timeout=2.0)
    assert (keras_weights, source) == (None, "random")
    assert "RANDOMLY INITIALIZED" in note and str(tmp_path / "keras" / "models") in note
    assert resnet50.resolve_resnet50_weights("imagenet", timeout=0)[1] == "random"
    # a cached file is used as Keras would use it
    cached = tmp_path / "keras" / "models" / resnet50.RESNET50_NOTOP_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    # (by its path: Keras' "imagenet" would check the file's hash and download it again when it differs)
    assert resnet50.resolve_resnet50_weights("imagenet") == (str(cached), "imagenet", "")
    with pytest.raises(FileNotFoundError, match="no-such.h5"):
        resnet50.resolve_resnet50_weights(str(tmp_path / "no-such.h5"))


def test_build_from_settings():
    ri = models.build(config.ModelConfig(input_size=32, filters=[4, 4, 4, 4], blocks=[1, 1, 1, 1], dense_units=8), 3)
    assert ri.name == "res_incep" and ri.output_shape == (None, 3)
    # the settings' stem is the study's 35 filters (TINY's is 6)
    assert ri.count_params() == res_incep_params((4, 4, 4, 4), (1, 1, 1, 1), 3, study.STEM_FILTERS, 8) == 6_895
    with pytest.raises(config.ConfigError, match="model: 'vgg' is not one of 'res_incep', 'resnet50'"):
        config.ModelConfig(model="vgg", input_size=32)


@pytest.mark.slow
def test_save_and_load_give_identical_predictions(tmp_path):
    x = np.random.default_rng(2).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    for name, model in (
        ("res_incep", res_incep.res_incep((32, 32, 3), 4, augment=True, **TINY)),
        ("resnet50", resnet50.resnet50_benchmark((32, 32, 3), 4, weights=None)),
    ):
        path = tmp_path / f"{name}.keras"
        model.save(path)
        data.save_label_map(tmp_path / f"{name}.labels.json", [11, 22, 33, 44])
        loaded, landmark_ids = models.load(path)
        assert landmark_ids == [11, 22, 33, 44]
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


_JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from landmarklib import config
    from landmarklib.nets import res_incep, train
    assert keras.backend.backend() == "jax"
    train.set_seed(0)
    model = res_incep.res_incep((32, 32, 3), 3, filters=(4, 4, 4, 4), blocks=(1, 1, 1, 1), stem_filters=6,
                                dense_units=8, dropout=0.0)
    train.compile_model(model, config.TrainConfig(learning_rate=0.01))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, 8).astype("int32")
    before = float(model.train_on_batch(x, y)[0])
    after = float(model.train_on_batch(x, y)[0])
    model.save(sys.argv[1])
    np.save(sys.argv[2], model.predict(x, verbose=0))
    np.save(sys.argv[3], x)
    print(json.dumps({"before": before, "after": after, "params": model.count_params()}))
""")


@pytest.mark.slow
def test_jax_backend_builds_trains_and_saves_for_tensorflow(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    paths = [tmp_path / "jax.keras", tmp_path / "pred.npy", tmp_path / "x.npy"]
    out = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["after"] < result["before"]
    # the model saved under JAX loads and predicts the same under this process's backend
    import keras

    # the metric compile_model adds is registered by importing landmarklib.nets.models (as models.load does)
    loaded = keras.saving.load_model(paths[0])
    assert loaded.count_params() == result["params"]
    assert loaded.jit_compile is False  # saved as "auto": TensorFlow on a CPU decides for itself, quietly
    np.testing.assert_allclose(loaded.predict(np.load(paths[2]), verbose=0), np.load(paths[1]), rtol=1e-4, atol=1e-5)
