"""End to end: `landmarks report` runs all seven notebooks on a tiny embedded sample, into a temporary folder.

The real command (the installed ``landmarks`` script, in a subprocess) with the default parameters
file and a ``--set`` for every path and every size, so that nothing lands in the checkout and the run
stays short: 5 landmarks, 60 training and 10 test images of 32 px, one epoch of tiny models. The run
happens once per test session (``end_to_end`` in conftest.py); test_browser opens its pages too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from landmarklib import data
from landmarklib.nets import models, pipeline

from conftest import E2E_METRICS, read_metrics
from conftest import NOTEBOOKS as NB_PATHS

NOTEBOOKS = [p.stem for p in NB_PATHS]
METRICS = E2E_METRICS


@pytest.fixture(scope="module")
def run(end_to_end):
    return end_to_end


def metrics(base: Path, name: str) -> dict:
    return read_metrics(base, name)


@pytest.mark.slow
def test_every_notebook_runs_and_every_page_is_written(run):
    base, proc = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" not in proc.stderr  # every --set name is declared by a notebook
    assert "Unable to parse" not in proc.stderr and "unknown parameter" not in proc.stderr  # nor papermill's noise
    rows = {
        line.split()[0]: line.split()[-1]
        for line in proc.stdout.splitlines()
        if line.split()[:1] in [[n] for n in NOTEBOOKS]
    }
    assert rows == {n: "ok" for n in NOTEBOOKS}
    html = base / "reports" / "html"
    assert sorted(p.name for p in html.glob("*.html")) == sorted(
        [f"{n}.html" for n in NOTEBOOKS] + ["index.html", "report.html"]
    )
    assert sorted(p.stem for p in (base / "reports" / "metrics").glob("*.json")) == METRICS
    index = (html / "index.html").read_text()
    assert all(f'href="{n}.html"' in index for n in NOTEBOOKS) and "run e2e" in index


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def scores_from_files(submission: Path, solution: Path) -> dict:
    """The test-set scores recomputed with plain Python from a Kaggle submission and the solution.

    GAP: the answers by confidence, highest first (ties by id), precision at each right answer, summed
    over the images that show a landmark. The submission rounds confidences to six decimals: answers
    tied there may be ordered otherwise by their full values, so GAP is given as (lowest, highest)
    over the orders of such ties (one value when no tie mixes a right and a wrong answer).
    """
    truth = {r["id"]: r["landmark_id"] for r in csv_rows(solution)}  # "": not a landmark
    answers = {}
    for r in csv_rows(submission):
        if r["landmarks"]:
            landmark, confidence = r["landmarks"].split()
            answers[r["id"]] = (int(landmark), float(confidence))
    n_landmark_images = sum(bool(v) for v in truth.values())
    right = {i for i, (landmark, _) in answers.items() if truth[i] and landmark == int(truth[i])}

    def gap(ties) -> float:
        order = sorted(answers, key=lambda i: (-answers[i][1], ties(i), i))
        hits, total = 0, 0.0
        for rank, i in enumerate(order, start=1):
            if i in right:
                hits += 1
                total += hits / rank
        return total / n_landmark_images

    return {
        "gap_range": (gap(lambda i: i in right), gap(lambda i: i not in right)),
        "answers": answers,
        "n_test": len(truth),
        "n_landmark_images": n_landmark_images,
        "n_right": len(right),
        "landmark_ids": {i for i, v in truth.items() if v},
        "truth": truth,
    }


def predict_test_images(base: Path, name: str, ids: list[str]) -> np.ndarray:
    """The saved model's class probabilities for the fetched test images ``ids`` (``<test_dir>/<id>.jpg``)."""
    model, _ = models.load(base / "models" / f"{name}.keras")
    frame = pd.DataFrame({"path": [str(base / "processed" / "test" / f"{i}.jpg") for i in ids]})
    x, _ = pipeline.batches(frame, int(model.input_shape[1]), batch_size=len(frame))[0]
    return model.predict(x, verbose=0)


def validation_top1(base: Path, run: dict) -> tuple[float, float]:
    """The kept model's top-1 accuracy on its validation images, recomputed: (accuracy, tolerance).

    An image whose two best classes lie within 1e-5 of each other may be answered otherwise by another
    machine's float rounding: each such image widens the tolerance by one image.
    """
    split = data.load_split(
        base / "processed" / "train", min_images=run["min_images"], val_fraction=run["val_fraction"], seed=run["seed"]
    )
    model, _ = models.load(base / "models" / Path(run["model_path"]).name)
    x, y = pipeline.batches(split.val, run["input_size"], batch_size=len(split.val))[0]
    probs = model.predict(x, verbose=0)
    best_two = np.sort(probs, axis=1)[:, -2:]
    close = int((best_two[:, 1] - best_two[:, 0] < 1e-5).sum())
    assert len(y) == run["n_val"]
    return float(np.mean(probs.argmax(axis=1) == y)), close / len(y) + 1e-6


