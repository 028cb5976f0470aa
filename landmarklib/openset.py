"""Closed- and open-set scores of recognition methods, with paired bootstrap intervals.

The open split (``data.load_open_split``) holds some landmarks out of training entirely.
Their test images, and any test image of no landmark, are queries with no right answer;
the other test images are *closed* queries. For each method (one prediction per test
image: a landmark id, a confidence and the five best landmark ids):

    closed top-1, top-5   on the closed queries; top-5 is strict: the five best classes by
                          score, equal scores ordered by class index (``evaluate.strict_top_k``)
    closed GAP            GAP of the closed queries, every prediction answered
    open GAP              GAP of all queries (``evaluate.gap``'s definition: ranked by confidence,
                          denominator the closed queries), every prediction answered; a confident
                          answer to an unknown landmark pushes every answer below it down
    answered share,       at the method's threshold: the share of all queries answered, and the
    precision             share of those answers that are right

Thresholds are chosen per method (their confidences live on different scales) on
validation queries, never on the test set: ``choose_threshold`` maximises right minus
wrong answers.

Intervals: ``bootstrap`` resamples the test images with replacement (``n_boot`` times,
seeded) and recomputes every score on each resample; the same resamples serve every
method, so the difference between two methods gets a paired interval. 95% intervals are
the 2.5th and 97.5th percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import evaluate, scoring

METRICS = ("closed_top1", "closed_top5", "closed_gap", "open_gap", "answered_share", "answered_precision")


@dataclass
class Predictions:
    """One method's answers, one row per test image (in the truth's order).

    Attributes:
        landmark: predicted landmark id (-1: no prediction).
        confidence: its confidence (NaN: no prediction).
        top5: (N, 5) landmark ids, best first (-1 pads).
        threshold: the method's answering threshold.
    """

    landmark: np.ndarray
    confidence: np.ndarray
    top5: np.ndarray
    threshold: float = 0.0
    extra: dict = field(default_factory=dict)


def truth_arrays(actual, known_ids) -> tuple[np.ndarray, np.ndarray]:
    """(actual landmark per image, -1 for none; whether it is a known landmark)."""
    actual = pd.to_numeric(pd.Series(actual, dtype=object).replace("", None), errors="coerce")
    actual = actual.fillna(-1).astype(np.int64).to_numpy()
    known = np.isin(actual, np.asarray(list(known_ids), np.int64)) & (actual >= 0)
    return actual, known


def from_scores(scores: np.ndarray, confidence: np.ndarray, landmark_ids, threshold: float = 0.0) -> Predictions:
    """``Predictions`` from class scores (N, C): the strict top-1 and top-5 classes, and the given confidence."""
    ids = np.asarray(landmark_ids, np.int64)
    top = evaluate.strict_top_k(scores, 5)
    top5 = np.full((len(scores), 5), -1, np.int64)
    top5[:, : top.shape[1]] = ids[top]
    return Predictions(
        landmark=top5[:, 0].copy(), confidence=np.asarray(confidence, np.float64), top5=top5, threshold=float(threshold)
    )


def choose_threshold(confidence, correct) -> float:
    """The threshold maximising (right answers - wrong answers) among the answers at or above it.

    Ties go to the lowest such threshold; 0.0 when no answer is right.
    """
    conf = np.asarray(confidence, np.float64)
    hit = np.asarray(correct, bool)
    ok = np.isfinite(conf)
    conf, hit = conf[ok], hit[ok]
    if not len(conf) or not hit.any():
        return 0.0
    order = np.argsort(-conf, kind="stable")
    net = np.cumsum(np.where(hit[order], 1, -1))
    sorted_conf = conf[order]
    # only cut between distinct confidences: the answers at or above t form a prefix
    last_of_value = np.r_[sorted_conf[1:] != sorted_conf[:-1], True]
    cuts = np.flatnonzero(last_of_value)
    best = cuts[len(cuts) - 1 - np.argmax(net[cuts][::-1])]  # the last (lowest) of the best cuts
    return float(sorted_conf[best])


def _weighted_gap(hit_sorted: np.ndarray, weights: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    """GAP of ranked predictions where row i appears ``weights[b, i]`` times in resample b.

    Args:
        hit_sorted: (N,) correctness in ranking order.
        weights: (B, N) copies of each row per resample (copies of one row are adjacent).
        denominators: (B,) images showing a known landmark in each resample.
    """
    w = weights.astype(np.float64)
    before_n = np.cumsum(w, axis=1) - w
    before_hits = np.cumsum(w * hit_sorted, axis=1) - w * hit_sorted
    total = np.zeros(len(w))
    for j in range(1, int(w.max(initial=0)) + 1):
        has = (w >= j) & hit_sorted[None, :]
        total += np.where(has, (before_hits + j) / np.maximum(before_n + j, 1), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominators > 0, total / np.maximum(denominators, 1), np.nan)


def _scores(pred: Predictions, actual: np.ndarray, known: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> dict:
    """Every metric of ``METRICS`` for each row of ``weights`` (B, N) (one row of ones: the plain scores)."""
    conf = np.where(pred.landmark >= 0, pred.confidence, np.nan)
    has = np.isfinite(conf)
    hit = has & known & (pred.landmark == actual)
    hit5 = known & (pred.top5 == actual[:, None]).any(axis=1)
    w = weights.astype(np.float64)
    wc = w * known
    n_closed = wc.sum(axis=1)
    rank = scoring.id_rank(ids, len(ids))  # evaluate.gap's tie-break: numbers in numeric order, text as text
    order = np.lexsort((rank, -np.where(has, conf, -np.inf)))
    order = order[has[order]]
    closed_order = order[known[order]]
    answered = has & (conf >= pred.threshold)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "closed_top1": (wc * hit).sum(axis=1) / n_closed,
            "closed_top5": (wc * hit5).sum(axis=1) / n_closed,
            "closed_gap": _weighted_gap(hit[closed_order], w[:, closed_order], n_closed),
            "open_gap": _weighted_gap(hit[order], w[:, order], n_closed),
            "answered_share": (w * answered).sum(axis=1) / w.sum(axis=1),
            "answered_precision": (w * (answered & hit)).sum(axis=1) / (w * answered).sum(axis=1),
        }
    return out


def score(pred: Predictions, actual, known_ids, ids=None) -> dict:
    """The scores of ``METRICS`` for one method (plain numbers; NaN where undefined).

    Args:
        pred: the method's predictions, in the order of ``actual``.
        actual: the true landmark per test image (None/-1/"" for no landmark).
        known_ids: the landmarks the method was trained on.
        ids: image ids (the GAP tie-break); default: the row order.
    """
    actual, known = truth_arrays(actual, known_ids)
    ids = np.arange(len(actual)) if ids is None else np.asarray(ids)
    out = _scores(pred, actual, known, ids, np.ones((1, len(actual))))
    result = {k: float(v[0]) for k, v in out.items()}
    # the GAPs by evaluate.gap itself (the bootstrap's weighted form gives the same on the plain set)
    answer = np.where(pred.landmark >= 0, pred.landmark.astype(object), None)
    truth = np.where(known, actual.astype(object), None)
    if known.any():
        result["open_gap"] = evaluate.gap(answer, pred.confidence, truth, ids)
        result["closed_gap"] = evaluate.gap(answer[known], pred.confidence[known], truth[known], ids[known])
    result.update(
        threshold=pred.threshold, n_queries=int(len(actual)), n_closed=int(known.sum()), n_open=int((~known).sum())
    )
    return result


def bootstrap(
    methods: dict[str, Predictions],
    actual,
    known_ids,
    ids=None,
    n_boot: int = 1000,
    seed: int = 0,
    reference: str | None = None,
    chunk: int = 200,
) -> pd.DataFrame:
    """Scores with 95% bootstrap intervals per method, and paired differences to ``reference``.

    Args:
        methods: name -> predictions (each in the order of ``actual``).
        actual, known_ids, ids: as ``score``.
        n_boot: resamples of the test images (with replacement), shared by every method.
        seed: seed of the resamples.
        reference: the method the others are compared with (default: the first).
        chunk: resamples computed at once (bounds the memory).

    Returns:
        One row per (method, metric): ``value`` (on the test set itself), ``low``, ``high``, and
        for methods other than the reference ``diff`` (method - reference), ``diff_low``, ``diff_high``.
    """
    actual, known = truth_arrays(actual, known_ids)
    n = len(actual)
    ids = np.arange(n) if ids is None else np.asarray(ids)
    names = list(methods)
    reference = reference or names[0]
    rng = np.random.default_rng(seed)
    draws = {name: {m: [] for m in METRICS} for name in names}
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        picks = rng.integers(0, n, size=(b, n))
        weights = np.zeros((b, n), np.int64)
        np.add.at(weights, (np.repeat(np.arange(b), n), picks.ravel()), 1)
        for name in names:
            for m, v in _scores(methods[name], actual, known, ids, weights).items():
                draws[name][m].append(v)
    rows = []
    for name in names:
        plain = score(methods[name], actual, known_ids, ids)
        for m in METRICS:
            d = np.concatenate(draws[name][m])
            row = {
                "method": name,
                "metric": m,
                "value": plain[m],
                "low": _percentile(d, 2.5),
                "high": _percentile(d, 97.5),
            }
            if name != reference:
                diff = d - np.concatenate(draws[reference][m])
                row.update(
                    diff=plain[m] - score(methods[reference], actual, known_ids, ids)[m],
                    diff_low=_percentile(diff, 2.5),
                    diff_high=_percentile(diff, 97.5),
                )
            rows.append(row)
    return pd.DataFrame(rows, columns=["method", "metric", "value", "low", "high", "diff", "diff_low", "diff_high"])


def gap_curve(pred: Predictions, actual, known_ids, thresholds, ids=None) -> pd.DataFrame:
    """Open-set GAP, answered share and precision as the threshold rises (``evaluate.threshold_curve``)."""
    actual, known = truth_arrays(actual, known_ids)
    correct = known & (pred.landmark == actual)
    conf = np.where(pred.landmark >= 0, pred.confidence, np.nan)
    return evaluate.threshold_curve(conf, correct, thresholds, n_landmarks=int(known.sum()), ids=ids)


def summary_table(boot: pd.DataFrame) -> pd.DataFrame:
    """``bootstrap``'s rows as one row per method: each metric as ``value [low, high]`` text."""

    def cell(r):
        return f"{r.value:.3f} [{r.low:.3f}, {r.high:.3f}]"

    table = boot.assign(text=boot.apply(cell, axis=1)).pivot(index="method", columns="metric", values="text")
    return table.reindex(index=list(dict.fromkeys(boot["method"])), columns=list(METRICS))


def _percentile(draws: np.ndarray, q: float) -> float:
    """``q``-th percentile of the finite bootstrap draws; NaN when none is finite (e.g. the
    precision of a method that answered nothing in every resample), without numpy's warning."""
    finite = draws[np.isfinite(draws)]
    return float(np.percentile(finite, q)) if len(finite) else math.nan
