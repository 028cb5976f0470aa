"""Retrieval's post-processing: database-side augmentation and alpha query expansion (nets.retrieval), and
their variants scored by recognition.run_methods without training again."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from landmarklib import config, data, openset, recognition, scoring
from landmarklib.nets import retrieval

from conftest import TINY_NETWORK, write_test_folder, write_tiny_folder

# --------------------------------------------------------------------------- the formulas, by hand


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def _ranked(embeddings: np.ndarray, q: np.ndarray, leave_out: int | None = None) -> list[tuple[float, int]]:
    """(similarity, row) of every row, most similar first, ties by row: math.fsum in float64."""
    sims = [(math.fsum(float(a) * float(b) for a, b in zip(row, q)), j) for j, row in enumerate(embeddings)]
    return sorted((p for p in sims if p[1] != leave_out), key=lambda p: (-p[0], p[1]))


def _weight(s: float, alpha: float) -> float:
    return s**alpha if s > 0 else 0.0


def _expanded(embeddings, q, k, alpha, leave_out=None):
    """unit(q + sum over the k nearest rows of w(s) x), by a loop."""
    e = np.asarray(embeddings, np.float64)
    v = np.asarray(q, np.float64).copy()
    for s, j in _ranked(e, q, leave_out)[:k]:
        v += _weight(s, alpha) * e[j]
    return _unit(v)


def _angles(*degrees):
    return np.array([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def test_dba_by_hand_two_dimensions():
    """Row 0 at 0 degrees: its two nearest others are 30 degrees (weight cos 30 ** 3) and 200 degrees
    (similarity -0.94: weight 0)."""
    idx = retrieval.EmbeddingIndex(_angles(0, 30, 180, 200), [0, 0, 1, 1], [5, 17], ids=list("abcd"))
    out = retrieval.dba(idx, 2, alpha=3.0)
    c30 = math.cos(math.radians(30))
    np.testing.assert_allclose(out.embeddings[0], _unit(_angles(0)[0] + c30**3 * _angles(30)[0]), atol=1e-6)
    # row 2 (180 degrees): 200 degrees (cos 20) and 30 degrees (cos 150 < 0: nothing)
    c20 = math.cos(math.radians(20))
    np.testing.assert_allclose(out.embeddings[2], _unit(_angles(180)[0] + c20**3 * _angles(200)[0]), atol=1e-6)
    # the labels, ids and the original index are unchanged
    assert out.labels.tolist() == [0, 0, 1, 1] and out.ids.tolist() == list("abcd") and out.landmark_ids == [5, 17]
    np.testing.assert_allclose(idx.embeddings, _angles(0, 30, 180, 200), atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(out.embeddings, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 3.0])
def test_dba_and_query_expansion_match_the_formulas_computed_by_loops(alpha):
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(9, 5))
    vectors[[6, 7]] = vectors[2]  # three copies of one image: similarity 1 between them, ties by row
    idx = retrieval.EmbeddingIndex(vectors, rng.integers(0, 3, 9), [1, 2, 3])
    e = idx.embeddings.astype(np.float64)
    for k in (1, 2, 4, 8, 20):  # 20: capped at the 8 other rows
        out = retrieval.dba(idx, k, alpha=alpha)
        want = np.array([_expanded(e, e[i], min(k, 8), alpha, leave_out=i) for i in range(9)])
        np.testing.assert_allclose(out.embeddings, want, atol=2e-6, err_msg=f"k={k}")
    queries = rng.normal(size=(6, 5))
    q = retrieval._normalise(queries).astype(np.float64)
    for k in (1, 3, 9):
        got = retrieval.expand_queries(idx, queries, k, alpha=alpha)
        np.testing.assert_allclose(got, [_expanded(e, q[i], k, alpha) for i in range(6)], atol=2e-6)
    # the vote searches the expanded queries (on the index it is given: after DBA, DBA's rows)
    aug = retrieval.dba(idx, 2, alpha=alpha)
    vote = retrieval.knn_vote(aug, queries, k=3, qe_k=2, qe_alpha=alpha)
    direct = aug.search(retrieval.expand_queries(aug, queries, 2, alpha=alpha), 3)
    np.testing.assert_array_equal(vote.neighbours, direct[1])
    np.testing.assert_array_equal(vote.similarities, direct[0])


def test_k_zero_is_exactly_the_identity():
    rng = np.random.default_rng(0)
    idx = retrieval.EmbeddingIndex(rng.normal(size=(7, 4)), [0, 1, 2, 0, 1, 2, 2], [5, 17, 23])
    assert retrieval.dba(idx, 0) is idx
    single = retrieval.EmbeddingIndex(rng.normal(size=(1, 4)), [0], [5])
    assert retrieval.dba(single, 3) is single  # no other row to add
    q = retrieval._normalise(rng.normal(size=(5, 4)))
    assert retrieval.expand_queries(idx, q, 0) is q
    plain, zero = retrieval.knn_vote(idx, q, k=3), retrieval.knn_vote(idx, q, k=3, qe_k=0, qe_alpha=1.0)
    for name in ("scores", "predicted", "confidence", "neighbours", "similarities"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(zero, name))


def test_equal_similarities_go_to_the_lower_row_and_repeat_exactly():
    """A query at 0 degrees between rows at +30 and -30 degrees (equal similarities): the lower row expands it."""
    up_first = retrieval.EmbeddingIndex(_angles(30, -30), [0, 1], [5, 17])
    down_first = retrieval.EmbeddingIndex(_angles(-30, 30), [0, 1], [5, 17])
    q = _angles(0)
    a = retrieval.expand_queries(up_first, q, 1)
    b = retrieval.expand_queries(down_first, q, 1)
    assert a[0, 1] > 0 > b[0, 1]  # towards +30, then towards -30: the lower row each time
    np.testing.assert_array_equal(a, retrieval.expand_queries(up_first, q, 1))  # the same bits again
    np.testing.assert_allclose(a[0], _unit(q[0] + math.cos(math.radians(30)) ** 3 * _angles(30)[0]), atol=1e-6)
    # DBA: row 0 (0 degrees) between rows 1 and 2 at +-30 degrees takes row 1
    idx = retrieval.EmbeddingIndex(_angles(0, 30, -30), [0, 1, 1], [5, 17])
    out = retrieval.dba(idx, 1)
    assert out.embeddings[0, 1] > 0
    np.testing.assert_array_equal(out.embeddings, retrieval.dba(idx, 1).embeddings)


def test_query_expansion_finds_the_right_landmark_when_the_nearest_image_is_another():
    """Landmark A: images at 0, 5 and 10 degrees; landmark B: one image at 40 degrees. A query of A at
    26 degrees lies nearest the B image (14 degrees; 16 to A's nearest), so the nearest-neighbour vote says B;
    expanded with its three nearest images (B's and two of A's) it moves to about 21 degrees, nearer A."""
    idx = retrieval.EmbeddingIndex(_angles(0, 5, 10, 40), [0, 0, 0, 1], [100, 200])
    q = _angles(26)
    plain = retrieval.knn_vote(idx, q, k=1)
    assert plain.neighbours[0, 0] == 3 and plain.predicted[0] == 1  # the nearest image is B's: wrong
    expanded = retrieval.knn_vote(idx, q, k=1, qe_k=3, qe_alpha=3.0)
    assert expanded.predicted[0] == 0 and expanded.neighbours[0, 0] == 2  # A's image at 10 degrees
    c = [math.cos(math.radians(d)) ** 3 for d in (14, 16, 21)]
    want = _unit(q[0] + c[0] * _angles(40)[0] + c[1] * _angles(10)[0] + c[2] * _angles(5)[0])
    np.testing.assert_allclose(retrieval.expand_queries(idx, q, 3), [want], atol=1e-6)
    assert 20 < math.degrees(math.atan2(want[1], want[0])) < 22


def test_alpha_weights_clip_negatives_and_refuse_a_negative_alpha():
    np.testing.assert_allclose(retrieval.alpha_weights([0.5, 0.0, -0.5, 1.0], 2.0), [0.25, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(retrieval.alpha_weights([0.5, 0.0, -0.5], 0.0), [1.0, 0.0, 0.0])  # plain average
    with pytest.raises(ValueError, match="alpha"):
        retrieval.alpha_weights([0.5], -1.0)


def test_the_index_records_its_post_processing_and_a_file_before_it_has_none(tmp_path):
    rng = np.random.default_rng(0)
    idx = retrieval.EmbeddingIndex(rng.normal(size=(4, 3)), [0, 1, 0, 1], [5, 17], tta="flip")
    assert idx.postprocess == {} and retrieval.EmbeddingIndex.load(idx.save(tmp_path / "a.npz")).postprocess == {}
    idx.postprocess = {"dba_k": 2, "qe_k": 1, "alpha": 3.0}
    back = retrieval.EmbeddingIndex.load(idx.save(tmp_path / "b.npz"))
    assert back.postprocess == {"dba_k": 2, "qe_k": 1, "alpha": 3.0} and back.tta == "flip"
    assert retrieval.dba(back, 1).postprocess == back.postprocess  # a record: DBA keeps it
    with pytest.raises(ValueError, match="unknown keys"):
        retrieval.EmbeddingIndex(idx.embeddings, idx.labels, [5, 17], postprocess={"qe": 1})


# --------------------------------------------------------------------------- settings


def test_the_settings_are_off_by_default_and_name_the_variants():
    beyond = config.BeyondConfig()
    assert (beyond.retrieval_qe_k, beyond.retrieval_dba_k, beyond.retrieval_variants) == (0, 0, False)
    assert beyond.retrieval_qe_alpha == retrieval.DEFAULT_ALPHA
    assert recognition.retrieval_answers(beyond) == {"retrieval": (0, 0)}
    both = beyond.replace(retrieval_qe_k=3, retrieval_dba_k=2)
    assert recognition.retrieval_answers(both) == {"retrieval": (2, 3)}  # retrieval itself post-processed
    assert recognition.retrieval_answers(both.replace(retrieval_variants=True)) == {
        "retrieval": (0, 0),
        "retrieval+dba": (2, 0),
        "retrieval+qe": (0, 3),
        "retrieval+dba+qe": (2, 3),
    }
    only_qe = beyond.replace(retrieval_qe_k=3, retrieval_variants=True)
    assert recognition.retrieval_answers(only_qe) == {"retrieval": (0, 0), "retrieval+qe": (0, 3)}
    with pytest.raises(ValueError, match="retrieval_variants needs"):
        recognition.retrieval_answers(beyond.replace(retrieval_variants=True))
    with pytest.raises(config.ConfigError, match="retrieval_qe_k"):
        config.BeyondConfig(retrieval_qe_k=-1)


def test_landmarks_predict_takes_the_options_with_retrieval_only(tmp_path, capsys):
    from landmarklib import cli

    model = tmp_path / "m.keras"
    model.write_bytes(b"")  # only its existence is checked before the options
    base = ["predict", "--model", str(model), "--images", str(tmp_path), "--out", str(tmp_path / "p.csv")]
    assert cli.main([*base, "--qe-k", "2"]) == 2
    assert "need --method retrieval" in capsys.readouterr().err
    assert cli.main([*base, "--method", "retrieval", "--dba-k", "-1"]) == 2
    assert "0 or more" in capsys.readouterr().err


# --------------------------------------------------------------------------- the variants in run_methods

RUN = config.RunConfig.from_params({**TINY_NETWORK, "batch_size": 8, "seed": 3})
BEYOND = config.BeyondConfig(
    beyond_epochs=1,
    embedding_dim=8,
    retrieval_k=3,
    n_bootstrap=50,
    retrieval_qe_k=2,
    retrieval_dba_k=2,
    retrieval_variants=True,
)
VARIANTS = ("retrieval+dba", "retrieval+qe", "retrieval+dba+qe")


@pytest.mark.slow
def test_run_methods_scores_the_variants_from_the_one_retrieval_model(tmp_path):
    open_split = data.load_open_split(write_tiny_folder(tmp_path / "train"), 1, val_fraction=0.34, seed=3)
    test_dir = write_test_folder(tmp_path / "test")
    queries = recognition.test_queries(test_dir, test_dir / "solution.csv", 32)
    outcome = recognition.run_methods(
        open_split, RUN, BEYOND, queries, tmp_path / "models", methods=("retrieval",), progress=False
    )
    names = ["retrieval", *VARIANTS]
    assert list(outcome.runs) == list(outcome.predictions) == list(outcome.scores) == names
    base = outcome.runs["retrieval"]
    assert (base.dba_k, base.qe_k) == (0, 0) and "DBA" not in base.recipe  # retrieval itself: plain
    for name, (dba_k, qe_k) in zip(VARIANTS, [(2, 0), (0, 2), (2, 2)]):
        v = outcome.runs[name]
        # no training of its own: retrieval's model, history and minutes, and it says so
        assert v.result is base.result and v.seconds == base.seconds and v.extra["variant_of"] == "retrieval"
        assert (v.dba_k, v.qe_k, v.alpha) == (dba_k, qe_k, 3.0) and "not trained again" in v.recipe
        assert np.isfinite(v.threshold) and v.threshold == outcome.predictions[name].threshold
        # the validation index is augmented the same way, among the training rows only
        assert v.val_index.ids.tolist() == base.val_index.ids.tolist()
        np.testing.assert_array_equal(v.val_index.embeddings, retrieval.dba(base.val_index, dba_k).embeddings)
        # its answers: the vote over the augmented index of the retrieval embeddings, expanded
        emb = outcome.extra["retrieval"]["embeddings"]
        vote = retrieval.knn_vote(retrieval.dba(base.index, dba_k), emb, k=3, qe_k=qe_k)
        pred = outcome.predictions[name]
        np.testing.assert_allclose(pred.confidence, vote.confidence, atol=1e-12)
        want = openset.from_scores(vote.scores, vote.confidence, base.result.landmark_ids, v.threshold)
        np.testing.assert_array_equal(pred.landmark, want.landmark)
    # the threshold and index kept beside the model are plain retrieval's (variants save none)
    assert scoring.model_threshold(base.result.model_path, None, 0.5)[0] == pytest.approx(base.threshold)
    saved = retrieval.EmbeddingIndex.load(retrieval.index_path(base.result.model_path))
    assert saved.postprocess == {"dba_k": 0, "qe_k": 0, "alpha": 3.0}
    # paired differences with retrieval: on the bootstrap's resamples (here retrieval is also the reference)
    boot = outcome.bootstrap.set_index(["method", "metric"])
    assert sorted(outcome.variants_vs_retrieval) == sorted(VARIANTS)
    for name, diffs in outcome.variants_vs_retrieval.items():
        assert set(diffs) == {
            f"{m}_{k}" for m in ("closed_top1", "open_gap") for k in ("diff", "diff_low", "diff_high")
        }
        for m in ("closed_top1", "open_gap"):
            row = boot.loc[(name, m)]
            assert (diffs[f"{m}_diff"], diffs[f"{m}_diff_low"], diffs[f"{m}_diff_high"]) == pytest.approx(
                (row["diff"], row["diff_low"], row["diff_high"]), nan_ok=True
            )
            assert diffs[f"{m}_diff"] == pytest.approx(outcome.scores[name][m] - outcome.scores["retrieval"][m])
    # the tables, the benchmark's history and the submissions take the variants
    rows = recognition.method_rows(outcome)
    assert [r["method"] for r in rows] == names and [r.get("variant_of") for r in rows] == [None, *["retrieval"] * 3]
    assert all("open_gap_diff" in r for r in rows[1:]) and "open_gap_diff" not in rows[0]
    history = outcome.runs["retrieval+qe"].result.history  # what the benchmark records per row
    assert [float(v) for v in history["val_accuracy"]] == [float(v) for v in base.result.history["val_accuracy"]]
    assert len(recognition.metrics_table(outcome)) == 4
    written = recognition.write_submissions(outcome, queries, tmp_path / "reports")
    assert sorted(written) == sorted(names) and (tmp_path / "reports" / written["retrieval+dba+qe"]).is_file()
    # `landmarks predict`: the index's own (plain) by default; given DBA and QE, the variant's answers
    plain = retrieval.predict(base.result.model_path, test_dir, k=3, progress=False)
    both = retrieval.predict(base.result.model_path, test_dir, k=3, progress=False, qe_k=2, dba_k=2)
    order = pd.Index(queries["id"].astype(str))
    for table, name in ((plain, "retrieval"), (both, "retrieval+dba+qe")):
        table = table.set_index(table["id"].astype(str)).loc[order]
        np.testing.assert_allclose(table["confidence"], outcome.predictions[name].confidence, atol=1e-5)


@pytest.mark.slow
def test_retrieval_itself_answers_with_dba_and_qe_when_they_are_set_without_variants(tmp_path):
    split = data.load_split(write_tiny_folder(tmp_path / "train"), val_fraction=0.34, seed=1)
    beyond = BEYOND.replace(retrieval_variants=False, retrieval_qe_alpha=1.0)
    run = recognition.train_method("retrieval", split, RUN, beyond, tmp_path / "models", progress=False)
    assert (run.dba_k, run.qe_k, run.alpha) == (2, 2, 1.0) and "DBA k=2 and alpha-QE k=2 (alpha 1)" in run.recipe
    # saved: the embeddings themselves, with what the model answers with; in memory: both indexes augmented
    saved = retrieval.EmbeddingIndex.load(retrieval.index_path(run.result.model_path))
    assert saved.postprocess == {"dba_k": 2, "qe_k": 2, "alpha": 1.0}
    np.testing.assert_array_equal(run.index.embeddings, retrieval.dba(saved, 2, alpha=1.0).embeddings)
    rows = [list(saved.ids).index(i) for i in run.val_index.ids]
    plain_val = retrieval.EmbeddingIndex(saved.embeddings[rows], saved.labels[rows], saved.landmark_ids)
    np.testing.assert_array_equal(run.val_index.embeddings, retrieval.dba(plain_val, 2, alpha=1.0).embeddings)
    x = data.load_images(split.val["path"].tolist(), 32, progress=False)
    pred, extra = recognition.answer(run, split.val, x=x)
    vote = retrieval.knn_vote(run.index, extra["embeddings"], k=3, qe_k=2, qe_alpha=1.0)
    np.testing.assert_allclose(pred.confidence, vote.confidence, atol=1e-12)