@pytest.mark.slow
def test_key_numbers_follow_from_the_tiny_sample(run):
    base, _ = run
    sample = json.loads((base / "sample" / "sample.json").read_text())
    broken = {split: sum(b["split"] == split for b in sample["broken"]) for split in ("train", "test")}
    m1, m2 = metrics(base, "01_explore"), metrics(base, "02_fetch")
    assert m1["n_images"] == 60 and m1["n_landmarks"] == 5
    assert m2["n_rows"] == 60 and m2["ok"] == 60 - broken["train"] and m2["failed"] == broken["train"]
    assert m2["test"]["ok"] == 10 - broken["test"]
    for name in ("03_res_incep", "04_resnet50"):
        m = metrics(base, name)
        assert m["input_size"] == 32 and m["epochs"] == 1, name
        assert (base / "models" / Path(m["model_path"]).name).is_file(), name
        # the validation accuracy, from the saved model and the images of its validation split
        top1, tolerance = validation_top1(base, m)
        assert m["val_top1"] == pytest.approx(top1, abs=tolerance), name
    m6 = metrics(base, "06_report")
    assert m6["n_test"] == 10
    assert set(m6["models"]) == {"res_incep", "resnet50"} and m6["data"] == "sample"
    assert m6["notebooks"] == [m for m in METRICS if m != "06_report"]  # 06 runs last: it reads 07's too
    assert (base / "reports" / m6["submission_csv"]).is_file()
    for name in METRICS:
        for fig in metrics(base, name).get("figures") or []:
            assert (base / "reports" / (fig["path"] if isinstance(fig, dict) else fig)).is_file(), (name, fig)


@pytest.mark.slow
def test_test_set_scores_follow_from_the_submissions_and_the_solution(run):
    base, _ = run
    m6 = metrics(base, "06_report")
    assert m6["model"] == "res_incep" and m6["submission_csv"] == m6["submissions"]["res_incep"]
    for key in ("gap", "gap_all", "answered_share", "answered_precision", "top1", "top5", "n_test"):
        assert m6[key] == m6["models"]["res_incep"][key], key  # the top-level scores are Res-Incep's
    read_ok = {r["id"] for r in csv_rows(base / "processed" / "test" / "manifest.csv") if r["status"] == "ok"}
    for name, scores in m6["models"].items():
        found = scores_from_files(base / "reports" / m6["submissions"][name], base / "sample" / "test_solution.csv")
        classes = json.loads((base / "models" / f"{name}.labels.json").read_text())["landmark_ids"]
        # five landmarks at most: the best of them has a probability of 20% or more, above the 4.5% threshold,
        # so every image read is answered (and the ones that failed to fetch are not)
        answers = found["answers"]
        assert len(classes) <= 5 and scores["threshold"] == 0.045
        assert set(answers) == read_ok, name

        # the answers are the saved model's: its best landmark and probability for each image, recomputed
        ids = sorted(answers)
        probs = predict_test_images(base, name, ids)
        best_two = np.sort(probs, axis=1)[:, -2:]
        for i, p, (second, first) in zip(ids, probs, best_two):
            assert answers[i][1] == pytest.approx(first, abs=1e-6), (name, i)
            if first - second > 1e-5:  # else another machine's rounding may pick the other one
                assert answers[i][0] == classes[int(p.argmax())], (name, i)
        # GAP: exact where the rounded confidences do not tie a right and a wrong answer (Res-Incep's here);
        # a collapsed model saturating its softmax answers 1.000000 for every image, and its full values
        # (1.0 or 0.99999994, by float rounding) order the ties, so only the range over their orders holds
        low, high = found["gap_range"]
        assert low - 1e-12 <= scores["gap"] <= high + 1e-12, (name, scores["gap"], low, high)
        assert scores["gap_all"] == pytest.approx(scores["gap"], abs=1e-12)  # every prediction answered

        n = found["n_landmark_images"]
        assert (scores["n_test"], scores["n_landmark_images"], scores["n_answered"]) == (10, n, len(read_ok))
        assert scores["answered_share"] == pytest.approx(len(read_ok) / 10)
        assert scores["answered_precision"] == pytest.approx(found["n_right"] / len(read_ok))
        assert scores["top1"] == pytest.approx(found["n_right"] / n)
        # top-5 lists every one of the model's (at most five) landmarks: a hit for every landmark image read
        # whose landmark the model knows
        known = {i for i in found["landmark_ids"] & read_ok if int(found["truth"][i]) in classes}
        assert scores["top5"] == pytest.approx(len(known) / n)


@pytest.mark.slow
def test_report_page_holds_every_section_with_this_runs_numbers(run):
    base, _ = run
    page = (base / "reports" / "html" / "report.html").read_text()
    body = page[page.index("<main>") :]
    assert "not run" not in body and "Traceback" not in body
    m6 = metrics(base, "06_report")
    assert f"{m6['gap']:.4f}" in body and "embedded synthetic sample" in body
    # every figure of every notebook, embedded: 01-05 shown again by 06, and 06's own
    assert body.count('src="data:image/png;base64,') == sum(len(metrics(base, m)["figures"]) for m in METRICS)


# Framework log lines and Python warnings: none in any rendered page (stderr progress bars are fine).
NOISE = (
    "retracing",
    "WARNING:tensorflow",
    "WARNING:absl",
    "UserWarning",
    "DeprecationWarning",
    "FutureWarning",
    "RuntimeWarning",
    "I0000 ",
    "W0000 ",
    "E0000 ",
    "oneDNN custom operations",
    "cpu_feature_guard",
)


@pytest.mark.slow
def test_no_framework_log_lines_or_python_warnings_in_the_rendered_pages(run):
    base, _ = run
    found = {}
    for page in sorted((base / "reports" / "html").glob("*.html")):
        text = page.read_text()
        hits = [word for word in NOISE if word in text]
        if hits:
            found[page.name] = hits
    assert not found
