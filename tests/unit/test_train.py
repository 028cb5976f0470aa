"""Training: one step lowers the loss, files and metrics, determinism, resume, variants, figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from landmarklib import augment, config, data
from landmarklib.nets import models, pipeline, recipes, res_incep, train
from landmarklib.visualize import training as training_figures

from conftest import TINY_LANDMARKS, write_tiny_folder

LANDMARKS = TINY_LANDMARKS

TINY = {"filters": (4, 4, 4, 4), "blocks": (1, 1, 1, 1), "stem_filters": 6, "dense_units": 8}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_tiny_folder(tmp_path_factory.mktemp("fetched"))


@pytest.fixture(scope="module")
def split(folder) -> data.Split:
    return data.load_split(folder, val_fraction=0.34, seed=1)


def _tiny_model(n_classes: int, seed: int = 0, **overrides):
    train.set_seed(seed)
    return res_incep.res_incep((32, 32, 3), n_classes, **{**TINY, **overrides})


def test_one_training_step_lowers_the_loss(split):
    model = _tiny_model(len(split.landmark_ids), dropout=0.0)
    train.compile_model(model, config.TrainConfig(learning_rate=0.01))
    x, y = pipeline.batches(split.train, 32, batch_size=len(split.train))[0]
    before = float(model.train_on_batch(x, y)[0])  # the loss of the forward pass before the update
    after = float(model.train_on_batch(x, y)[0])
    assert after < before


def test_optimizer_names():
    assert type(recipes.make_optimizer("SGD", 0.1, 0.5)).__name__ == "SGD"
    assert type(recipes.make_optimizer("rmsprop", 0.001)).__name__ == "RMSprop"
    with pytest.raises(ValueError, match="optimizer must be sgd, rmsprop or adamw"):
        recipes.make_optimizer("adagrad", 0.1)


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    model = _tiny_model(len(split.landmark_ids), seed=1)
    return train.train(model, split, _settings(out), name="tiny", progress=False)


def _settings(out, **changes) -> config.TrainConfig:
    return config.TrainConfig(
        **{"epochs": 2, "batch_size": 4, "learning_rate": 0.02, "models_dir": str(out), "seed": 1, **changes}
    )


@pytest.mark.slow
def test_train_writes_model_labels_history_and_metrics(trained, split):
    result = trained
    assert result.model_path.name == "tiny.keras" and result.model_path.is_file()
    assert json.loads(result.label_map_path.read_text()) == {"landmark_ids": LANDMARKS}
    history = pd.read_csv(result.history_csv)
    assert list(history.columns[:7]) == ["epoch", "loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5"]
    assert list(history["epoch"]) == [1, 2] and result.epochs_run == 2
    assert not (result.model_path.parent / "tiny.resume").exists()
    best = history.loc[history["val_accuracy"].idxmax()]
    assert result.best_epoch == best["epoch"]
    assert result.val_top1 == pytest.approx(best["val_accuracy"])
    assert result.val_top5 == 1.0  # four classes: the true one is always among the top five
    assert result.images_per_second > 0 and result.seconds_per_epoch > 0
    m = result.metrics()
    for key in (
        "model",
        "params",
        "input_size",
        "epochs",
        "batch_size",
        "optimizer",
        "n_classes",
        "n_train",
        "n_val",
        "chance",
        "val_top1",
        "val_top5",
        "val_loss",
        "train_top1",
        "seconds_per_epoch",
        "images_per_second",
        "model_path",
        "label_map_path",
        "history_csv",
    ):
        assert key in m, key
    assert (m["n_classes"], m["chance"], m["n_train"] + m["n_val"]) == (4, 0.25, 24)
    assert json.dumps(m)  # plain values


@pytest.mark.slow
def test_saved_best_model_predicts_as_the_returned_model_and_scores_alike(trained, split):
    loaded, landmark_ids = models.load(trained.model_path)
    assert landmark_ids == LANDMARKS
    x, _ = pipeline.batches(split.val, 32, batch_size=len(split.val))[0]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), trained.model.predict(x, verbose=0))
    scores = train.evaluate_split(loaded, split.val, 32)
    # plain Keras, in a process that never registered this project's strict top-5 metric, reads it too
    script = f"import keras; m = keras.saving.load_model({str(trained.model_path)!r}); print(m.count_params())"
    out = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", script], capture_output=True, text=True, timeout=300
    )  # and without a warning (e.g. an optimizer state that does not fit)
    assert out.returncode == 0 and out.stdout.split()[-1] == str(loaded.count_params()), out.stderr[-2000:]
    assert scores["n"] == len(split.val)
    assert scores["top1"] == pytest.approx(trained.val_top1, abs=1e-6)
    # the same cross-entropy as fit's val_loss (from the logits, mean over all rows), up to float32 rounding
    assert scores["loss"] == pytest.approx(trained.val_loss, rel=1e-4)


def _history(loss, val_loss, val_accuracy):
    return pd.DataFrame(
        {"epoch": range(1, len(loss) + 1), "loss": loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
    )


def test_diagnose_names_diverged_and_collapsed_runs():
    ok = _history([2.0, 1.5], [3.0, 10.1], [0.1, 0.25])  # confidently wrong on few images is not divergence
    assert train.diagnose(ok, 4, predicted_classes=3, val_classes=4) == ("ok", "")
    status, why = train.diagnose(_history([3.9, float("nan")], [4.0, float("nan")], [0.02, 0.013]), 49)
    assert status == "diverged" and "not finite from epoch 2" in why
    # issue 8: ResNet-50 on 49 landmarks, validation loss 23,787 at its kept epoch
    status, why = train.diagnose(_history([3.5, 3.1], [40.0, 23787.0], [0.01, 0.013]), 49)
    assert status == "diverged" and "23,787" in why
    status, why = train.diagnose(_history([3.0, 250.0], [5.0, 6.0], [0.05, 0.05]), 49)
    assert status == "diverged" and "exploded to 250" in why
    status, why = train.diagnose(ok, 4, predicted_classes=1, val_classes=4)
    assert status == "collapsed" and "same landmark" in why
    assert train.diagnose(ok, 4, predicted_classes=1, val_classes=1)[0] == "ok"  # one class shown: cannot tell


@pytest.mark.slow
def test_train_reports_a_collapsed_run_as_such(trained, split):
    predicted = trained.model.predict(pipeline.batches(split.val, 32, batch_size=len(split.val))[0][0], verbose=0)
    one_class = len(np.unique(predicted.argmax(axis=1))) == 1
    assert trained.health == ("collapsed" if one_class else "ok")
    assert trained.metrics()["health"] == trained.health and bool(trained.health_note) == one_class


@pytest.mark.slow
def test_a_killed_run_resumes_and_gives_the_same_numbers_as_an_uninterrupted_one(trained, split, tmp_path, monkeypatch):
    import shutil

    rmtree = shutil.rmtree
    # a run killed after its first epoch leaves its resume state behind
    monkeypatch.setattr(train.shutil, "rmtree", lambda path, ignore_errors=False: None)
    first = train.train(
        _tiny_model(len(split.landmark_ids), seed=1), split, _settings(tmp_path, epochs=1), name="tiny", progress=False
    )
    monkeypatch.setattr(train.shutil, "rmtree", rmtree)
    assert (tmp_path / "tiny.resume" / "state.json").is_file()
    assert first.resumed_from == 0

    resumed = train.train(
        _tiny_model(len(split.landmark_ids), seed=1), split, _settings(tmp_path), name="tiny", progress=False
    )
    assert resumed.resumed_from == 1
    assert not (tmp_path / "tiny.resume").exists()
    # the same parameters give the same numbers: separate runs, and a killed run resumed
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_top5"]
    pd.testing.assert_frame_equal(first.history[columns], trained.history[columns].iloc[:1])
    pd.testing.assert_frame_equal(resumed.history[columns], trained.history[columns])
    for a, b in zip(resumed.model.get_weights(), trained.model.get_weights()):
        np.testing.assert_array_equal(a, b)


class _Killed(Exception):
    """Stands for the kill of a training process right after an epoch's resume state was written."""


