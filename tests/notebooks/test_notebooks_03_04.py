"""Notebooks 03 (Res-Incep) and 04 (ResNet-50 benchmark) executed by papermill with tiny parameters."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from landmarklib import data, metrics, study
from landmarklib.nets import models, pipeline, train

from conftest import TINY_LANDMARKS, write_tiny_folder

ROOT = Path(__file__).resolve().parents[2]
NB03 = ROOT / "notebooks" / "03_build_res_incep.ipynb"
NB04 = ROOT / "notebooks" / "04_benchmark_resnet50.ipynb"
RUN_KEYS = sorted(metrics.Training.__required_keys__)  # what every training run records (its schema)
# Res-Incep's exact parameter counts with the study's final and first-try filters and its 2,274 classes
# (test_models.py builds both and counts them layer by layer)
STUDY_FINAL_PARAMS, STUDY_FIRST_TRY_PARAMS = 2_342_132, 38_171_594


def cell_outputs(notebook: Path) -> str:
    """What the executed notebook's cells output (not their source), as JSON text."""
    return json.dumps([cell.get("outputs", []) for cell in nbformat.read(notebook, as_version=4).cells])


def run_split(tmp: Path, run: dict) -> data.Split:
    """The training and validation rows of a notebook's run (as the notebook split them)."""
    return data.load_split(
        tmp / "train", min_images=run["min_images"], val_fraction=run["val_fraction"], seed=run["seed"]
    )


def kept_model_on_validation(model_path: str, split: data.Split) -> tuple[float, int]:
    """(top-1 accuracy, distinct classes answered) of a saved model on the validation rows, recomputed."""
    model, landmark_ids = models.load(model_path)
    assert landmark_ids == split.landmark_ids == TINY_LANDMARKS
    x, y = pipeline.batches(split.val, int(model.input_shape[1]), batch_size=len(split.val))[0]
    answered = model.predict(x, verbose=0).argmax(axis=1)
    return float(np.mean(answered == y)), len(np.unique(answered))


def check_health(run: dict, name: str, health: str) -> None:
    """``run`` (a metrics file, or one of its variants) has ``health``: what ``train.diagnose`` finds in its history."""
    assert run["health"] == health, (name, run["health"], run["health_note"])
    assert bool(run["health_note"]) == (health != "ok"), (name, run["health_note"])
    history = pd.read_csv(Path(run["model_path"]).with_suffix(".history.csv"))
    chance = np.log(run["n_classes"])
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all(), name  # diverged: not finite
    assert history["loss"].iloc[-1] < train.EXPLODED_TRAIN_LOSS * chance, name  # diverged: exploded
    assert run["val_loss"] < train.EXPLODED_VAL_LOSS * chance, name


@pytest.fixture(scope="module")
def executed(tmp_path_factory, run_notebook):
    """Both notebooks run on a tiny fetched folder, 03 first (04 reads its metrics)."""
    tmp = tmp_path_factory.mktemp("nb")
    train_dir = write_tiny_folder(tmp / "train")
    common = {
        "train_dir": str(train_dir),
        "models_dir": str(tmp / "models"),
        "input_size": 32,
        "min_images": 2,
        "val_fraction": 0.34,
        "seed": 3,
        "reports_dir": str(tmp / "reports"),
    }
    run_notebook(
        "03",
        tmp / "03.ipynb",
        {
            **common,
            "filters": [4, 4, 4, 4],
            "blocks": [1, 1, 1, 1],
            "dense_units": 8,
            # three epochs of 4 steps at the notebook's SGD step (0.002): a healthy run and augmented variant
            # (after one epoch both still answer one landmark for every image: collapsed; at 0.01-0.02 the
            # validation loss explodes)
            "epochs": 3,
            "batch_size": 4,
            "variant_epochs": 3,
            "variants": [
                {"name": "baseline"},
                {"name": "augmentation", "augment": True},
                {"name": "min_images=6", "min_images": 6},
            ],
        },
    )
    run_notebook(
        "04",
        tmp / "04.ipynb",
        {**common, "benchmark_epochs": 1, "benchmark_batch_size": 8, "weights_download_timeout": 0},
    )
    metrics = {
        name: json.loads((tmp / "reports" / "metrics" / f"{name}.json").read_text())
        for name in ("03_res_incep", "04_resnet50")
    }
    return tmp, metrics


