"""openset: the open-set scores and their paired bootstrap intervals (the README's and report's headline numbers).

The scores are checked by hand on small cases, then property-tested for every metric of ``openset.METRICS``
on seeded random cases: the weighted form the bootstrap uses (``openset._scores`` with a weight per test image
and resample) must equal the same metric computed on the resample written out row by row (``np.repeat``),
with ``evaluate.gap`` (the competition's GAP) for the GAPs and plain Python for the shares. Last, the nominal
95% intervals are checked to cover a known population value about 95% of the time.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from landmarklib import evaluate, openset

KNOWN = (0, 1, 2, 3, 4)  # the landmarks the random methods were trained on
UNKNOWN = (7, 8)  # landmarks they never saw (held out): answers to them are always wrong


def _preds(landmark, conf, top5=None, threshold=0.0):
    landmark = np.asarray(landmark, np.int64)
    top5 = np.asarray(top5 if top5 is not None else np.c_[landmark, np.full((len(landmark), 4), -1)], np.int64)
    return openset.Predictions(landmark=landmark, confidence=np.asarray(conf, float), top5=top5, threshold=threshold)


# --------------------------------------------------------------------------- by hand


def test_open_set_scores_by_hand_and_gaps_agree_with_evaluate_gap():
    actual = [1, 2, 9, 1, None]  # 9: a held-out landmark, None: no landmark; known 1, 2
    p = _preds(
        [1, 3, 1, 2, 2],
        [0.9, 0.8, 0.7, 0.6, 0.1],
        top5=[[1, 2, -1, -1, -1], [3, 2, 1, -1, -1], [1, 2, -1, -1, -1], [2, 3, -1, -1, -1], [2, -1, -1, -1, -1]],
        threshold=0.65,
    )
    s = openset.score(p, actual, known_ids=[1, 2, 3])
    assert (s["n_closed"], s["n_open"]) == (3, 2)
    assert s["closed_top1"] == pytest.approx(1 / 3) and s["closed_top5"] == pytest.approx(2 / 3)
    # open ranking: right, wrong, wrong (held out), wrong, wrong -> GAP = 1 * 1 / 3
    assert s["open_gap"] == pytest.approx(1 / 3)
    assert s["answered_share"] == pytest.approx(3 / 5) and s["answered_precision"] == pytest.approx(1 / 3)
    # the bootstrap's weighted GAP equals evaluate.gap on the plain set, and on a duplicated row
    actual_arr, known = openset.truth_arrays(actual, [1, 2, 3])
    w = np.array([[1, 1, 1, 1, 1], [2, 1, 0, 1, 3]])
    weighted = openset._scores(p, actual_arr, known, np.arange(5), w)["open_gap"]
    assert weighted[0] == pytest.approx(s["open_gap"])
    rows = np.repeat(np.arange(5), w[1])
    truth = [actual[i] if known[i] else None for i in rows]
    expected = evaluate.gap([p.landmark[i] for i in rows], p.confidence[rows], truth, ids=rows)
    assert weighted[1] == pytest.approx(expected)


def test_integer_image_ids_break_confidence_ties_in_numeric_order_in_the_bootstrap_too():
    # 12 answers of one confidence; only image 2 is right. evaluate.gap ranks ids 0, 1, 2, ..., 11 (numbers):
    # the right answer is third, GAP = (1/3) / 12 = 1/36. Ranked as text ("0", "1", "10", "11", "2", ...) it
    # would be fifth, 1/60: the bootstrap's draws were once ranked so, and disagreed with its own value.
    n = 12
    p = _preds(np.where(np.arange(n) == 2, 1, 2), np.full(n, 0.5))
    actual = np.ones(n, np.int64)
    assert openset.score(p, actual, [1, 2])["open_gap"] == pytest.approx(1 / 36)
    _, known = openset.truth_arrays(actual, [1, 2])
    for ids in (np.arange(n), np.arange(n) * 10, np.arange(n).astype(float)):
        weighted = openset._scores(p, actual, known, ids, np.ones((1, n)))
        assert weighted["open_gap"][0] == pytest.approx(1 / 36) and weighted["closed_gap"][0] == pytest.approx(1 / 36)
    text = openset._scores(p, actual, known, np.arange(n).astype(str), np.ones((1, n)))  # text ids: text order
    assert text["open_gap"][0] == pytest.approx(1 / 60)
    assert openset.score(p, actual, [1, 2], ids=np.arange(n).astype(str))["open_gap"] == pytest.approx(1 / 60)


def test_paired_bootstrap_intervals_bracket_the_values_and_a_better_method_differs():
    rng = np.random.default_rng(0)
    n = 120
    actual = rng.integers(0, 4, n)
    actual[:30] = 9  # held out
    good = _preds(np.where(rng.random(n) < 0.9, actual, 0), np.where(actual == 9, 0.1, 0.9))
    bad = _preds(np.where(rng.random(n) < 0.5, actual, 1), np.full(n, 0.5))
    boot = openset.bootstrap({"bad": bad, "good": good}, actual, known_ids=[0, 1, 2, 3], n_boot=200, seed=1)
    row = boot.set_index(["method", "metric"]).loc[("good", "open_gap")]
    assert row["low"] <= row["value"] <= row["high"] and row["diff_low"] > 0
    again = openset.bootstrap({"bad": bad, "good": good}, actual, known_ids=[0, 1, 2, 3], n_boot=200, seed=1)
    pd.testing.assert_frame_equal(boot, again)
    assert openset.summary_table(boot).shape == (2, len(openset.METRICS))


def test_choose_threshold_maximises_right_minus_wrong():
    conf = [0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, False, True, False]
    assert openset.choose_threshold(conf, correct) == 0.6  # +1 +1 -1 +1 = 2 (0.8 also gives 2; lowest kept)
    assert openset.choose_threshold(conf, [False] * 5) == 0.0


# --------------------------------------------------------------------------- random cases against explicit resampling


def _random_case(seed: int) -> dict:
    """A method's predictions on a random test set, with what a test of ``openset`` needs to score it by hand.

    Covers: 1 to 40 images; known landmarks, held-out (unknown) ones and no landmark (given as None, -1 or "");
    answers right, wrong, to unknown landmarks, and none (landmark -1; confidence NaN or a stray number);
    confidences from a coarse grid (ties) or continuous; top-5 lists with -1 pads; a threshold from the
    grid, 0 or above every confidence; image ids: the default (row order), integers of 1 to 3 digits (whose
    text order differs from their numeric order), the same as text, or letters of varying length.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 41))
    kind = rng.choice(3, size=n, p=[0.6, 0.2, 0.2])  # known, unknown landmark, no landmark
    actual = np.where(kind == 0, rng.choice(KNOWN, n), np.where(kind == 1, rng.choice(UNKNOWN, n), -1))
    p_right, p_none = rng.random(), 0.3 * rng.random()
    landmark = np.where(rng.random(n) < p_right, actual, rng.choice(KNOWN + UNKNOWN, n))
    landmark = np.where((landmark < 0) | (rng.random(n) < p_none), -1, landmark)
    if rng.random() < 0.5:
        conf = rng.choice([0.1, 0.25, 0.5, 0.75, 0.9], n)  # many ties
    else:
        conf = rng.random(n)
    conf = np.where((landmark < 0) & (rng.random(n) < 0.7), np.nan, conf)  # no answer: NaN, or a number ignored
    top5 = rng.choice((-1, *KNOWN, *UNKNOWN), (n, 5))
    top5[:, 0] = landmark
    threshold = float(rng.choice([0.0, 0.25, 0.5, 0.75, 0.9, 1.5]))
    id_kind = int(rng.integers(4))
    numbers = rng.choice(1000, n, replace=False)
    if id_kind == 0:
        ids = None
    elif id_kind == 1:
        ids = numbers
    elif id_kind == 2:
        ids = numbers.astype(str).astype(object)
    else:
        letters = np.array(list("abcdefgh"))
        ids = np.array(sorted({"".join(rng.choice(letters, rng.integers(1, 4))) for _ in range(4 * n)})[:n], object)
        ids = ids[rng.permutation(n)]
    no_landmark = rng.choice(np.array([None, -1, ""], object), n)  # the ways to write "no landmark"
    written = [int(a) if a >= 0 else none for a, none in zip(actual, no_landmark)]
    known_ids = [*KNOWN, 99] if rng.random() < 0.5 else list(KNOWN)  # a known landmark with no test image
    return {
        "seed": seed,
        "n": n,
        "pred": openset.Predictions(landmark=landmark, confidence=conf, top5=top5, threshold=threshold),
        "actual": actual,
        "written": written,
        "known_ids": known_ids,
        "ids": ids,
    }


