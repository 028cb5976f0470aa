"""The transfer benchmark's own parts (``benchmarks/transfer.py``, ``benchmarks/recognition.py``): the pretraining
pool leaves the target out and refuses colliding landmark ids; recorded runs are compared paired. No training."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import recognition as recognition_benchmark  # noqa: E402  (benchmarks/ is not a package)
import transfer  # noqa: E402


def _shared_set(root: Path, name: str, landmarks: list[int], per: int = 2) -> None:
    rows = []
    (root / name / "images").mkdir(parents=True)
    for landmark in landmarks:
        for i in range(per):
            image_id = f"{name[:4]}{landmark}{i}"
            Image.new("RGB", (8, 8), (landmark % 255, 0, 0)).save(root / name / "images" / f"{image_id}.jpg")
            rows.append((image_id, f"images/{image_id}.jpg", landmark))
    rows.append(rows[0])  # an exact repeat, as real-landmarks has one
    pd.DataFrame(rows, columns=["id", "url", "landmark_id"]).to_csv(root / name / "train.csv", index=False)


def _sample(root: Path, landmarks: list[int]) -> Path:
    for landmark in landmarks:
        (root / str(landmark)).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / str(landmark) / f"s{landmark}.jpg")
    return root


def test_the_pool_holds_every_set_but_the_target(tmp_path):
    shared = tmp_path / "shared"
    _shared_set(shared, "real-landmarks", [1000, 1001])
    _shared_set(shared, "indian-monuments-64", [5000, 5001, 5002])
    sample = _sample(tmp_path / "sample", [10000, 10001])
    pool, counts = transfer.pool_view("indian-monuments-64", shared, sample, tmp_path / "work")
    assert counts == {"real-landmarks": 4, "sample": 2}
    found = sorted(p.parent.name for p in pool.glob("*/*.jpg"))
    assert found == sorted(["1000", "1000", "1001", "1001", "10000", "10001"])  # no image of the target
    assert all(p.is_symlink() and p.resolve().is_file() for p in pool.glob("*/*.jpg"))


def test_colliding_landmark_ids_are_refused(tmp_path):
    shared = tmp_path / "shared"
    _shared_set(shared, "real-landmarks", [1000])
    _shared_set(shared, "indian-monuments-64", [5000])
    sample = _sample(tmp_path / "sample", [1000])
    with pytest.raises(SystemExit, match="landmark id 1000 is in both real-landmarks and sample"):
        transfer.pool_view("indian-monuments-64", shared, sample, tmp_path / "work")


def _run(name: str, landmark: np.ndarray, actual: np.ndarray, confidence: np.ndarray) -> dict:
    top5 = np.stack([landmark, *[np.full_like(landmark, -1)] * 4], axis=1)
    return {
        "run_name": name,
        "query_ids": [str(i) for i in range(len(actual))],
        "actual": actual.tolist(),
        "known": [1, 2, 3],
        "predictions": {
            "modern": {
                "landmark": landmark.tolist(),
                "confidence": confidence.tolist(),
                "threshold": 0.0,
                "top5": top5.tolist(),
            }
        },
    }


def test_paired_differences_between_recorded_runs():
    rng = np.random.default_rng(0)
    actual = rng.choice([1, 2, 3, -1], size=200)
    confidence = rng.uniform(0.1, 1.0, size=200)
    wrong = np.where(actual == 1, 2, 1)
    base_answers = np.where(rng.uniform(size=200) < 0.5, actual, wrong)
    base_answers = np.where(base_answers == -1, 3, base_answers)
    better = np.where(actual == -1, 3, actual)  # every known landmark right
    base = _run("a", base_answers, actual, confidence)
    same = recognition_benchmark.paired_runs(base, base, "modern", n_boot=200)
    assert same["closed_top1"]["diff"] == 0 and same["closed_top1"]["diff_low"] == same["closed_top1"]["diff_high"] == 0
    up = recognition_benchmark.paired_runs(base, _run("b", better, actual, confidence), "modern", n_boot=200)
    closed = actual != -1
    expected = 1.0 - float(np.mean(base_answers[closed] == actual[closed]))
    assert up["closed_top1"]["other"] == 1.0
    assert up["closed_top1"]["diff"] == pytest.approx(expected)
    assert 0 < up["closed_top1"]["diff_low"] <= expected <= up["closed_top1"]["diff_high"]
    assert up["open_gap"]["diff"] > 0
    flipped = transfer.paired(base, _run("b", better, actual, confidence), n_boot=200)
    assert flipped["closed_top1"]["transfer"] == 1.0 and flipped["closed_top1"]["diff"] == pytest.approx(expected)


def test_runs_of_other_queries_are_not_compared():
    actual = np.array([1, 2, 3, -1])
    a = _run("a", actual.clip(1), actual, np.ones(4))
    b = _run("b", actual.clip(1), actual[::-1].copy(), np.ones(4))
    with pytest.raises(SystemExit, match="did not answer the same queries"):
        recognition_benchmark.paired_runs(a, b, "modern", n_boot=10)