@pytest.mark.slow
def test_a_killed_scheduled_run_resumes_its_learning_rate_schedule_where_it_stopped(split, tmp_path, monkeypatch):
    from landmarklib.nets import recipes

    settings = _settings(
        tmp_path, epochs=3, optimizer="adamw", learning_rate=0.01, lr_schedule="warmup_cosine", warmup_epochs=1
    )
    whole = train.train(
        _tiny_model(len(split.landmark_ids), seed=1), split, settings, name="whole", progress=False
    ).history

    save_state = train.EpochLog._save_state

    def killed_after_epoch_1(self, epoch):
        save_state(self, epoch)
        if epoch == 1:
            raise _Killed

    monkeypatch.setattr(train.EpochLog, "_save_state", killed_after_epoch_1)
    with pytest.raises(_Killed):
        train.train(_tiny_model(len(split.landmark_ids), seed=1), split, settings, name="cut", progress=False)
    monkeypatch.undo()
    resumed = train.train(_tiny_model(len(split.landmark_ids), seed=1), split, settings, name="cut", progress=False)
    assert resumed.resumed_from == 1

    # warmup from 0 over epoch 1, then the cosine: epoch 2 starts at the peak, epoch 3 half way down
    steps = recipes.steps_per_epoch(len(split.train), settings.batch_size)
    expected = recipes.schedule_values(0.01, settings, 3, steps)
    np.testing.assert_allclose(whole["lr"], expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(resumed.history["lr"], whole["lr"], rtol=0, atol=1e-7)
    assert pd.read_csv(resumed.history_csv)["lr"].tolist() == resumed.history["lr"].tolist()
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_top5"]
    pd.testing.assert_frame_equal(resumed.history[columns], whole[columns])


def test_a_scheduled_run_resumes_only_with_the_same_epochs(split):
    model = _tiny_model(len(split.landmark_ids))
    recorded = {"epochs": 3, "optimizer": "adamw", "lr_schedule": "warmup_cosine"}
    cosine = [train._fingerprint({**recorded, "epochs": e}, model, split) for e in (3, 5)]
    assert cosine[0] != cosine[1]  # the schedule spans the epochs: another length is another curve
    constant = [train._fingerprint({**recorded, "lr_schedule": "constant", "epochs": e}, model, split) for e in (3, 5)]
    assert constant[0] == constant[1]  # a constant step: more epochs may be asked for


def test_resume_state_of_other_settings_is_discarded(tmp_path):
    resume = tmp_path / "x.resume"
    resume.mkdir()
    (resume / "epoch1.weights.h5").write_bytes(b"")
    (resume / "state.json").write_text(
        json.dumps({"epoch": 1, "weights": "epoch1.weights.h5", "fingerprint": {"batch_size": 8}})
    )
    assert train._resume_point(resume, {"batch_size": 4}, tmp_path / "x.history.csv") == (0, None, [])
    assert not resume.exists()


def test_train_needs_validation_rows(split):
    empty = data.Split(train=split.train, val=split.val.iloc[:0], landmark_ids=split.landmark_ids, dropped={})
    with pytest.raises(ValueError, match="no validation rows"):
        train.train(None, empty, config.TrainConfig())


def test_variants_reuse_the_baseline_when_nothing_changes_and_reject_unknown_settings(trained, folder):
    settings = config.RunConfig(
        split=config.SplitConfig(train_dir=str(folder), min_images=1, val_fraction=0.34, seed=1),
        model=config.ModelConfig(input_size=32, filters=TINY["filters"], blocks=TINY["blocks"], dense_units=8),
        train=_settings("models"),
    )
    variants = [{"name": "baseline"}, {"name": "min_images=6", "min_images": 6}]
    table, results = train.train_variants(variants, settings, baseline=trained, name="tiny", progress=False)
    # every landmark has six images: min_images=6 keeps the same data, so nothing is trained
    assert results["baseline"] is trained and results["min_images=6"] is trained
    assert list(table["reused"]) == [True, True]
    assert table.loc[1, "changes"] == {"min_images": 6} and table.loc[1, "val_top1"] == trained.val_top1
    with pytest.raises(config.ConfigError, match="variant 'typo': unknown setting 'augmnet'.*did you mean 'augment'"):
        train.train_variants([{"name": "typo", "augmnet": True}], settings, baseline=trained)
    with pytest.raises(config.ConfigError, match="variant 'elsewhere': unknown setting 'models_dir'"):
        train.train_variants([{"name": "elsewhere", "models_dir": "x"}], settings, baseline=trained)
    with pytest.raises(config.ConfigError, match="variant 'bad': learning_rate: 'fast' is not float"):
        train.train_variants([{"name": "bad", "learning_rate": "fast"}], settings, baseline=trained)


def test_comparison_table_sets_runs_beside_the_study():
    run = {"params": 1000, "input_size": 64, "epochs": 3, "epochs_run": 3, "val_top1": 0.5, "seconds_per_epoch": 12.0}
    table = train.comparison_table({"res_incep": run, "resnet50": None})
    assert list(table.index) == [("res_incep", "this run"), ("res_incep", "study"), ("resnet50", "study")]
    assert table.loc[("res_incep", "study"), "val_top1"] == 0.0589
    assert table.loc[("resnet50", "study"), "params"] == 25_636_712
    assert table.loc[("res_incep", "this run"), "training_hours"] == pytest.approx(0.01)


def test_figures():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [2.0, 1.5, 1.2],
            "accuracy": [0.2, 0.4, 0.5],
            "top5": [0.6, 0.8, 0.9],
            "val_loss": [90.0, 1.8, 1.6],
            "val_accuracy": [0.1, 0.3, 0.35],
            "val_top5": [0.5, 0.7, 0.8],
        }
    )
    fig = training_figures.curves(history, "tiny")
    loss, acc = fig.axes
    assert (loss.get_title(), acc.get_title()) == ("Loss", "Accuracy")
    assert loss.get_yscale() == "log"  # the first validation loss dwarfs the rest
    assert len(acc.lines) == 4
    table = pd.DataFrame({"name": ["a", "b"], "val_top1": [0.5, 0.6], "val_top5": [0.9, 0.95], "chance": [0.25, 0.3]})
    fig = training_figures.variants(table)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]

    model = res_incep.res_incep((32, 32, 3), 3, **TINY)
    graph = training_figures.layer_graph(model)
    branches = ("b1_1x1b", "b2_1x1b", "b3_1x1", "b4_1x1")
    assert set(graph["stage1_block1_concat"]) == {f"stage1_block1_{b}" for b in branches}
    assert set(graph["stage1_block1_add"]) == {"stage1_block1_shortcut", "stage1_block1_out"}
    fig = training_figures.block_diagram(model, "stage1_block1")
    texts = [t.get_text() for t in fig.axes[0].texts]
    n_layers = sum(name.startswith("stage1_block1_") for name in graph)
    assert sum("\n" in t and not t.startswith("shortcut") for t in texts) == n_layers + 1  # + the input box
    assert any(t.startswith("input: stem_pool") for t in texts)
    assert any("1x1 projection" in t for t in texts)
    with pytest.raises(ValueError, match="no layer named"):
        training_figures.block_diagram(model, "stage9_block1")


