"""``init_from``: a backbone copied from a model of this project; the fine-tuning schedule; EMA of the weights.

The mechanics run in this process (TensorFlow, as every unit test); the last test trains the same way on JAX in a
subprocess and asserts that XLA compiled the train step (the GPU box's backend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from landmarklib import config, data
from landmarklib.nets import models, optimizers, retrieval, train, transfer

from conftest import TINY_NETWORK, run_on_jax, write_tiny_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return data.load_split(write_tiny_folder(tmp_path_factory.mktemp("tiny") / "train"), val_fraction=0.34, seed=1)


@pytest.fixture(scope="module")
def donor(tmp_path_factory, split):
    """A tiny Res-Incep trained 1 epoch on the 4 tiny landmarks: the model a new run starts from."""
    out = tmp_path_factory.mktemp("donor")
    train.set_seed(3)
    model = models.build(config.ModelConfig.from_params(TINY_NETWORK), len(split.landmark_ids))
    settings = config.TrainConfig(epochs=1, batch_size=8, optimizer="adamw", learning_rate=1e-2, models_dir=str(out))
    return train.train(model, split, settings, name="donor", progress=False).model_path


def _weights(model, names):
    return {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in names}


def _same(a, b):
    return all(len(a[n]) == len(b[n]) and all(np.array_equal(x, y) for x, y in zip(a[n], b[n])) for n in a)


def test_init_from_copies_the_backbone_and_rebuilds_the_head(donor, split):
    import keras

    source = keras.saving.load_model(donor, compile=False)
    new = models.build(config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(donor)}), 7)
    assert new.pretrained and new.init_from == str(donor)
    assert new.backbone_layers == transfer.backbone_layers(source, "head_pool")
    with_weights = [n for n in new.backbone_layers if new.get_layer(n).weights]
    assert len(with_weights) > 10
    assert _same(_weights(new, with_weights), _weights(source, with_weights))  # BatchNorm statistics included
    assert new.get_layer("predictions").output.shape[-1] == 7  # the head is this run's (7 landmarks, not 4)
    assert "predictions" in transfer.head_layers(new) and not set(transfer.head_layers(new)) & set(with_weights)
    # a pretrained backbone's BatchNorm layers stay in inference mode; the head's are not touched
    batchnorms = [n for n in new.backbone_layers if isinstance(new.get_layer(n), keras.layers.BatchNormalization)]
    assert batchnorms and not any(new.get_layer(n).trainable for n in batchnorms)
    kept = models.build(
        config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(donor), "freeze_batchnorm": False}), 7
    )
    assert all(kept.get_layer(n).trainable for n in batchnorms)
    scratch = models.build(config.ModelConfig.from_params(TINY_NETWORK), 7)
    assert not scratch.pretrained and all(scratch.get_layer(n).trainable for n in batchnorms)


def test_a_retrieval_model_starts_from_a_classifier_backbone(donor):
    import keras

    source = keras.saving.load_model(donor, compile=False)
    settings = config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(donor)})
    model = retrieval.embedding_model(settings, 5, embedding_dim=8)
    names = [n for n in transfer.backbone_layers(model, "gem_pool") if model.get_layer(n).weights]
    assert _same(_weights(model, names), _weights(source, names))
    assert model.pretrained
    assert {"gem_pool", "embedding_dense", "cosines"} <= set(transfer.head_layers(model))


def test_init_from_another_network_or_a_missing_file_is_refused_in_one_line(donor, tmp_path):
    wider = {**TINY_NETWORK, "filters": [6, 6, 6, 6], "init_from": str(donor)}
    with pytest.raises(ValueError, match=r"layer '.*' has weights .* same model, filters and blocks") as err:
        models.build(config.ModelConfig.from_params(wider), 3)
    assert "\n" not in str(err.value)
    deeper = {**TINY_NETWORK, "blocks": [2, 1, 1, 1], "init_from": str(donor)}
    with pytest.raises(ValueError, match="has no layer 'stage1_block2"):
        models.build(config.ModelConfig.from_params(deeper), 3)
    with pytest.raises(FileNotFoundError, match="init_from: .*missing.keras does not exist"):
        models.build(config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(tmp_path / "missing.keras")}), 3)


def _fine_tune(donor, split, out, **recipe):
    train.set_seed(5)
    model = models.build(config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(donor)}), 4)
    before = _weights(model, [n for n in model.backbone_layers if model.get_layer(n).weights])
    settings = config.TrainConfig(
        epochs=2, batch_size=8, optimizer="adamw", learning_rate=1e-2, models_dir=str(out), **recipe
    )
    result = train.train(model, split, settings, name="tuned", progress=False)
    return model, before, result


@pytest.mark.slow  # trains several models: make test, not make check
def test_the_backbone_waits_for_the_head_then_learns_slower(donor, split, tmp_path):
    """head_epochs covering the run: only the head moves (the backbone exactly as copied); after the head epochs the
    backbone moves, at backbone_lr_fraction of the rate (0: not at all)."""
    model, before, result = _fine_tune(donor, split, tmp_path / "a", head_epochs=2.0)
    assert isinstance(model.optimizer, optimizers.FineTuneAdamW)
    assert _same(_weights(result.model, list(before)), before)
    head = transfer.head_layers(model)
    assert not _same(
        _weights(result.model, head),
        _weights(models.build(config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(donor)}), 4), head),
    )
    _, before, frozen = _fine_tune(donor, split, tmp_path / "b", head_epochs=1.0, backbone_lr_fraction=0.0)
    assert _same(_weights(frozen.model, list(before)), before)
    _, before, moved = _fine_tune(donor, split, tmp_path / "c", head_epochs=1.0, backbone_lr_fraction=0.5)
    convs = [n for n in before if n.endswith("_conv")]
    assert convs and not _same(_weights(moved.model, convs), {n: before[n] for n in convs})
    # the batch-norm statistics are kept even while the backbone learns (inference mode)
    norms = [n for n in before if n.endswith("_bn")]
    assert norms and _same(_weights(moved.model, norms), {n: before[n] for n in norms})
    # the saved model (its fine-tuning optimizer registered for loading) loads and answers as in memory
    import keras

    loaded = keras.saving.load_model(moved.model_path)
    assert type(loaded.optimizer).__name__ == "FineTuneAdamW" and loaded.optimizer.head_layers == tuple(head)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), moved.model.predict(x, verbose=0), atol=1e-5)


def test_a_scratch_run_keeps_keras_own_optimizer(split, tmp_path):
    model = models.build(config.ModelConfig.from_params(TINY_NETWORK), 4)
    train.compile_model(model, config.TrainConfig(optimizer="adamw"))
    assert type(model.optimizer).__name__ == "AdamW"


@pytest.mark.slow  # trains several models: make test, not make check
def test_ema_validates_and_keeps_the_averaged_weights(split, tmp_path):
    """With ema_momentum the kept model is the optimizer's average of the weights, not the raw weights that the same
    seed reaches without it (one epoch: the kept epoch is the last), and it saves and loads."""
    import keras

    def run(name, **recipe):
        train.set_seed(5)
        model = models.build(config.ModelConfig.from_params(TINY_NETWORK), 4)
        settings = config.TrainConfig(
            epochs=1, batch_size=8, optimizer="adamw", learning_rate=1e-2, models_dir=str(tmp_path), **recipe
        )
        return model, train.train(model, split, settings, name=name, progress=False)

    def values(variables):
        return [keras.ops.convert_to_numpy(v) for v in variables]

    model, averaged = run("ema", ema_momentum=0.5)
    _, raw = run("raw")
    assert model.optimizer.use_ema
    kept = values(averaged.model.trainable_variables)
    averages = values(model.optimizer._model_variables_moving_average)
    assert all(np.allclose(k, a, atol=1e-6) for k, a in zip(kept, averages))
    plain = values(raw.model.trainable_variables)
    assert any(not np.allclose(k, p, atol=1e-4) for k, p in zip(kept, plain))
    loaded = keras.saving.load_model(averaged.model_path)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), averaged.model.predict(x, verbose=0), atol=1e-5)


JAX_SCRIPT = r"""
import io, json, logging, sys, warnings
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import jax, keras
from conftest import TINY_NETWORK, write_tiny_folder
from landmarklib import config, data
from landmarklib.nets import models, retrieval, train
work = Path(sys.argv[2])
split = data.load_split(write_tiny_folder(work / "train"), val_fraction=0.34, seed=1)
donor = models.build(config.ModelConfig.from_params(TINY_NETWORK), len(split.landmark_ids))
donor_path = train.train(donor, split, config.TrainConfig(epochs=1, batch_size=8, models_dir=str(work / "d")),
                         name="donor", progress=False).model_path
