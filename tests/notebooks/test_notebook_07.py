"""Notebook 07 (the modern recipe and retrieval, scored open-set) executed by papermill with tiny parameters.

The notebook runs once (a module fixture) and three tests read what it wrote: its structure; the scores its
submissions determine (answered share and precision, and the open-set GAP curve above each method's threshold),
recomputed here by hand from the submissions and the solution; and the numbers that must agree with each other
(paired differences, the curve at threshold 0 against the headline scores). A fast test takes the functions the
notebook scores with (``openset.bootstrap`` -> ``recognition.method_rows``, ``openset.gap_curve``,
``recognition.write_submissions``) through a 6-query case worked out by hand.
"""

from __future__ import annotations

import ast
import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from landmarklib import config, openset

from conftest import TINY_LANDMARKS as LANDMARKS
from conftest import nb07_tiny_parameters

ROOT = Path(__file__).resolve().parents[2]
NB07 = ROOT / "notebooks" / "07_beyond_the_study.ipynb"
METHOD_KEYS = (
    "recipe",
    "val_top1",
    "threshold",
    "closed_top1",
    "closed_top1_low",
    "closed_top1_high",
    "closed_top5",
    "closed_gap",
    "open_gap",
    "open_gap_low",
    "open_gap_high",
    "answered_share",
    "answered_precision",
)