def test_augment_add_keeps_the_model_plain_and_adds_augmented_copies_to_the_data(split):
    assert augment.augment_mode(True) == "replace" and augment.augment_mode(False) is None
    assert augment.augment_mode("add") == "add"
    with pytest.raises(ValueError, match="augment must be one of"):
        augment.augment_mode("double")
    added_model = _tiny_model(len(split.landmark_ids), augment="add")
    replace = _tiny_model(len(split.landmark_ids), augment="replace")
    for model in (added_model, replace):  # the models are plain: the input pipeline augments
        assert not any(layer.name.startswith("augment") for layer in model.layers)
        assert model.augmentation == augment.Augmentation("study")
    assert (added_model.augment_mode, replace.augment_mode) == ("add", "replace")
    base = pipeline.batches(split.train, 32, batch_size=4, shuffle=True, seed=1)
    added = pipeline.augmented_copies(base)
    assert len(added) == 2 * len(base)
    x0, y0 = added[0]
    x1, y1 = added[1]
    np.testing.assert_array_equal(x0, base[0][0])  # the original images, as they are
    np.testing.assert_array_equal(y1, y0)  # then the same images (same labels), augmented
    assert x1.shape == x0.shape and x1.dtype == np.float32 and not np.array_equal(x1, x0)
    # the copy is the study's draw for (seed, epoch, row): what the same images get with "replace"
    rows = base._rows(0)
    expected = augment.Augmentation("study").batch(x0.astype(np.uint8), seed=1, epoch=0, rows=rows)
    np.testing.assert_array_equal(x1, expected.astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["add", "replace", "photo"])
