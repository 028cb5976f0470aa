"""`landmarks score`: a Kaggle submission against either solution form, checked against a plain reference."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from landmarklib import catalog, cli, evaluate, predict, scoring

ROOT = Path(__file__).resolve().parents[2]


def reference_gap(answers: dict[str, tuple[int, float] | None], truth: dict[str, set[int]]) -> float:
    """The competition's GAP, written plainly: answers sorted by confidence (ties by id), then
    sum of precision-at-i over the right answers, over the number of images showing a landmark."""
    ranked = sorted((-conf, image_id, lid) for image_id, a in answers.items() if a is not None for lid, conf in [a])
    right_so_far, total = 0, 0.0
    for i, (_, image_id, lid) in enumerate(ranked, start=1):
        if lid in truth[image_id]:
            right_so_far += 1
            total += right_so_far / i
    return total / sum(1 for t in truth.values() if t)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SOLUTION = """id,landmarks,Usage
a,1 2,Public
b,3,Public
c,,Public
d,4,Private
e,5 6,Private
f,7,Ignored
"""
SUBMISSION = """id,landmarks
a,2 0.9
b,9 0.8
c,1 0.95
d,4 0.5
e,
f,7 0.99
"""


def test_a_hand_made_case_with_several_landmarks_no_landmark_and_ignored_rows(tmp_path):
    scores = scoring.score_files(write(tmp_path / "sub.csv", SUBMISSION), write(tmp_path / "sol.csv", SOLUTION))
    assert list(scores) == ["all", "Public", "Private"]
    # all (f is Ignored): ranked c (wrong: no landmark), a (right: 2 is one of 1 2), b (wrong), d (right);
    # GAP = (1/2 + 2/4) / 4 images showing a landmark (a, b, d, e) = 0.25. Had f counted (right, first):
    # (1 + 2/3 + 3/5) / 5 = 0.453.
    a = scores["all"]
    assert a["gap"] == pytest.approx(0.25, abs=1e-12)
    assert (a["top1"], a["answered_share"], a["precision"]) == (0.5, 0.8, 0.5)  # 2/4, 4/5, 2/4
    assert (a["n_images"], a["n_landmark_images"], a["n_answered"], a["n_right"]) == (5, 4, 4, 2)
    # Public (a, b, c): c wrong, a right at rank 2: (1/2) / 2 = 0.25; precision 1/3
    p = scores["Public"]
    assert p["gap"] == pytest.approx(0.25, abs=1e-12) and p["precision"] == pytest.approx(1 / 3, abs=1e-12)
    assert (p["top1"], p["answered_share"], p["n_images"]) == (0.5, 1.0, 3)
    # Private (d, e): d right at rank 1: 1 / 2 = 0.5; e unanswered
    q = scores["Private"]
    assert (q["gap"], q["top1"], q["answered_share"], q["precision"]) == (0.5, 0.5, 0.5, 1.0)


def random_case(rng: np.random.Generator, n: int):
    ids = [f"{v:05x}" for v in rng.choice(16**5, n, replace=False)]
    truth = {i: set(rng.choice(8, rng.integers(0, 3), replace=False).tolist()) for i in ids}
    conf = np.round(rng.random(n), 1)  # coarse: many equal confidences, ordered by id
    answers = {i: (int(rng.integers(0, 8)), float(c)) if rng.random() < 0.8 else None for i, c in zip(ids, conf)}
    usage = {i: rng.choice(catalog.USAGES) for i in ids}
    return ids, truth, answers, usage


def as_files(tmp_path: Path, ids, truth, answers, usage) -> tuple[Path, Path]:
    sol = ["id,landmarks,Usage"] + [f"{i},{' '.join(map(str, sorted(truth[i])))},{usage[i]}" for i in ids]
    sub = ["id,landmarks"] + [f"{i},{'' if answers[i] is None else f'{answers[i][0]} {answers[i][1]}'}" for i in ids]
    return write(tmp_path / "sub.csv", "\n".join(sub) + "\n"), write(tmp_path / "sol.csv", "\n".join(sol) + "\n")


@pytest.mark.parametrize("seed", range(40))
def test_scores_agree_with_the_plain_reference_on_random_cases(tmp_path, seed):
    rng = np.random.default_rng(seed)
    ids, truth, answers, usage = random_case(rng, int(rng.integers(5, 60)))
    scores = scoring.score_files(*as_files(tmp_path, ids, truth, answers, usage))
    for scope in ("all", "Public", "Private"):
        keep = [i for i in ids if usage[i] != "Ignored" and scope in ("all", usage[i])]
        t = {i: truth[i] for i in keep}
        got = scores[scope]
        showing = [i for i in keep if t[i]]
        answered = [i for i in keep if answers[i] is not None]
        right = [i for i in answered if answers[i][0] in t[i]]
        expected_gap = reference_gap({i: answers[i] for i in keep}, t) if showing else math.nan
        assert got["gap"] == pytest.approx(expected_gap, abs=1e-12, nan_ok=True), (seed, scope)
        assert got["top1"] == pytest.approx(len(right) / len(showing) if showing else math.nan, nan_ok=True)
        assert got["answered_share"] == pytest.approx(len(answered) / len(keep) if keep else math.nan, nan_ok=True)
        assert got["precision"] == pytest.approx(len(right) / len(answered) if answered else math.nan, nan_ok=True)
        assert (got["n_images"], got["n_landmark_images"], got["n_answered"]) == (
            len(keep),
            len(showing),
            len(answered),
        )


def test_one_landmark_per_image_gives_evaluate_gap(tmp_path):
    rng = np.random.default_rng(11)
    ids = [f"q{i:03d}" for i in range(80)]
    actual = [int(v) if v < 6 else None for v in rng.integers(0, 8, 80)]  # ~1/4 without a landmark
    predicted = [int(v) if rng.random() < 0.9 else None for v in rng.integers(0, 6, 80)]
    conf = np.round(rng.random(80), 1)
    sol = write(
        tmp_path / "sol.csv",
        "id,landmark_id\n" + "".join(f"{i},{'' if a is None else a}\n" for i, a in zip(ids, actual)),
    )
    sub = predict.write_submission(
        pd.DataFrame({"id": ids, "landmark_id": pd.array(predicted, dtype="Int64"), "confidence": conf}),
        tmp_path / "sub.csv",
        threshold=0.0,
    )
    got = scoring.score_files(sub, sol)
    assert list(got) == ["all"]  # no Usage column: one scope
    answered_conf = np.where([p is None for p in predicted], np.nan, conf)
    # the submission rounds confidences to 6 places; these have one
    assert got["all"]["gap"] == pytest.approx(evaluate.gap(predicted, answered_conf, actual, ids), abs=1e-12)


def test_a_submission_must_answer_every_id_exactly_once(tmp_path):
    sol = write(tmp_path / "sol.csv", SOLUTION)
    missing = write(tmp_path / "missing.csv", "\n".join(SUBMISSION.splitlines()[:-2]) + "\n")  # e and f left out
    with pytest.raises(scoring.SubmissionError, match=r"missing from the submission: 2 \('e', 'f'\)"):
        scoring.score_files(missing, sol)
    twice = write(tmp_path / "twice.csv", SUBMISSION + "b,3 0.1\n")
    with pytest.raises(
        catalog.CatalogError, match=r"twice.csv, line 8, column id: id 'b' is given twice \(first on line 3\)"
    ):
        scoring.score_files(twice, sol)
    unknown = write(tmp_path / "unknown.csv", SUBMISSION + "zz,3 0.1\n")
    with pytest.raises(scoring.SubmissionError, match=r"not in the solution: 1 \('zz'\)"):
        scoring.score_files(unknown, sol)
    for cell, line in (("3", 3), ("3 high", 3), ("3 0.5 4 0.2", 3), ("x 0.5", 3), ("3 nan", 3)):
        bad = write(tmp_path / "bad.csv", SUBMISSION.replace("b,9 0.8", f"b,{cell}"))
        with pytest.raises(catalog.CatalogError, match=rf"line {line}, column landmarks: '{cell}' is not"):
            catalog.read_submission(bad)
    with pytest.raises(catalog.CatalogError, match=r"column Usage: 'Hidden' is not one of Public, Private, Ignored"):
        catalog.read_solution(write(tmp_path / "usage.csv", SOLUTION.replace("d,4,Private", "d,4,Hidden")))


def test_the_command_prints_each_leaderboard_and_json_and_refuses_in_one_line(tmp_path, capsys):
    sub, sol = write(tmp_path / "sub.csv", SUBMISSION), write(tmp_path / "sol.csv", SOLUTION)
    assert cli.main(["score", str(sub), str(sol)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["GAP", "top-1", "answered", "precision", "images", "landmark"]
    assert lines[1].split() == ["all", "0.2500", "50.0%", "80.0%", "50.0%", "5", "4"]
    assert lines[2].split()[:2] == ["Public", "0.2500"] and lines[3].split()[:2] == ["Private", "0.5000"]
    assert cli.main(["score", str(sub), str(sol), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["Private"]["gap"] == 0.5 and printed["all"]["n_right"] == 2
    assert cli.main(["score", str(write(tmp_path / "short.csv", "id,landmarks\na,1 0.5\n")), str(sol)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing from the submission: 5" in err


def test_the_score_command_imports_no_keras(tmp_path):
    sub, sol = write(tmp_path / "sub.csv", SUBMISSION), write(tmp_path / "sol.csv", SOLUTION)
    code = (
        "import sys; from landmarklib import cli; rc = cli.main(['score', sys.argv[1], sys.argv[2]]);"
        "heavy = sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules);"
        "print('heavy:', heavy); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(sub), str(sol)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout


def test_evaluate_score_reads_several_landmarks_per_image_and_leaves_ignored_rows_out(tmp_path):
    """Notebooks 06 and 07 score with evaluate.score: on either solution form it agrees with `landmarks score`."""
    sol = write(tmp_path / "sol.csv", SOLUTION)
    sub = catalog.read_submission(write(tmp_path / "sub.csv", SUBMISSION))
    pred = sub.assign(top_ids=["2 9", "9 8 7", "1", "3 4", "", "7"])
    got = evaluate.score(pred, sol, threshold=0.0)
    expected = scoring.score_files(tmp_path / "sub.csv", sol)["all"]
    assert got["gap"] == pytest.approx(expected["gap"], abs=1e-12) == 0.25
    assert got["top1"] == expected["top1"] == 0.5 and got["n_test"] == 5  # f (Ignored) left out
    assert got["answered_precision"] == expected["precision"] == 0.5
    assert got["top5"] == 0.5  # a: 2 (its second landmark), b: no, d: 4 (second place), e: no answer -> 2 of 4
