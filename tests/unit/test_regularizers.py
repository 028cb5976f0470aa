"""Regularizers against memorising small training sets: mixup and CutMix (soft targets), RandAugment, stochastic depth.

In this process Keras runs on TensorFlow (``conftest``); the last test trains on JAX in a process of its own
with every one of them on and checks that XLA compiled the train step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from landmarklib import augment, config, data
from landmarklib.nets import layers, losses, metrics, models, pipeline, recipes, res_incep

from conftest import run_on_jax, write_tiny_folder

ROOT = Path(__file__).resolve().parents[2]
TINY = {"filters": (4, 4, 4, 4), "blocks": (1, 1, 1, 1), "stem_filters": 6, "dense_units": 8}


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> data.Split:
    return data.load_split(write_tiny_folder(tmp_path_factory.mktemp("fetched"), per_class=5), val_fraction=0.2, seed=1)


def flat_images(values, size: int = 8) -> np.ndarray:
    """One image per value, every pixel of image ``i`` equal to ``values[i]`` (uint8 ``(N, size, size, 3)``)."""
    return np.stack([np.full((size, size, 3), v, np.uint8) for v in values])


# --------------------------------------------------------------------------- mixup, CutMix


def test_mixup_blends_each_image_with_its_partner_and_mixes_the_targets_by_the_same_weight():
    mixing = augment.Mixing(mixup_alpha=0.4)
    x = flat_images([0, 40, 80, 120, 160, 200])
    labels = np.array([0, 1, 2, 3, 4, 5])
    for index in range(6):
        out, targets = mixing.batch(x, labels, 7, seed=3, epoch=2, index=index)
        drawn = mixing.draw(augment.mix_rng(3, 2, index), len(x), (8, 8))
        lam, perm = drawn["lam"], drawn["perm"]
        assert drawn["method"] == "mixup" and 0 <= lam <= 1 and sorted(perm) == list(range(6))
        expected = np.rint(x.astype(np.float32) * np.float32(lam) + x[perm].astype(np.float32) * np.float32(1 - lam))
        np.testing.assert_array_equal(out, expected.astype(np.uint8))
        assert out.dtype == np.uint8 and targets.dtype == np.float32 and targets.shape == (6, 7)
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        for i in range(6):
            want = np.zeros(7)
            want[labels[i]] += lam
            want[labels[perm[i]]] += 1 - lam  # itself as partner: one-hot
            np.testing.assert_allclose(targets[i], want, atol=1e-6)
    floats, _ = mixing.batch(x.astype(np.float32), labels, 7, seed=3, epoch=2, index=0)  # float batches: no rounding
    drawn = mixing.draw(augment.mix_rng(3, 2, 0), 6, (8, 8))
    np.testing.assert_allclose(floats, x * drawn["lam"] + x[drawn["perm"]] * (1 - drawn["lam"]), rtol=1e-5, atol=1e-3)


def test_cutmix_pastes_one_box_and_weights_the_targets_by_the_pasted_area():
    mixing = augment.Mixing(cutmix_alpha=1.0)
    values = [10, 50, 90, 130, 170, 210, 250]
    x = flat_images(values, size=16)
    labels = np.arange(7)
    seen_partial = False
    for index in range(20):
        out, targets = mixing.batch(x, labels, 7, seed=0, epoch=0, index=index)
        drawn = mixing.draw(augment.mix_rng(0, 0, index), 7, (16, 16))
        assert drawn["method"] == "cutmix"
        y0, y1, x0, x1 = drawn["box"]
        lam, perm = drawn["lam"], drawn["perm"]
        assert lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 256)
        for i in range(7):
            pasted = np.mean(out[i, :, :, 0] == values[perm[i]]) if perm[i] != i else 1 - lam
            assert pasted == pytest.approx(1 - lam)  # the share of the partner's pixels is the partner's weight
            np.testing.assert_array_equal(out[i, y0:y1, x0:x1], x[perm[i], y0:y1, x0:x1])
            outside = np.ones((16, 16), bool)
            outside[y0:y1, x0:x1] = False
            assert (out[i][outside] == values[i]).all()
            assert targets[i, labels[i]] == pytest.approx(lam if perm[i] != i else 1.0)
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        seen_partial |= 0 < lam < 1
    assert seen_partial


def test_a_mixed_batch_depends_on_seed_epoch_and_index_only_and_both_methods_share_the_batches():
    x = flat_images(range(0, 240, 30), size=8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    both = augment.Mixing(mixup_alpha=0.2, cutmix_alpha=1.0)
    once = both.batch(x, labels, 3, seed=5, epoch=1, index=4)
    again = both.batch(x.copy(), labels.copy(), 3, seed=5, epoch=1, index=4, map_fn=lambda f, it: [f(i) for i in it])
    for a, b in zip(once, again):
        np.testing.assert_array_equal(a, b)
    for other in ((6, 1, 4), (5, 2, 4), (5, 1, 5)):
        assert not np.array_equal(once[1], both.batch(x, labels, 3, *other)[1]), other
    methods = [both.draw(augment.mix_rng(5, 1, i), 8, (8, 8))["method"] for i in range(400)]
    assert 0.4 < methods.count("mixup") / 400 < 0.6  # even odds
    single = both.batch(x[:1], labels[:1], 3, seed=5, epoch=1, index=0)  # a batch of one mixes with itself
    np.testing.assert_array_equal(single[0], x[:1])
    np.testing.assert_allclose(single[1], [[1.0, 0.0, 0.0]])


def test_mixing_settings_are_checked():
    assert augment.mixing_of(0.0, 0.0) is None
    assert augment.mixing_of(0.2, 0) == augment.Mixing(0.2, 0.0)
    with pytest.raises(ValueError, match="above 0"):
        augment.Mixing()
    with pytest.raises(ValueError, match="0 or more"):
        augment.Mixing(mixup_alpha=-1.0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        augment.Mixing(1.0).batch(flat_images([1, 2]), np.array([0, 3]), 3, 0, 0, 0)


def test_training_batches_carry_soft_targets_reproducibly_and_validation_integer_labels(split):
    n_classes = len(split.landmark_ids)
    kwargs = {"shuffle": True, "seed": 4, "dtype": "uint8", "mixup_alpha": 0.2, "cutmix_alpha": 1.0}

    def epochs(batches, n):
        served = []
        for _ in range(n):
            batches.on_epoch_begin()
            served.append([batches[i] for i in range(len(batches))])
            batches.on_epoch_end()
        return served

    run = epochs(pipeline.batches(split.train, 32, 4, num_classes=n_classes, **kwargs), 2)
    rerun = epochs(pipeline.batches(split.train, 32, 4, num_classes=n_classes, workers=1, **kwargs), 2)
    resumed = pipeline.batches(split.train, 32, 4, num_classes=n_classes, **kwargs)
    resumed.set_epoch(1)  # a killed run resumed at epoch 1 (train.train does this)
    for (x, y), (x2, y2), (x3, y3) in zip(run[1], rerun[1], epochs(resumed, 1)[0]):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(x, x3)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(y, y3)
    plain = pipeline.batches(split.train, 32, 4, shuffle=True, seed=4, dtype="uint8")
    for epoch, served in enumerate(run):
        plain.set_epoch(epoch)
        for index, (x, y) in enumerate(served):
            assert x.dtype == np.uint8 and y.dtype == np.float32 and y.shape == (len(x), n_classes)
            np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
            x0, labels = plain[index]  # the same rows: mixing them by the batch's draw gives the batch
            expected = augment.Mixing(0.2, 1.0).batch(x0, labels, n_classes, 4, epoch, index)
            np.testing.assert_array_equal(x, expected[0])
            np.testing.assert_array_equal(y, expected[1])
    assert not np.array_equal(run[0][0][0], run[1][0][0])
    validation = pipeline.batches(split.val, 32, 4, dtype="uint8")
    x, y = validation[0]
    assert y.dtype == np.int32 and y.shape == (len(x),)
    with pytest.raises(ValueError, match="shuffle=True and num_classes"):
        pipeline.batches(split.val, 32, 4, mixup_alpha=0.2, num_classes=n_classes)
    with pytest.raises(ValueError, match="num_classes"):
        pipeline.batches(split.train, 32, 4, shuffle=True, cutmix_alpha=1.0)


def test_added_copies_are_mixed_too_each_batch_by_its_own_index(split):
    n_classes = len(split.landmark_ids)
    base = pipeline.batches(split.train, 32, 4, shuffle=True, seed=2, cutmix_alpha=1.0, num_classes=n_classes)
    added = pipeline.augmented_copies(base)
    assert base.mixing is None and added.mixing == augment.Mixing(cutmix_alpha=1.0)
    x_plain, labels = base[0]  # the base serves its batches unmixed now
    assert labels.dtype == np.int32
    for index in (0, 1):
        x, y = added[index]
        assert y.shape == (len(x), n_classes)
        source = x_plain
        if index:
            source = augment.Augmentation("study").batch(x_plain.astype(np.uint8), 2, 0, base._rows(0))
        expected = augment.Mixing(cutmix_alpha=1.0).batch(source.astype(np.float32), labels, n_classes, 2, 0, index)
        np.testing.assert_array_equal(x, expected[0])
        np.testing.assert_array_equal(y, expected[1])


# --------------------------------------------------------------------------- loss and metrics on soft targets


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_the_loss_of_one_hot_soft_targets_is_the_loss_of_their_integer_labels_and_mixes_linearly(eps):
    import keras

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=6).astype(np.float32)
    labels = np.array([0, 4, 2, 2, 1, 3])
    loss = losses.SmoothedSparseCrossentropy(eps)
    one_hot = np.eye(5, dtype=np.float32)[labels]
    by_label = float(loss(labels, probs))
    assert float(loss(one_hot, probs)) == pytest.approx(by_label, rel=1e-6)
    smoothed = (1 - eps) * one_hot + eps / 5
    assert by_label == pytest.approx(float(np.mean(-(smoothed * np.log(probs)).sum(axis=1))), rel=1e-5)
    if eps == 0:
        keras_loss = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
        assert by_label == pytest.approx(float(keras_loss), rel=1e-6)
    lam, partner = 0.3, np.array([1, 1, 0, 3, 4, 2])
    mixed = lam * one_hot + (1 - lam) * np.eye(5, dtype=np.float32)[partner]
    expected = lam * by_label + (1 - lam) * float(loss(partner, probs))  # cross-entropy is linear in the target
    assert float(loss(mixed, probs)) == pytest.approx(expected, rel=1e-5)


def test_make_loss_reads_soft_targets_with_mixing_and_margin_losses_refuse_mixing():
    assert recipes.make_loss(config.TrainConfig()) == "sparse_categorical_crossentropy"  # the study's, as before
    plain_mixed = recipes.make_loss(config.TrainConfig(mixup_alpha=0.2))
    assert isinstance(plain_mixed, losses.SmoothedSparseCrossentropy) and plain_mixed.label_smoothing == 0.0
    smoothed = recipes.make_loss(config.TrainConfig(cutmix_alpha=1.0, label_smoothing=0.1))
    assert smoothed.label_smoothing == 0.1
    for kind in config.MARGIN_LOSSES:
        with pytest.raises(config.ConfigError, match=f"loss: {kind} needs one landmark per image") as err:
            recipes.make_loss(config.TrainConfig(loss=kind, cutmix_alpha=1.0))
        assert "\n" not in str(err.value)
        assert isinstance(recipes.make_loss(config.TrainConfig(loss=kind)), losses.MarginLoss)
    with pytest.raises(ValueError, match="integer labels, not soft targets"):
        losses.MarginLoss("arcface")(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32) * 0.5)


def test_accuracy_on_soft_targets_counts_their_dominant_label_ties_to_the_lower_class():
    import keras

    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]], np.float32)
    soft = np.array([[0.3, 0.7, 0.0], [0.0, 0.5, 0.5], [0.2, 0.0, 0.8], [0.5, 0.5, 0.0]], np.float32)
    dominant = np.array([1, 1, 2, 0])  # row 2: a tie 1/2 -> 1; row 4: 0/1 -> 0
    for k, name in ((1, "accuracy"), (2, "top2")):
        on_soft = metrics.StrictTopKAccuracy(k=k, name=name)
        on_soft.update_state(soft, probs)
        on_labels = metrics.StrictTopKAccuracy(k=k, name=name)
        on_labels.update_state(dominant, probs)
        assert float(on_soft.result()) == pytest.approx(float(on_labels.result()))
    top1 = metrics.StrictTopKAccuracy(k=1, name="accuracy")
    top1.update_state(soft, probs)
    assert float(top1.result()) == pytest.approx(3 / 4)  # rows 1, 3 and 4 (prediction tie 0/1 -> 0)
    labels = np.random.default_rng(1).integers(0, 3, 64)
    scores = np.random.default_rng(2).integers(0, 3, (64, 3)).astype(np.float32)  # many ties
    strict, sparse = metrics.StrictTopKAccuracy(k=1), keras.metrics.SparseCategoricalAccuracy()
    strict.update_state(labels, scores)
    sparse.update_state(labels, scores)
    assert float(strict.result()) == pytest.approx(float(sparse.result()))  # Keras' "accuracy" on integer labels


# --------------------------------------------------------------------------- RandAugment


def gradient_image(size: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (3 * x + y) * 255 // (4 * (size - 1))], -1).astype(
        np.uint8
    )


def test_randaugment_is_drawn_per_seed_epoch_and_row_changes_images_and_keeps_the_kind_s_draws():
    photo = augment.Augmentation("photo")
    rand = augment.Augmentation("photo", randaugment_ops=2, randaugment_magnitude=9)
    batch = np.stack([gradient_image()] * 4)
    rows = [3, 4, 5, 6]
    once = rand.batch(batch, seed=1, epoch=0, rows=rows)
    again = rand.batch(batch[::-1].copy(), seed=1, epoch=0, rows=rows[::-1])
    np.testing.assert_array_equal(once, again[::-1])
    assert not np.array_equal(once, rand.batch(batch, seed=1, epoch=1, rows=rows))
    assert not np.array_equal(once, photo.batch(batch, seed=1, epoch=0, rows=rows))
    # the photo draws come first: with 0 operations the images are the photo augmentation's, bit for bit
    zero = augment.Augmentation("photo", randaugment_ops=0, randaugment_magnitude=30)
    np.testing.assert_array_equal(zero.batch(batch, 1, 0, rows), photo.batch(batch, 1, 0, rows))
    drawn = [op for row in range(300) for op, _ in rand.randaugment(augment.rng(0, 0, row))]
    assert set(drawn) == set(augment.RANDAUGMENT_OPS) and len(drawn) == 600
    levels = {level for row in range(50) for _, level in rand.randaugment(augment.rng(0, 0, row))}
    assert levels <= {0.3, -0.3} and len(levels) == 2


@pytest.mark.parametrize("op", augment.RANDAUGMENT_OPS)
def test_each_randaugment_operation_keeps_the_image_shape_and_does_something(op):
    from PIL import Image

    image = gradient_image()
    image[:4] = 255  # something to solarize and to stretch
    pil = Image.fromarray((image * 0.8 + 20).astype(np.uint8))
    out = np.asarray(augment._randaugment_op(pil, op, 1.0))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, np.asarray(pil)), op
    if op not in ("autocontrast", "equalize"):  # magnitude 0: the image as it is
        np.testing.assert_array_equal(np.asarray(augment._randaugment_op(pil, op, 0.0)), np.asarray(pil))


def test_randaugment_settings_reach_the_augmentation_through_the_model_builder():
    settings = config.ModelConfig(
        input_size=32, filters=(4, 4, 4, 4), augment="photo", randaugment_ops=2, randaugment_magnitude=12
    )
    model = models.build(settings, 3)
    assert model.augmentation == augment.Augmentation("photo", randaugment_ops=2, randaugment_magnitude=12.0)
    assert augment.augmentation_of(settings) == model.augmentation
    marked = augment.mark_augmentation(type("M", (), {})(), settings)  # what another builder calls
    assert (marked.augment_mode, marked.augmentation) == ("photo", model.augmentation)
    assert augment.augmentation_of("add", randaugment_ops=1).randaugment_ops == 1  # the added copies get it
    with pytest.raises(ValueError, match="needs an augmentation to follow"):
        models.build(config.ModelConfig(input_size=32, filters=(4, 4, 4, 4), randaugment_ops=2), 3)
    with pytest.raises(ValueError, match="randaugment_magnitude"):
        augment.Augmentation("photo", randaugment_ops=1, randaugment_magnitude=31)


def test_describe_names_the_regularizers_that_are_on():
    plain = recipes.describe(config.TrainConfig(), config.ModelConfig())
    assert not any(word in plain for word in ("mixup", "CutMix", "RandAugment", "stochastic"))
    line = recipes.describe(
        config.TrainConfig(mixup_alpha=0.2, cutmix_alpha=1.0),
        config.ModelConfig(augment="photo", randaugment_ops=2, stochastic_depth=0.1),
    )
    assert "RandAugment 2 ops at 9" in line and "mixup 0.2 or CutMix 1 (one per batch)" in line
    assert "stochastic depth 0.1" in line and "\n" not in line
    alone = recipes.describe(config.TrainConfig(cutmix_alpha=1.0), config.ModelConfig())
    assert "CutMix 1" in alone and "mixup" not in alone and "one per batch" not in alone


# --------------------------------------------------------------------------- stochastic depth


def test_stochastic_depth_is_the_identity_at_inference_and_drops_whole_samples_while_training():
    import keras

    layer = layers.StochasticDepth(0.25, seed=7)
    x = np.ones((4000, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    per_sample = out.reshape(len(x), -1)
    assert (per_sample == per_sample[:, :1]).all()  # a sample is kept or dropped whole
    np.testing.assert_allclose(np.unique(per_sample), [0.0, 1 / 0.75], rtol=1e-6)  # kept: scaled by 1 / (1 - rate)
    kept = float(np.mean(per_sample[:, 0] > 0))
    assert kept == pytest.approx(0.75, abs=0.03)  # 4,000 draws: the standard error is 0.007
    assert float(out.mean()) == pytest.approx(1.0, abs=0.04)  # the expectation is unchanged
    twin = layers.StochasticDepth(0.25, seed=7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(twin(x, training=True)), out)  # seeded
    assert not np.array_equal(keras.ops.convert_to_numpy(layer(x, training=True)), out)  # the state moves on
    assert any("seed_generator_state" in v.path for v in layer.non_trainable_variables)  # kept for a resume
    clone = layers.StochasticDepth.from_config(layer.get_config())
    assert (clone.rate, clone.seed) == (0.25, 7)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        layers.StochasticDepth(1.0)


def test_depth_rates_rise_linearly_to_the_setting_for_the_deepest_block():
    np.testing.assert_allclose(res_incep.depth_rates((2, 2), 0.2), [(0.05, 0.1), (0.15, 0.2)])
    rates = [r for stage in res_incep.depth_rates((3, 3, 2, 2), 0.3) for r in stage]
    assert rates == pytest.approx([0.03 * k for k in range(1, 11)])
    assert res_incep.depth_rates((3, 1), 0.0) == [(0.0, 0.0, 0.0), (0.0,)]


def test_rate_zero_is_the_network_as_before_and_a_rate_adds_only_identity_layers_at_inference():
    import keras

    def build(**kwargs):
        keras.utils.set_random_seed(0)
        return res_incep.res_incep((32, 32, 3), 3, **TINY, **kwargs)

    before, zero, deep = build(), build(stochastic_depth=0.0), build(stochastic_depth=0.5)
    names = [layer.name for layer in before.layers]
    assert [layer.name for layer in zero.layers] == names
    assert not any(isinstance(layer, layers.StochasticDepth) for layer in zero.layers)
    assert zero.count_params() == before.count_params() == deep.count_params()
    x = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    for a, b in zip(before.get_weights(), zero.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(zero(x, training=False)), keras.ops.convert_to_numpy(before(x, training=False))
    )
    added = [layer for layer in deep.layers if isinstance(layer, layers.StochasticDepth)]
    assert [layer.name for layer in added] == [f"stage{i}_block1_stochastic_depth" for i in range(1, 5)]
    assert [layer.rate for layer in added] == pytest.approx([0.125, 0.25, 0.375, 0.5])
    assert sorted(n for n in (layer.name for layer in deep.layers) if "stochastic_depth" not in n) == sorted(names)
    assert deep.get_layer("stage4_block1_add").input[1] is added[-1].output  # on the residual branch
    for layer in before.layers:  # by name: the added layers reorder the model's list of layers
        deep.get_layer(layer.name).set_weights(layer.get_weights())
    inference = keras.ops.convert_to_numpy(deep(x, training=False))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(before(x, training=False)), rtol=1e-5, atol=1e-6)
    settings = config.ModelConfig(input_size=32, filters=(4, 4, 4, 4), blocks=(1, 1, 1, 1), stochastic_depth=0.2)
    built = models.build(settings, 3)
    assert built.get_layer("stage4_block1_stochastic_depth").rate == pytest.approx(0.2)


def test_a_model_with_stochastic_depth_saves_and_loads(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = res_incep.res_incep((32, 32, 3), 3, **TINY, stochastic_depth=0.3)
    model.save(tmp_path / "deep.keras")
    loaded = keras.saving.load_model(tmp_path / "deep.keras")
    assert loaded.get_layer("stage2_block1_stochastic_depth").rate == pytest.approx(0.15)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


# --------------------------------------------------------------------------- one JAX training with all of them

SCRIPT = r"""
import io, json, logging, sys, warnings
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import jax, keras
import numpy as np
assert keras.backend.backend() == "jax", keras.backend.backend()
from conftest import TINY_NETWORK, write_tiny_folder
from landmarklib import config, data
from landmarklib.nets import layers, models, pipeline, train