def _random_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Resample weights (B, n): a row of ones, a bootstrap draw, small counts with zeros, large sparse counts,
    and sometimes a resample with no image at all."""
    rows = [
        np.ones(n, np.int64),
        np.bincount(rng.integers(0, n, n), minlength=n),
        rng.integers(0, 4, n),
        np.where(rng.random(n) < 0.3, rng.integers(1, 8, n), 0),
    ]
    if rng.random() < 0.1:
        rows.append(np.zeros(n, np.int64))
    return np.array(rows, np.int64)


def _tie_rank(ids, n: int) -> list[int]:
    """Each image's place when the ids are sorted (Python's order: numbers as numbers, text as text)."""
    keys = list(range(n)) if ids is None else [v.item() if isinstance(v, np.generic) else v for v in ids]
    rank = [0] * n
    for place, i in enumerate(sorted(range(n), key=lambda i: keys[i])):
        rank[i] = place
    return rank


def _explicit_scores(case: dict, weights_row: np.ndarray) -> dict:
    """Every metric on the resample written out: image i repeated ``weights_row[i]`` times.

    The copies of image i get ids ``rank_i * K + j`` (j = 0, 1, ...: copy number; K above every count), so
    the tie-break among equal confidences keeps the images' order and puts the copies of an image together.
    GAPs by ``evaluate.gap``; the shares by plain Python, one row of the resample at a time.
    """
    pred, actual = case["pred"], case["actual"]
    known_set = set(case["known_ids"])
    rank = _tie_rank(case["ids"], case["n"])
    k = int(weights_row.max(initial=0)) + 1
    rows, copy_ids = [], []
    for i, count in enumerate(weights_row):
        for j in range(int(count)):
            rows.append(i)
            copy_ids.append(rank[i] * k + j)
    nan = math.nan

    def share(flags):
        return sum(flags) / len(flags) if flags else nan

    is_known = [int(actual[i]) in known_set for i in rows]
    answer = [None if pred.landmark[i] < 0 else int(pred.landmark[i]) for i in rows]
    conf = [float(pred.confidence[i]) for i in rows]
    truth = [int(actual[i]) if kn else None for i, kn in zip(rows, is_known)]
    right = [a is not None and a == t for a, t in zip(answer, truth)]
    in_top5 = [kn and int(actual[i]) in pred.top5[i].tolist() for i, kn in zip(rows, is_known)]
    answered = [a is not None and c >= pred.threshold for a, c in zip(answer, conf)]  # NaN >= t is False
    closed = [r for r, kn in enumerate(is_known) if kn]

    def gap(keep):
        if not any(is_known[r] for r in keep):
            return nan  # evaluate.gap: no image shows a landmark
        return evaluate.gap(
            [answer[r] for r in keep], [conf[r] for r in keep], [truth[r] for r in keep], [copy_ids[r] for r in keep]
        )

    return {
        "closed_top1": share([right[r] for r in closed]),
        "closed_top5": share([in_top5[r] for r in closed]),
        "closed_gap": gap(closed),
        "open_gap": gap(range(len(rows))),
        "answered_share": share(answered),
        "answered_precision": share([right[r] for r in range(len(rows)) if answered[r]]),
    }


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def _weighted_scores(case: dict, weights: np.ndarray) -> dict:
    actual, known = openset.truth_arrays(case["written"], case["known_ids"])
    ids = np.arange(case["n"]) if case["ids"] is None else case["ids"]
    return openset._scores(case["pred"], actual, known, ids, weights)


@pytest.mark.parametrize("block", range(4))
def test_every_weighted_score_equals_the_resample_written_out_and_scored_by_evaluate_gap(block):
    # 4 blocks of 30 seeded cases: 120 cases, about 500 resamples
    for seed in range(30 * block, 30 * block + 30):
        case = _random_case(seed)
        weights = _random_weights(np.random.default_rng([seed, 1]), case["n"])
        got = _weighted_scores(case, weights)
        assert set(got) == set(openset.METRICS), f"seed {seed}"
        for b, row in enumerate(weights):
            want = _explicit_scores(case, row)
            for m in openset.METRICS:
                assert _same(float(got[m][b]), want[m]), (
                    f"seed {seed}, resample {b} (weights {row.tolist()}), {m}: weighted {got[m][b]!r}, "
                    f"written out {want[m]!r}"
                )


@pytest.mark.parametrize("block", range(2))
def test_score_is_the_weighted_form_on_a_row_of_ones_and_the_plain_scores(block):
    for seed in range(1000 + 40 * block, 1000 + 40 * block + 40):
        case = _random_case(seed)
        s = openset.score(case["pred"], case["written"], case["known_ids"], case["ids"])
        weighted = _weighted_scores(case, np.ones((1, case["n"]), np.int64))
        plain = _explicit_scores(case, np.ones(case["n"], np.int64))
        for m in openset.METRICS:
            assert _same(s[m], float(weighted[m][0])), f"seed {seed}, {m}: score {s[m]!r}, weighted {weighted[m][0]!r}"
            assert _same(s[m], plain[m]), f"seed {seed}, {m}: score {s[m]!r}, by hand {plain[m]!r}"
        n_closed = sum(int(a) in set(case["known_ids"]) for a in case["actual"])
        assert (s["n_queries"], s["n_closed"], s["n_open"]) == (case["n"], n_closed, case["n"] - n_closed)
        assert s["threshold"] == case["pred"].threshold


def _percentile(draws: list[float], q: float) -> float:
    finite = [d for d in draws if not math.isnan(d)]
    return float(np.percentile(finite, q)) if finite else math.nan


@pytest.mark.parametrize("seed", range(3))
def test_bootstrap_intervals_and_paired_differences_are_percentiles_of_the_resamples_written_out(seed):
    # Two random methods on one random test set. The resamples are drawn as ``bootstrap`` documents them:
    # n images with replacement, ``chunk`` resamples at a time from default_rng(seed).
    case = _random_case(2000 + seed)
    other = _random_case(3000 + seed)
    n = case["n"]
    second = openset.Predictions(
        landmark=np.resize(other["pred"].landmark, n),
        confidence=np.resize(other["pred"].confidence, n),
        top5=np.resize(other["pred"].top5, (n, 5)),
        threshold=other["pred"].threshold,
    )
    n_boot, chunk = 25, 10  # chunks of 10, 10 and 5
    methods = {"a": case["pred"], "b": second}
    boot = openset.bootstrap(methods, case["written"], case["known_ids"], case["ids"], n_boot, seed, chunk=chunk)
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.integers(0, n, size=(min(chunk, n_boot - s), n)) for s in range(0, n_boot, chunk)])
    draws = {"a": [], "b": []}
    for row in picks:
        weights_row = np.bincount(row, minlength=n)
        for name, p in methods.items():
            draws[name].append(_explicit_scores({**case, "pred": p}, weights_row))
    plain = {name: _explicit_scores({**case, "pred": p}, np.ones(n, np.int64)) for name, p in methods.items()}
    table = boot.set_index(["method", "metric"])
    for m in openset.METRICS:
        for name in ("a", "b"):
            r = table.loc[(name, m)]
            d = [x[m] for x in draws[name]]
            want = (plain[name][m], _percentile(d, 2.5), _percentile(d, 97.5))
            assert all(map(_same, (r["value"], r["low"], r["high"]), want)), (seed, name, m, r.to_dict(), want)
        r = table.loc[("b", m)]
        diff = [x[m] - y[m] for x, y in zip(draws["b"], draws["a"])]  # the same resample for both: paired
        want = (plain["b"][m] - plain["a"][m], _percentile(diff, 2.5), _percentile(diff, 97.5))
        assert all(map(_same, (r["diff"], r["diff_low"], r["diff_high"]), want)), (seed, m, r.to_dict(), want)
        assert pd.isna(table.loc[("a", m), "diff"])


# --------------------------------------------------------------------------- coverage of the intervals

# A population with every score known exactly. A test image shows a known landmark (0..3) with probability
# 0.6, else (equally) a held-out landmark or none. The method answers every image with a confidence c ~ U(0, 1);
# an image of a known landmark is answered right with probability c (else with another known landmark), and a
# wrong answer's top-5 holds the truth with probability 1/2. Threshold 0.5. The population's scores:
#   closed top-1        E[c] = 1/2
#   closed top-5        1/2 + 1/2 * 1/2 = 3/4
#   answered share      P(c >= 1/2) = 1/2
#   answered precision  P(known) E[c | c >= 1/2] = 0.6 * 3/4 = 0.45
#   closed GAP          the right answers have density c; of the answers at or above c (1 - c of them),
#                       (1 - c^2)/2 are right: precision (1 + c)/2; GAP = integral_0^1 (1 + c)/2 * c dc = 5/12
#   open GAP            densities and denominator scaled by P(known) = 0.6: GAP = 0.6 * 5/12 = 1/4
POPULATION = {
    "closed_top1": 1 / 2,
    "closed_top5": 3 / 4,
    "closed_gap": 5 / 12,
    "open_gap": 0.6 * 5 / 12,
    "answered_share": 1 / 2,
    "answered_precision": 0.6 * 3 / 4,
}


def _population_sample(rng: np.random.Generator, n: int) -> tuple[openset.Predictions, np.ndarray]:
    conf = rng.random(n)
    kind = rng.random(n)
    known = kind < 0.6
    actual = np.where(known, rng.integers(0, 4, n), np.where(kind < 0.8, 9, -1))
    right = known & (rng.random(n) < conf)
    wrong = (actual + 1 + rng.integers(0, 3, n)) % 4  # another known landmark
    landmark = np.where(right, actual, np.where(known, wrong, rng.integers(0, 4, n)))
    top5 = np.full((n, 5), -1)
    top5[:, 0] = landmark
    top5[:, 1] = np.where(known & ~right & (rng.random(n) < 0.5), actual, -1)
    return openset.Predictions(landmark=landmark, confidence=conf, top5=top5, threshold=0.5), actual


@pytest.mark.slow
def test_nominal_95_percent_intervals_cover_the_population_scores_about_95_percent_of_the_time():
    # 1200 test sets of 200 images (about 120 closed, 100 answered), each with its own 400 resamples (about 30 s).
    # Monte-Carlo error: the coverage over 1200 sets has a standard deviation of sqrt(p (1 - p) / 1200), 0.63
    # points at p = 95% and 0.70 at p = 93.6%.
    # The true coverages at this n and n_boot, measured offline on 4000 other seeds (standard error 0.35-0.4):
    #   closed top-1 95.2, answered share 94.9          -> claimed 93-97%: 2.9 deviations or more either side
    #   closed top-5 93.9, answered precision 94.7      -> claimed 92-97%: 2.7 deviations or more
    #   closed GAP 94.3, open GAP 93.6                  -> claimed 92-97%: 2.3 deviations (open GAP) or more
    # So the percentile intervals run about a point short at this n for top-5, precision and the GAPs (with 500
    # resamples, 4000 seeds: 95.1, 94.4, 94.0, 93.7; the GAPs still 93.6 closed / 94.7 open at n = 800 with
    # 1000 resamples, 1500 seeds). For the GAPs, a sample's GAP leans high (open GAP at n = 200, 400 seeds:
    # +0.007, 0.15 of its standard deviation; closed +0.002) and its resamples' GAPs higher still (+0.003), so
    # the intervals miss mostly from above (open GAP: 14 of 18 misses). The bands are set from those offline
    # numbers, not from this test's seeds; fixed seeds make the count the same on any machine.
    n, n_boot, n_sets = 200, 400, 1200
    band = {m: (0.93, 0.97) for m in ("closed_top1", "answered_share")}
    band |= {m: (0.92, 0.97) for m in ("closed_top5", "answered_precision", "closed_gap", "open_gap")}
    covered = dict.fromkeys(openset.METRICS, 0)
    for seed in range(n_sets):
        pred, actual = _population_sample(np.random.default_rng(seed), n)
        boot = openset.bootstrap({"m": pred}, actual, [0, 1, 2, 3], n_boot=n_boot, seed=seed, chunk=n_boot)
        for r in boot.itertuples():
            covered[r.metric] += bool(r.low <= POPULATION[r.metric] <= r.high)
    coverage = {m: covered[m] / n_sets for m in openset.METRICS}
    print("coverage of the nominal 95% intervals:", coverage)
    assert all(band[m][0] <= coverage[m] <= band[m][1] for m in openset.METRICS), coverage