@pytest.mark.slow
def test_notebook_03_trains_res_incep_and_its_variants(executed):
    tmp, metrics = executed
    m = metrics["03_res_incep"]
    assert all(key in m for key in RUN_KEYS), [key for key in RUN_KEYS if key not in m]
    assert (m["model"], m["input_size"], m["epochs"], m["batch_size"], m["optimizer"]) == ("res_incep", 32, 3, 4, "sgd")
    assert (m["n_classes"], m["chance"], m["n_train"] + m["n_val"]) == (4, 0.25, 24)
    assert 0 <= m["val_top1"] <= m["val_top5"] <= 1 and m["val_loss"] > 0
    # the study's numbers as study.py gives them, this rebuild's exact counts (test_models checks them)
    assert (m["study_params"], m["study_first_try_params"]) == (study.RES_INCEP_PARAMS, study.FIRST_TRY_PARAMS)
    assert (m["study_config_params"], m["first_try_params"]) == (STUDY_FINAL_PARAMS, STUDY_FIRST_TRY_PARAMS)
    assert (m["min_images"], m["val_fraction"], m["seed"]) == (2, 0.34, 3)  # notebook 05 reuses the split
    assert Path(m["model_path"]) == tmp / "models" / "res_incep.keras" and Path(m["model_path"]).is_file()
    assert json.loads(Path(m["label_map_path"]).read_text()) == {"landmark_ids": TINY_LANDMARKS}
    baseline, augmented, rare = m["variants"]
    assert baseline["name"] == "baseline" and baseline["reused"] and baseline["val_top1"] == m["val_top1"]
    assert augmented["changes"] == {"augment": True} and not augmented["reused"]
    assert Path(augmented["model_path"]).name == "res_incep-augmentation.keras"
    assert Path(augmented["model_path"]).is_file()
    # every landmark has six images: min_images=6 keeps the same data, so the main run is reused
    assert rare["changes"] == {"min_images": 6} and rare["reused"] and rare["model_path"] == m["model_path"]
    assert sorted(m["figures"]) == [
        "figures/03_res_incep_block.png",
        "figures/03_res_incep_curves.png",
        "figures/03_res_incep_variants.png",
    ]
    assert all((tmp / "reports" / f).is_file() for f in m["figures"])
    # The tiny deterministic runs are healthy: finite losses far below an explosion, and each kept model
    # answers more than one landmark (recomputed here from the saved model on the validation images; its two
    # best classes lie at least 0.03 apart on every image, far beyond any machine's float rounding).
    check_health(m, "main run", "ok")
    check_health(augmented, "augmentation", "ok")
    for run in (m, augmented):
        top1, answered = kept_model_on_validation(run["model_path"], run_split(tmp, m))
        assert answered > 1 and top1 == pytest.approx(run["val_top1"], abs=1e-6), (run["model_path"], answered)
    assert baseline["health"] == rare["health"] == "ok"  # the main run, reused
    outputs = cell_outputs(tmp / "03.ipynb")
    assert "This Res-Incep run" not in outputs  # the warning a diverged or collapsed run gets


@pytest.mark.slow
def test_notebook_04_benchmarks_resnet50_and_says_its_weights_are_random(executed):
    tmp, metrics = executed
    m = metrics["04_resnet50"]
    assert all(key in m for key in RUN_KEYS), [key for key in RUN_KEYS if key not in m]
    assert (m["model"], m["optimizer"], m["epochs"], m["batch_size"]) == ("resnet50", "rmsprop", 1, 8)
    assert m["backbone_params"] == 23_587_712 and m["params"] == 23_587_712 + 2048 * 4 + 4
    assert m["weights"] == "random" and "RANDOMLY INITIALIZED" in m["weights_note"]
    assert m["variants"] == []
    assert Path(m["model_path"]).name == "resnet50.keras" and Path(m["model_path"]).is_file()
    # the comparison sets notebook 03's measured numbers beside this run's and the study's
    rows = {(r["model"], r["source"]): r for r in m["comparison"]}
    assert rows[("res_incep", "this run")]["val_top1"] == metrics["03_res_incep"]["val_top1"]
    assert rows[("resnet50", "this run")]["weights"] == "random"
    assert rows[("resnet50", "study")]["val_top1"] == 0.0402
    assert m["figures"] == ["figures/04_resnet50_curves.png"]
    # the warning is in the executed notebook's output, not only in the metrics
    outputs = cell_outputs(tmp / "04.ipynb")
    assert "Weights: random" in outputs
    # Collapsed, legitimately: a randomly initialised ResNet-50 after two RMSprop steps of 8 images. Its
    # BatchNormalization statistics (momentum 0.99) are still about their initial values, so in inference
    # mode one class saturates the softmax for every validation image (probability 1.0, no rounding can
    # change it). Confidently wrong, but not diverged: the validation loss (about 45) stays below 100 ln 4.
    check_health(m, "resnet50", "collapsed")
    assert "answers the same landmark for every validation image (they show 4 landmarks)" in m["health_note"]
    top1, answered = kept_model_on_validation(m["model_path"], run_split(tmp, m))
    assert answered == 1 and top1 == pytest.approx(m["val_top1"], abs=1e-6) == 2 / 8  # 2 images per landmark
    assert "This ResNet-50 run collapsed" in outputs  # the notebook says it is no result


def test_study_params_are_the_studys_settings():
    import yaml

    from landmarklib import augment, config
    from landmarklib.report import runner

    study = yaml.safe_load((ROOT / "params" / "study-2018.yaml").read_text())  # what differs from the defaults
    run, benchmark = config.RunConfig.from_params(study), config.RunConfig.from_params(study, benchmark=True)
    assert (run.train.optimizer, run.train.momentum, run.train.epochs, run.train.batch_size) == ("sgd", 0, 30, 8)
    assert list(run.model.filters) == [40, 60, 75, 80] and run.model.augment is False
    assert {"name": "min_images=5", "min_images": 5} in study["variants"]  # the study's proposed refinement
    augmented = [v for v in study["variants"] if "augment" in v]
    assert [augment.augment_mode(v["augment"]) for v in augmented] == ["add"]  # the study added its copies
    assert (benchmark.train.optimizer, benchmark.train.epochs, benchmark.train.batch_size) == ("rmsprop", 35, 55)
    declared = {"sample_dir", "reports_dir", "run_name", *runner.SAMPLE_ARGS}
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        declared.update(runner.declared_parameters(nb))
    assert set(study) <= declared, set(study) - declared  # no setting that no notebook reads
