"""Scoring a Kaggle recognition submission against a solution: ``landmarks score``. No Keras here.

A submission (``catalog.read_submission``) answers each test image with at most one landmark
and a confidence. A solution (``catalog.read_solution``) gives each image zero or more true
landmarks (several in the 2019-2021 competitions and GLDv2: an answer is right when it is
any of them; none: the image shows no landmark) and, in those competitions, a ``Usage``:
``Public`` and ``Private`` images are scored on their own leaderboard, ``Ignored`` ones on
neither.

    GAP          the competition's metric: answers ranked by confidence (highest first,
                 equal confidences by image id), GAP = 1/M * sum_i P(i) * rel(i), where
                 P(i) is the precision of the first i answers, rel(i) whether answer i is
                 right, and M the number of images showing a landmark
    top-1        among the images showing a landmark, the share answered right
    answered     the share of images answered, and the precision of those answers

A submission must answer every solution id exactly once (an empty answer is an answer):
``check_ids`` refuses a missing, repeated or unknown id, naming it, as Kaggle would.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog, files

SCOPES = ("all", "Public", "Private")
"""The scores ``score`` gives: every scored image (Ignored left out), then each leaderboard when
the solution has a Usage column."""


class SubmissionError(ValueError):
    """A submission Kaggle would refuse: ``str(error)`` says which ids and why, in one line."""


def id_rank(ids, n: int) -> np.ndarray:
    """Rank of each image id in ascending order (GAP's tie-break among equal confidences).

    Ids compare as text (``"10" < "9"``); ``None`` gives the index order.
    """
    if ids is None:
        return np.arange(n)
    arr = np.asarray(ids)
    if arr.shape != (n,):
        raise ValueError(f"ids has shape {arr.shape}, expected ({n},)")
    if arr.dtype == object:
        arr = arr.astype(str)
    return np.unique(arr, return_inverse=True)[1].ravel()


def gap_from_ranked(correct_sorted: np.ndarray, n_landmarks: int) -> float:
    """GAP of answers already in ranking order (``correct_sorted``: whether each is right).

    Raises:
        ValueError: no image shows a landmark (``n_landmarks`` is 0): GAP is undefined.
    """
    if n_landmarks <= 0:
        raise ValueError("no test image shows a landmark: GAP is undefined")
    hits = np.asarray(correct_sorted, dtype=np.float64)
    precision_at_i = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at_i * hits).sum() / n_landmarks)


def check_ids(submission: pd.DataFrame, solution: pd.DataFrame) -> None:
    """Refuse a submission that does not answer every solution id exactly once.

    Raises:
        SubmissionError: naming up to five missing, repeated or unknown ids and how many there are.
    """

    def named(ids: Iterable[str]) -> str:
        ids = sorted(ids)
        shown = ", ".join(repr(i) for i in ids[:5])
        return f"{len(ids)} ({shown}{', ...' if len(ids) > 5 else ''})"

    given = submission["id"].astype(str)
    repeated = given[given.duplicated()].unique()
    if len(repeated):
        raise SubmissionError(f"ids given more than once: {named(repeated)}; one answer per image")
    wanted = set(solution["id"].astype(str))
    missing, unknown = wanted - set(given), set(given) - wanted
    if missing:
        raise SubmissionError(f"ids of the solution missing from the submission: {named(missing)}")
    if unknown:
        raise SubmissionError(f"ids not in the solution: {named(unknown)}")


def _scores(table: pd.DataFrame) -> dict:
    """The scores of one scope: ``table`` has id, landmark_id (answer), confidence, landmarks (truth)."""
    answered = table["landmark_id"].notna().to_numpy()
    truth = table["landmarks"].tolist()
    shows = np.array([len(t) > 0 for t in truth], bool)
    right = np.array([ok and int(a) in t for a, t, ok in zip(table["landmark_id"], truth, answered)], bool)
    conf = table["confidence"].to_numpy(np.float64)
    rows = np.flatnonzero(answered)
    order = rows[np.lexsort((id_rank(table["id"].to_numpy(), len(table))[rows], -conf[rows]))]
    n_landmark = int(shows.sum())
    return {
        "gap": gap_from_ranked(right[order], n_landmark) if n_landmark else math.nan,
        "top1": float(right[shows].mean()) if n_landmark else math.nan,
        "answered_share": float(answered.mean()) if len(table) else math.nan,
        "precision": float(right[answered].mean()) if answered.any() else math.nan,
        "n_images": int(len(table)),
        "n_landmark_images": n_landmark,
        "n_answered": int(answered.sum()),
        "n_right": int(right.sum()),
    }


def score(submission: pd.DataFrame, solution: pd.DataFrame) -> dict[str, dict]:
    """The scores of a submission, overall and per leaderboard.

    Args:
        submission: ``catalog.read_submission``'s frame (id, landmark_id, confidence).
        solution: ``catalog.read_solution``'s frame (id, landmarks, usage).

    Returns:
        ``{"all": scores, "Public": scores, "Private": scores}`` (the last two only when the
        solution has a Usage); Ignored images are in none of them. Each ``scores`` holds gap,
        top1, answered_share, precision (NaN where undefined) and the counts n_images,
        n_landmark_images, n_answered, n_right.

    Raises:
        SubmissionError: as ``check_ids``.
    """
    check_ids(submission, solution)
    table = (
        solution[["id", "landmarks", "usage"]]
        .astype({"id": str})
        .merge(submission[["id", "landmark_id", "confidence"]].astype({"id": str}), on="id", how="left", validate="1:1")
    )
    table = table[table["usage"] != "Ignored"]
    result = {"all": _scores(table)}
    if (table["usage"] != "").any():
        for usage in ("Public", "Private"):
            result[usage] = _scores(table[table["usage"] == usage])
    return result


def score_files(submission: str | os.PathLike, solution: str | os.PathLike) -> dict[str, dict]:
    """``score`` of two CSV files (``catalog.read_submission``, ``catalog.read_solution``)."""
    return score(catalog.read_submission(submission), catalog.read_solution(solution))


def format_scores(scores: dict[str, dict]) -> str:
    """The scores as a small text table, one line per scope."""
    lines = [f"{'':8} {'GAP':>7} {'top-1':>7} {'answered':>9} {'precision':>9} {'images':>7} {'landmark':>8}"]

    def number(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.4f}"

    def share(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1%}"

    for scope, s in scores.items():
        lines.append(
            f"{scope:8} {number(s['gap']):>7} {share(s['top1']):>7} {share(s['answered_share']):>9} "
            f"{share(s['precision']):>9} {s['n_images']:>7} {s['n_landmark_images']:>8}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- a model's own threshold

THRESHOLD_FORMAT = "landmarks-threshold"


def threshold_path(model_path: str | os.PathLike) -> Path:
    """Where a model's answering threshold lives: ``<name>.threshold.json`` beside ``<name>.keras``."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".keras") + ".threshold.json")


def save_threshold(model_path: str | os.PathLike, threshold: float, chosen_on: str) -> Path:
    """Keep the threshold a model was given beside it (``threshold_path``), with what it was chosen on."""
    return files.write_json(
        threshold_path(model_path), {"format": THRESHOLD_FORMAT, "threshold": float(threshold), "chosen_on": chosen_on}
    )


def model_threshold(model_path: str | os.PathLike, given: float | None, default: float) -> tuple[float, str]:
    """The threshold a model answers at, and where it came from (for the user to read).

    ``given`` (``--threshold``) wins; then the model's own (``save_threshold``); then ``default``
    (the study's 4.5%, meant for a classifier's probability).

    Raises:
        ValueError: the model's threshold file exists but is not one.
    """
    if given is not None:
        return float(given), "given"
    path = threshold_path(model_path)
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("format") != THRESHOLD_FORMAT:
                raise ValueError("wrong format")
            return float(saved["threshold"]), f"the model's own, chosen on {saved['chosen_on']} ({path.name})"
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a threshold file written by scoring.save_threshold ({err})") from err
    return float(default), "the study's default (no threshold file beside the model)"


# --------------------------------------------------------------------------- command line


def add_cli(subparsers) -> None:
    """The ``landmarks score`` subcommand."""
    p = subparsers.add_parser(
        "score",
        help="score a Kaggle submission against a solution (GAP, top-1, answered share, precision)",
        description=(
            "Score SUBMISSION (id,landmarks: '<landmark_id> <confidence>' or empty) against SOLUTION "
            "(id,landmark_id, or id,landmarks[,Usage] with several landmarks per image). With Usage, "
            "Public and Private are scored separately and Ignored images are left out."
        ),
    )
    p.add_argument("submission", help="the submission CSV (id,landmarks)")
    p.add_argument("solution", help="the solution CSV (id,landmark_id or id,landmarks[,Usage])")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    try:
        scores = score_files(args.submission, args.solution)
    except (catalog.CatalogError, SubmissionError) as err:
        print(f"landmarks score: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    k: {n: (None if isinstance(v, float) and math.isnan(v) else v) for n, v in s.items()}
                    for k, s in scores.items()
                },
                indent=2,
            )
        )
    else:
        print(format_scores(scores))
    return 0