def _parameters(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    tree = ast.parse(cells[0].source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


def test_notebook_07_is_committed_clean_and_its_defaults_match_the_default_params():
    nb = nbformat.read(NB07, as_version=4)
    assert nb.metadata.kernelspec.name == "landmarks" and nb.cells[0].source.startswith("# 07")
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    params = _parameters(NB07)
    assert {"holdout_landmarks", "beyond_epochs", "embedding_dim", "retrieval_k", "n_bootstrap"} <= set(params)
    assert config.BeyondConfig.from_params(params) == config.BeyondConfig()  # params/default.yaml sets none of them
    defaults = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    assert {k: (params[k], defaults[k]) for k in params if k in defaults and params[k] != defaults[k]} == {}
    modern = yaml.safe_load((ROOT / "params" / "modern.yaml").read_text())
    assert (modern["optimizer"], modern["lr_schedule"], modern["augment"]) == ("adamw", "warmup_cosine", "photo")


@pytest.fixture(scope="module")
def nb07(tmp_path_factory, run_notebook) -> Path:
    """Notebook 07 executed once with tiny parameters; its folder (``reports/``, ``models/``, ``test/``)."""
    folder = tmp_path_factory.mktemp("nb07")
    run_notebook("07", folder / "07.ipynb", nb07_tiny_parameters(folder))
    return folder


def _summary(folder: Path) -> dict:
    return json.loads((folder / "reports" / "metrics" / "07_beyond.json").read_text())


@pytest.mark.slow
def test_notebook_07_trains_every_method_and_scores_them_open_set(nb07):
    reports = nb07 / "reports"
    m = _summary(nb07)
    assert len(m["held_out"]) == 1 and m["held_out"][0] in LANDMARKS
    assert (m["n_queries"], m["n_open"], m["n_closed"], m["n_known"]) == (12, 3, 9, 3)
    assert list(m["methods"]) == ["study", "modern", "retrieval"]
    for name, row in m["methods"].items():
        assert all(key in row for key in METHOD_KEYS), (name, [k for k in METHOD_KEYS if k not in row])
        assert row["closed_top1_low"] <= row["closed_top1"] <= row["closed_top1_high"]
        assert 0 <= row["closed_top1"] <= row["closed_top5"] <= 1 and 0 <= row["open_gap"] <= row["closed_gap"] + 1e-9
        assert ("open_gap_diff" in row) == (name != "study")
    assert "warmup" in m["methods"]["modern"]["recipe"] and "arcface" in m["methods"]["retrieval"]["recipe"]
    for name, curve in m["gap_curves"].items():
        gaps = [g for g in curve["gap"] if g is not None]
        assert all(a >= b - 1e-12 for a, b in zip(gaps, gaps[1:])), name  # GAP never rises with the threshold
    assert "NumPy" in m["index"] and m["projection"] in ("t-SNE", "PCA")
    assert sorted(Path(f).name for f in m["figures"]) == ["07_embeddings.png", "07_neighbours.png", "07_open_gap.png"]
    assert all((reports / f).is_file() for f in m["figures"])
    assert (nb07 / "models" / "beyond" / "retrieval.index.npz").is_file()
    for name, row in m["methods"].items():  # each model keeps the threshold it answers at, for `landmarks predict`
        kept = json.loads((nb07 / "models" / "beyond" / f"{name}.threshold.json").read_text())
        assert kept["threshold"] == row["threshold"] and kept["chosen_on"].endswith("validation queries"), name
    assert m["n_test_ids"] == 12 and m["unreadable"] == {}
    for name, sub in m["submissions"].items():
        rows = (reports / sub).read_text().splitlines()
        assert rows[0] == "id,landmarks" and len(rows) == 13, name


def _plain_gap(answers: list[tuple[float, str, bool]], n_landmarks: int) -> float:
    """GAP by hand: answers (confidence, image id, right) ranked by confidence, then id; the precision at each
    right answer, summed, over the images showing a known landmark."""
    total, right_so_far = 0.0, 0
    for rank, (_, _, right) in enumerate(sorted(answers, key=lambda a: (-a[0], a[1])), start=1):
        if right:
            right_so_far += 1
            total += right_so_far / rank
    return total / n_landmarks


def _ratio(numerator: int, denominator: int):
    """A share as the JSON holds it: None where nothing is counted (NaN is written as null)."""
    return numerator / denominator if denominator else None


def _same(got, want) -> bool:
    return got is None if want is None else got is not None and math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.slow
def test_notebook_07_answered_scores_and_gap_curves_are_its_submissions_rescored_by_hand(nb07):
    m = _summary(nb07)
    with open(nb07 / "test" / "solution.csv", newline="") as f:
        truth = {row["id"]: int(row["landmark_id"]) for row in csv.DictReader(f)}
    known = set(LANDMARKS) - set(m["held_out"])
    n_queries, n_closed = len(truth), sum(t in known for t in truth.values())
    assert (m["n_queries"], m["n_closed"], m["n_open"], m["n_known"]) == (
        n_queries,
        n_closed,
        n_queries - n_closed,
        len(known),
    )
    checked = 0
    for name, row in m["methods"].items():
        with open(nb07 / "reports" / m["submissions"][name], newline="") as f:
            submitted = list(csv.DictReader(f))
        assert sorted(r["id"] for r in submitted) == sorted(truth), name
        # each answer: (confidence as written, 6 decimals; id; right = its landmark is the image's known landmark)
        answers = []
        for r in submitted:
            if r["landmarks"]:
                landmark, confidence = r["landmarks"].split()
                answers.append((float(confidence), r["id"], int(landmark) == truth[r["id"]] and int(landmark) in known))
        assert all(c >= row["threshold"] - 5e-7 for c, _, _ in answers), name  # only answers at the threshold
        n_right = sum(right for _, _, right in answers)
        assert _same(row["answered_share"], len(answers) / n_queries), (name, row["answered_share"], len(answers))
        assert _same(row["answered_precision"], _ratio(n_right, len(answers))), (name, row["answered_precision"])
        # Above the threshold the GAP curve sees exactly the submitted answers. Skipped: grid points within 1e-6
        # of a written confidence (rounding could move it across), and the GAP where rounding made a tie.
        curve = m["gap_curves"][name]
        for t, gap, share, precision in zip(
            curve["threshold"], curve["gap"], curve["answered_share"], curve["precision_answered"]
        ):
            if t < row["threshold"] + 1e-6 or any(abs(c - t) < 1e-6 for c, _, _ in answers):
                continue
            kept = [a for a in answers if a[0] >= t]
            assert _same(share, len(kept) / n_queries), (name, t, share, len(kept))
            assert _same(precision, _ratio(sum(r for _, _, r in kept), len(kept))), (name, t, precision)
            tied = [c for c, _, _ in kept]
            if len(set(tied)) == len(tied):
                assert _same(gap, _plain_gap(kept, n_closed)), (name, t, gap, kept)
            checked += 1
    assert checked > 0  # at least one grid point above some method's threshold was recomputed


@pytest.mark.slow
def test_notebook_07_headline_numbers_agree_with_each_other(nb07):
    m = _summary(nb07)
    methods, n_queries, n_closed = m["methods"], m["n_queries"], m["n_closed"]
    study = methods["study"]
    for name, row in methods.items():
        # the paired differences are each method's value minus the study's, metric by metric
        for metric in openset.METRICS:
            if name != "study" and row[metric] is not None and study[metric] is not None:
                assert _same(row[f"{metric}_diff"], row[metric] - study[metric]), (name, metric)
        # the shares are counts of images: top-1 and top-5 of the closed queries, answers of all queries
        for metric, n in (("closed_top1", n_closed), ("closed_top5", n_closed), ("answered_share", n_queries)):
            assert abs(row[metric] * n - round(row[metric] * n)) < 1e-9, (name, metric, row[metric])
        # every method answers every query (confidences in [0, 1]): at threshold 0 the curve is the headline
        # open-set GAP, every query is answered, and its right answers are the closed top-1 hits
        curve = m["gap_curves"][name]
        assert curve["threshold"][0] == 0.0 and curve["answered_share"][0] == 1.0, name
        assert _same(curve["gap"][0], row["open_gap"]), (name, curve["gap"][0], row["open_gap"])
        assert _same(curve["precision_answered"][0] * n_queries, row["closed_top1"] * n_closed), name
        # GAP sums precisions of at most the right answers: open GAP <= closed GAP <= closed top-1
        assert row["open_gap"] <= row["closed_gap"] + 1e-12 and row["closed_gap"] <= row["closed_top1"] + 1e-12, name


# --------------------------------------------------------------------------- the scoring, by hand

# Six test images; the methods know landmarks 1, 2 and 3 (3 has no test image). q4 shows landmark 9, held out
# of training (no right answer); q5 shows no landmark. Closed queries: q0..q3 (4); open: q4, q5.
IDS = ["a7", "b2", "f1", "c9", "d4", "e6"]  # the image ids of q0..q5: q3's sorts before q2's
ACTUAL = np.array([1, 1, 2, 2, 9, -1])
KNOWN_IDS = [1, 2, 3]
# study, threshold 0.5:      q0 1@0.9 right  q1 2@0.8 wrong  q2 2@0.7 right  q3 1@0.3 wrong  q4 1@0.85  q5 2@0.2
#   top-5 lists hold the truth for q0, q2, q3 (not q1: [2, 3])
#   closed top-1 2/4; top-5 3/4
#   closed GAP: ranked q0 (right, P=1/1) q1 q2 (right, P=2/3) q3 -> (1 + 2/3) / 4 = 5/12
#   open GAP: ranked q0 (right, 1/1) q4 q1 q2 (right, 2/4) q3 q5 -> (1 + 1/2) / 4 = 3/8
#   answered (>= 0.5): q0 q4 q1 q2 -> share 4/6 = 2/3; right q0 q2 -> precision 2/4 = 1/2
STUDY = openset.Predictions(
    landmark=np.array([1, 2, 2, 1, 1, 2]),
    confidence=np.array([0.9, 0.8, 0.7, 0.3, 0.85, 0.2]),
    top5=np.array(
        [
            [1, 2, -1, -1, -1],
            [2, 3, -1, -1, -1],
            [2, 1, -1, -1, -1],
            [1, 2, 3, -1, -1],
            [1, 2, 3, -1, -1],
            [2, 1, 3, -1, -1],
        ]
    ),
    threshold=0.5,
)
# retrieval, threshold 0.5:  q0 1@0.95 right  q1 1@0.4 right  q2 1@0.9 wrong  q3 2@0.9 right  q4 2@0.1  q5 1@0.6
#   q2 and q3 tie at 0.9: the image id breaks it, q3 (c9) before q2 (f1); in row order (q2 first) the closed
#   GAP would be (1 + 2/3 + 3/4) / 4 = 29/48 and the open GAP (1 + 2/3 + 3/5) / 4 = 17/30
#   closed top-1 3/4; top-5 4/4 (q2's list [1, 2] holds its landmark)
#   closed GAP: q0 (right, 1/1) q3 (right, 2/2) q2 q1 (right, 3/4) -> (1 + 1 + 3/4) / 4 = 11/16
#   open GAP: q0 (right, 1/1) q3 (right, 2/2) q2 q5 q1 (right, 3/5) q4 -> (1 + 1 + 3/5) / 4 = 13/20
#   answered (>= 0.5): q0 q2 q3 q5 -> share 4/6 = 2/3; right q0 q3 -> precision 2/4 = 1/2
RETRIEVAL = openset.Predictions(
    landmark=np.array([1, 1, 1, 2, 2, 1]),
    confidence=np.array([0.95, 0.4, 0.9, 0.9, 0.1, 0.6]),
    top5=np.array(
        [
            [1, -1, -1, -1, -1],
            [1, -1, -1, -1, -1],
            [1, 2, -1, -1, -1],
            [2, -1, -1, -1, -1],
            [2, -1, -1, -1, -1],
            [1, -1, -1, -1, -1],
        ]
    ),
    threshold=0.5,
)
BY_HAND = {
    "study": dict(
        closed_top1=2 / 4, closed_top5=3 / 4, closed_gap=5 / 12, open_gap=3 / 8, answered_share=2 / 3,
        answered_precision=1 / 2,
    ),
    "retrieval": dict(
        closed_top1=3 / 4, closed_top5=4 / 4, closed_gap=11 / 16, open_gap=13 / 20, answered_share=2 / 3,
        answered_precision=1 / 2,
    ),
}  # fmt: skip


def test_the_scores_notebook_07_writes_on_a_six_query_case_worked_out_by_hand(tmp_path):
    from landmarklib import recognition

    preds = {"study": STUDY, "retrieval": RETRIEVAL}
    ids = np.array(IDS, object)  # as the notebook passes them: queries["id"].to_numpy()
    runs = {
        name: SimpleNamespace(
            recipe=name, result=SimpleNamespace(val_top1=0.5, epochs_run=1, best_epoch=1), seconds=60.0, threshold=0.5
        )
        for name in preds
    }
    boot = openset.bootstrap(preds, ACTUAL, KNOWN_IDS, ids, n_boot=50, seed=3, reference="study")
    rows = {r["method"]: r for r in recognition.method_rows(recognition.Outcome(runs=runs, bootstrap=boot))}
    assert list(rows) == ["study", "retrieval"]
    for name, want in BY_HAND.items():
        for metric, value in want.items():
            assert rows[name][metric] == pytest.approx(value, abs=1e-12), (name, metric)
            assert rows[name][f"{metric}_low"] <= rows[name][f"{metric}_high"], (name, metric)
        assert rows[name]["threshold"] == 0.5 and rows[name]["train_minutes"] == 1.0
    # retrieval minus study: 1/4, 1/4, 11/16 - 5/12 = 13/48, 13/20 - 3/8 = 11/40, 0, 0; only in retrieval's row
    diffs = dict(
        closed_top1=1 / 4, closed_top5=1 / 4, closed_gap=13 / 48, open_gap=11 / 40, answered_share=0,
        answered_precision=0,
    )  # fmt: skip
    for metric, value in diffs.items():
        assert rows["retrieval"][f"{metric}_diff"] == pytest.approx(value, abs=1e-12), metric
        assert f"{metric}_diff" not in rows["study"]

    # the open-set GAP curve (answers at or above each threshold):
    #   study      0: all, right q0 q2 -> GAP 3/8, precision 2/6;  0.5: q0 q4 q1 q2 -> 3/8, 2/4;
    #              0.75: q0 q4 q1 -> 1/4, 1/3;  0.95: none -> 0, no precision
    #   retrieval  0: 13/20, 3/6;  0.5: q0 q3 q2 q5 -> (1 + 1) / 4 = 1/2, 2/4;  0.75: q0 q3 q2 -> 1/2, 2/3;
    #              0.95: q0 -> 1/4, 1/1
    curves = {
        "study": ([3 / 8, 3 / 8, 1 / 4, 0], [1, 4 / 6, 3 / 6, 0], [2 / 6, 2 / 4, 1 / 3, math.nan]),
        "retrieval": ([13 / 20, 1 / 2, 1 / 2, 1 / 4], [1, 4 / 6, 3 / 6, 1 / 6], [3 / 6, 2 / 4, 2 / 3, 1]),
    }
    for name, (gap, share, precision) in curves.items():
        curve = openset.gap_curve(preds[name], ACTUAL, KNOWN_IDS, [0, 0.5, 0.75, 0.95], ids=ids)
        np.testing.assert_allclose(curve["gap"], gap, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(curve["answered_share"], share, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(curve["precision_answered"], precision, atol=1e-12, err_msg=name)

    # the submissions: every id, "<landmark> <confidence>" for the answers at or above the threshold
    queries = pd.DataFrame({"id": IDS})
    written = recognition.write_submissions(recognition.Outcome(predictions=preds), queries, tmp_path)
    assert written == {"study": "submissions/07_study.csv", "retrieval": "submissions/07_retrieval.csv"}
    # (rows in query order: q0..q5 are a7 b2 f1 c9 d4 e6)
    study = (tmp_path / written["study"]).read_text().splitlines()
    assert study == ["id,landmarks", "a7,1 0.900000", "b2,2 0.800000", "f1,2 0.700000", "c9,", "d4,1 0.850000", "e6,"]
    retrieval = (tmp_path / written["retrieval"]).read_text().splitlines()
    assert retrieval == [
        "id,landmarks",
        "a7,1 0.950000",
        "b2,",
        "f1,1 0.900000",
        "c9,2 0.900000",
        "d4,",
        "e6,1 0.600000",
    ]
