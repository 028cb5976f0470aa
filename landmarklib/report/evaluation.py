"""Notebook 06's evaluation: the saved models on the held-out test set (``ModelEvaluation``), scored
when there is a solution."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import catalog, evaluate, files, manifest, paths, predict
from .content import MODELS, NOT_RUN, ModelEvaluation


def solution_path(test_solution_csv: str | os.PathLike | None) -> Path | None:
    """The solution file, or ``None`` when the parameter is empty or the file is absent."""
    if test_solution_csv is None or not str(test_solution_csv).strip():
        return None
    path = paths.resolve(test_solution_csv)
    return path if path.is_file() else None


def curve_thresholds(threshold: float) -> list[float]:
    """Thresholds for the curve: 0 to 1 in steps of 0.005, and the run's threshold."""
    return sorted(set(np.round(np.linspace(0.0, 1.0, 201), 4).tolist()) | {float(threshold)})


def _unscored(pred: pd.DataFrame, threshold: float) -> dict:
    """The numbers of a prediction table that need no answers: how many images, how many answered."""
    conf = pred["confidence"].astype("float64").to_numpy()
    answered = np.isfinite(conf) & (conf >= threshold)
    readable = np.isfinite(conf)
    return {
        "gap": None,
        "gap_all": None,
        "threshold": float(threshold),
        "answered_share": float(answered.mean()) if len(pred) else None,
        "answered_precision": None,
        "top1": None,
        "top5": None,
        "n_test": int(len(pred)),
        "n_landmark_images": None,
        "n_answered": int(answered.sum()),
        "n_readable": int(readable.sum()),
        "confidence_median": float(np.median(conf[readable])) if readable.any() else None,
        "scored": False,
    }


def evaluate_model(
    model_path: str | os.PathLike,
    test_dir: str | os.PathLike,
    test_solution_csv: str | os.PathLike | None,
    threshold: float,
    reports_dir: str | os.PathLike,
    progress: bool = True,
    tta: str = evaluate.DEFAULT_TTA,
) -> ModelEvaluation:
    """Predict the test folder with one saved model and score it against the solution, when there is one.

    Writes the Kaggle submission to ``<reports_dir>/submissions/<model>.csv``. Without a solution
    file (``test_solution_csv`` empty, ``None`` or absent) every test image is still predicted,
    thresholded, timed and written to the submission; the scores that need answers are ``None``.

    Args:
        model_path: ``<models_dir>/<name>.keras``.
        test_dir: the fetched test folder (``manifest.csv``, ``<id>.jpg``).
        test_solution_csv: ``id,landmark_id`` (empty = no landmark), or ``None``/``""``.
        threshold: answer only at or above this confidence (the study's 4.5%).
        reports_dir: the reports folder.
        progress: show progress bars.
        tta: test-time augmentation (``evaluate.TTA_MODES``).

    Load time, single-image latency and batched throughput are measured with ``inference.time_model``.
    """
    from ..nets import inference  # Keras: `landmarks report` imports this module; only notebook 06 runs a model

    model_path = paths.resolve(model_path)
    name = model_path.name.removesuffix(".keras")
    pred = predict.predict(model_path, paths.resolve(test_dir), threshold=threshold, progress=progress, tta=tta)
    solution_file = solution_path(test_solution_csv)
    confusion = None
    if solution_file is not None:
        solution = catalog.read_solution(solution_file)[["id", "landmark_id"]]
        solution = solution.assign(landmark_id=solution["landmark_id"].astype("string").fillna(""))  # "": no landmark
        scores = {**evaluate.score(pred, solution, threshold), "scored": True}
        table = solution.rename(columns={"landmark_id": "actual"}).merge(pred, on="id", how="left")
        predicted = table["landmark_id"].astype("Int64").astype("string").fillna("")
        table["correct"] = (predicted == table["actual"]) & (table["actual"] != "")
        n_landmarks = scores["n_landmark_images"]
        confusion = evaluate.confusion_matrix(table["landmark_id"], table["actual"], top_n=10)
    else:
        scores = _unscored(pred, threshold)
        table = pred.assign(actual=None, correct=False)
        n_landmarks = max(1, len(table))  # GAP is not drawn without answers; any denominator will do
    curve = evaluate.threshold_curve(
        table["confidence"].to_numpy(dtype=float),
        table["correct"].to_numpy(),
        curve_thresholds(threshold),
        n_landmarks=n_landmarks,
        ids=table["id"].to_numpy(),
    )
    if solution_file is None:
        curve[["precision_answered", "gap"]] = float("nan")
    times = inference.time_model(
        model_path, paths.resolve(test_dir), n_latency=20, warmup=3, batch_size=32, n_batches=2
    )
    submission = predict.write_submission(pred, paths.resolve(reports_dir) / "submissions" / f"{name}.csv", threshold)
    table["answered"] = table["answered"].astype("boolean").fillna(False).astype(bool)
    return ModelEvaluation(
        name=name,
        label=MODELS.get(name, name),
        model_path=model_path,
        predictions=table,
        scores=scores,
        curve=curve,
        confusion=confusion,
        timing=times,
        submission=submission,
        solution=solution_file,
    )


def evaluate_models(
    models_dir: str | os.PathLike,
    test_dir: str | os.PathLike,
    test_solution_csv: str | os.PathLike | None,
    threshold: float,
    reports_dir: str | os.PathLike,
    progress: bool = True,
    tta: str = evaluate.DEFAULT_TTA,
) -> tuple[dict[str, ModelEvaluation], list[str]]:
    """``evaluate_model`` for Res-Incep and ResNet-50 where saved; the reasons for those that could not be.

    A missing solution file does not stop the evaluation (see ``evaluate_model``); a test folder
    without a readable image does, with one line naming why (``manifest.no_images_reason``).

    Returns:
        (name -> ModelEvaluation, list of one-line reasons for models left out).
    """
    test_dir = paths.resolve(test_dir)
    if not test_dir.is_dir():
        return {}, [f"the fetched test folder `{files.display_path(test_dir)}` is missing (notebook 02 {NOT_RUN})"]
    try:
        readable = predict.load_test_images(test_dir, 1, progress=False)["path"].notna().any()
    except ValueError:  # neither a manifest nor an image
        readable = False
    if not readable:
        return {}, [manifest.no_images_reason(test_dir, shown_as=files.display_path(test_dir))]
    results, missing = {}, []
    for name in MODELS:
        model_path = paths.resolve(models_dir) / f"{name}.keras"
        if not model_path.is_file():
            missing.append(
                f"{MODELS[name]}: `{files.display_path(model_path)}` is missing "
                f"(notebook {'03' if name == 'res_incep' else '04'} {NOT_RUN})"
            )
            continue
        results[name] = evaluate_model(
            model_path, test_dir, test_solution_csv, threshold, reports_dir, progress=progress, tta=tta
        )
    return results, missing