log = io.StringIO()
logging.getLogger("jax").addHandler(logging.StreamHandler(log))
network = config.ModelConfig.from_params({**TINY_NETWORK, "init_from": str(donor_path)})
for kind in ("classifier", "retrieval"):
    recipe = {**config.MODERN_RECIPE, "ema_momentum": 0.9, "head_epochs": 1.0}
    recipe.pop("augment"); recipe.pop("dropout")
    if kind == "retrieval":
        recipe.update(loss="arcface")
        model = retrieval.embedding_model(network, len(split.landmark_ids), embedding_dim=8)
    else:
        model = models.build(network, len(split.landmark_ids))
    settings = config.TrainConfig.from_params(recipe, epochs=2, batch_size=8, models_dir=str(work / kind))
    log.seek(0); log.truncate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.config.update("jax_log_compiles", True)
        result = train.train(model, split, settings, name=kind, progress=False)
        jax.config.update("jax_log_compiles", False)
    print("RESULT " + json.dumps({
        "kind": kind,
        "optimizer": type(model.optimizer).__name__,
        "jit_compile": bool(model.jit_compile),
        "train_step_compiled": "Compiling jit(train_step)" in log.getvalue(),
        "jit_warnings": [str(w.message) for w in caught if "jit_compile" in str(w.message)],
        "finite": bool(result.history["loss"].notna().all()),
    }), flush=True)
"""


@pytest.mark.slow
def test_fine_tuning_with_ema_compiles_on_jax(tmp_path):
    rows = {row["kind"]: row for row in run_on_jax(JAX_SCRIPT, tmp_path)}
    assert set(rows) == {"classifier", "retrieval"}, rows
    for row in rows.values():
        assert row["optimizer"] == "FineTuneAdamW" and row["jit_compile"] and row["train_step_compiled"], row
        assert row["jit_warnings"] == [] and row["finite"], row