def test_training_augments_the_training_batches_as_the_model_is_marked(split, tmp_path, monkeypatch, mode):
    import keras

    made = []
    batches = pipeline.batches

    def spy(*args, **kwargs):
        made.append(batches(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(pipeline, "batches", spy)

    # what fit actually ran: train steps per epoch (a callback), and the batches it drew per epoch
    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch, self.optimizer_steps = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.per_epoch.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.per_epoch[-1] += 1

        def on_epoch_end(self, epoch, logs=None):
            self.optimizer_steps.append(int(self.model.optimizer.iterations))  # the updates made so far

    steps = Steps()
    fit_callbacks = train.devices.fit_callbacks
    monkeypatch.setattr(train.devices, "fit_callbacks", lambda val_data: [*fit_callbacks(val_data), steps])
    adding = mode == "add"  # the study's: every image once as it is and once augmented in each epoch
    drawn = []  # every training batch handed to fit: (epoch, its index, an added augmented copy?, its image rows)
    plain = []  # the batch the training ImageBatches served last: (epoch, rows, images)

    def batches_getitem(self, index, getitem=pipeline.ImageBatches.__getitem__):
        batch = getitem(self, index)
        if self.shuffle:
            plain.append((self.epoch, self._rows(index).tolist(), batch[0]))
            if not adding:  # handed to fit as it is
                epoch, rows, _ = plain.pop()
                drawn.append((epoch, index, False, rows))
        return batch

    def copies_getitem(self, index, getitem=pipeline.AugmentedCopies.__getitem__):
        x, y = getitem(self, index)
        epoch, rows, images = plain.pop()  # what it read from its training batches
        drawn.append((epoch, index, not np.array_equal(x, images), rows))
        return x, y

    monkeypatch.setattr(pipeline.ImageBatches, "__getitem__", batches_getitem)
    monkeypatch.setattr(pipeline.AugmentedCopies, "__getitem__", copies_getitem)

    epochs = 2
    model = _tiny_model(len(split.landmark_ids), seed=1, augment=mode)
    result = train.train(model, split, _settings(tmp_path, epochs=epochs), name=mode, progress=False)
    assert result.settings["augment_mode"] == mode and result.epochs_run == epochs
    assert np.isfinite(result.history["loss"]).all()
    training = [b for b in made if b.shuffle]
    assert len(training) == 1 and all(b.augmentation is None for b in made if not b.shuffle)  # validation: as is
    kind = "photo" if mode == "photo" else "study"
    # "add": the batches stay plain and the copies are added
    assert training[0].augmentation == (None if adding else augment.Augmentation(kind))

    # 16 training images in batches of 4: 4 batches an epoch, 8 with the augmented copies added
    n_train = len(split.train)
    assert n_train == 16
    per_epoch = 8 if adding else 4
    assert steps.per_epoch == [per_epoch] * epochs
    assert steps.optimizer_steps == [per_epoch * (e + 1) for e in range(epochs)]
    for epoch in range(epochs):
        # Keras reads a batch or two ahead of the first epoch to learn their shapes: distinct batches count
        served = {index: (copy, rows) for e, index, copy, rows in drawn if e == epoch}
        assert sorted(served) == list(range(per_epoch)), epoch
        seen = sorted(row for _, rows in served.values() for row in rows)
        assert seen == sorted(list(range(n_train)) * (2 if adding else 1)), epoch  # every image, twice with "add"
        augmented_copies = sorted(row for copy, rows in served.values() if copy for row in rows)
        assert augmented_copies == (list(range(n_train)) if adding else []), epoch  # once of the two augmented
    assert result.images_per_second * result.history["train_seconds"].iloc[-1] == pytest.approx(
        n_train * (2 if adding else 1), rel=1e-6
    )