warnings.simplefilter("always")
work = Path(sys.argv[2])
split = data.load_split(write_tiny_folder(work / "train"), val_fraction=0.34, seed=1)
targets = []  # (shuffled?, y's shape, y's dtype) of every batch served
getitem = pipeline.ImageBatches.__getitem__
def spy(self, index):
    batch = getitem(self, index)
    targets.append((bool(self.shuffle), list(batch[1].shape), str(batch[1].dtype)))
    return batch
pipeline.ImageBatches.__getitem__ = spy
log = io.StringIO()
logging.getLogger("jax").addHandler(logging.StreamHandler(log))
network = {**TINY_NETWORK, "augment": "photo", "randaugment_ops": 2, "stochastic_depth": 0.2}
settings = config.TrainConfig.from_params(
    {**config.MODERN_RECIPE, "mixup_alpha": 0.2, "cutmix_alpha": 1.0},
    epochs=2, batch_size=8, models_dir=str(work / "models"),
)
train.set_seed(0)
model = models.build(config.ModelConfig.from_params(network), len(split.landmark_ids))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    jax.config.update("jax_log_compiles", True)
    result = train.train(model, split, settings, name="regularized", progress=False)
    jax.config.update("jax_log_compiles", False)
compiled = [line for line in log.getvalue().splitlines() if line.startswith("Compiling ")]
history = result.history
print("RESULT " + json.dumps({
    "jit_compile": bool(model.jit_compile),
    "train_step_compiled": any(line.startswith("Compiling jit(train_step)") for line in compiled),
    "jit_warnings": [str(w.message) for w in caught if "jit_compile" in str(w.message)],
    "columns": list(history.columns),
    "finite": bool(np.isfinite(history[["loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5"]]).all().all()),
    "stochastic_depth_layers": sum(isinstance(l, layers.StochasticDepth) for l in model.layers),
    "randaugment_ops": model.augmentation.randaugment_ops,
    "training_targets": sorted({(tuple(s), d) for shuffled, s, d in targets if shuffled}),
    "validation_targets": sorted({(tuple(s), d) for shuffled, s, d in targets if not shuffled}),
    "n_classes": len(split.landmark_ids),
}), flush=True)
"""


@pytest.mark.slow
def test_jax_trains_res_incep_with_every_regularizer_and_xla_compiles_its_train_step(tmp_path):
    rows = run_on_jax(SCRIPT, tmp_path)
    assert len(rows) == 1, rows
    run = rows[0]
    assert run["jit_compile"] is True and run["train_step_compiled"] is True, run
    assert run["jit_warnings"] == [] and run["finite"], run
    assert {"accuracy", "top5", "val_accuracy", "val_top5"} <= set(run["columns"])
    assert run["stochastic_depth_layers"] == 4 and run["randaugment_ops"] == 2
    n_classes = run["n_classes"]
    assert run["training_targets"] and all(
        len(shape) == 2 and shape[1] == n_classes and dtype == "float32" for shape, dtype in run["training_targets"]
    ), run  # soft targets while training
    assert run["validation_targets"] and all(
        len(shape) == 1 and dtype == "int32" for shape, dtype in run["validation_targets"]
    ), run  # integer labels when validating
