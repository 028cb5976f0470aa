"""Retrieval: GeM, the margin losses, the index, the kNN vote, the open split, JAX (open-set scores: test_openset)."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarklib import augment, config, data, evaluate
from landmarklib.nets import layers, losses, recipes, retrieval

from conftest import TINY_LANDMARKS as LANDMARKS
from conftest import TINY_NETWORK, write_tiny_folder

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- GeM and the losses


def test_gem_matches_the_generalized_mean_by_hand_and_p1_is_average_pooling():
    x = np.array([[[[1.0, 4.0], [2.0, 0.0]], [[3.0, 1.0], [4.0, 2.0]]]], np.float32)
    out = np.asarray(layers.GeM(p=3.0)(x))
    # channel 0: ((1 + 8 + 27 + 64) / 4) ** (1/3) = 25 ** (1/3); channel 1: (64 + eps + 1 + 8) / 4 -> 18.25 ** (1/3)
    np.testing.assert_allclose(out, [[25 ** (1 / 3), 18.25 ** (1 / 3)]], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(layers.GeM(p=1.0)(x)), x.mean(axis=(1, 2)), rtol=1e-5)


def test_gem_p_is_learned_and_its_gradients_are_finite():
    import tensorflow as tf

    layer = layers.GeM(p=3.0)
    x = tf.constant(np.random.default_rng(0).uniform(0, 2, (2, 3, 3, 4)).astype(np.float32))
    x_zero = tf.zeros((1, 3, 3, 4))  # all at the eps floor
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x)) + tf.reduce_sum(layer(x_zero))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert [v.name for v in layer.trainable_variables] == ["p"]
    assert all(np.isfinite(np.asarray(g)).all() for g in grads) and float(grads[0]) != 0.0


def _hand_loss(cos, label, logit_true, scale):
    logits = scale * np.asarray(cos, np.float64)
    logits[label] = scale * logit_true
    return -(logits[label] - np.log(np.exp(logits).sum()))


@pytest.mark.parametrize("kind", ["arcface", "cosface"])
def test_margin_loss_matches_the_formula_by_hand(kind):
    cos = np.array([[0.5, 0.0, -0.2]], np.float32)
    m, s = 0.3, 4.0
    loss = float(losses.MarginLoss(kind, margin=m, scale=s)(np.array([0]), cos))
    true = math.cos(math.acos(0.5) + m) if kind == "arcface" else 0.5 - m
    assert loss == pytest.approx(_hand_loss(cos[0], 0, true, s), rel=1e-5)
    # with no margin both are the plain softmax cross-entropy of s * cos
    plain = float(losses.MarginLoss(kind, margin=0.0, scale=s)(np.array([0]), cos))
    assert plain == pytest.approx(_hand_loss(cos[0], 0, 0.5, s), rel=1e-5)
    assert loss > plain


def test_the_margin_losses_are_the_configs_and_another_is_refused():
    assert config.MARGIN_LOSSES == ("arcface", "cosface")  # as BeyondConfig.retrieval_loss declares them
    with pytest.raises(ValueError, match=r"kind must be one of \('arcface', 'cosface'\), not 'triplet'"):
        losses.MarginLoss("triplet")


def test_arcface_past_pi_falls_back_and_stays_finite_with_gradients():
    import tensorflow as tf

    m = 0.5
    cos = np.array([[-0.95, 0.3]], np.float32)  # theta + m > pi: the fallback cos - m sin m
    loss = float(losses.MarginLoss("arcface", margin=m, scale=2.0)(np.array([0]), cos))
    assert loss == pytest.approx(_hand_loss(cos[0], 0, -0.95 - m * math.sin(m), 2.0), rel=1e-5)
    for value in (1.0, -1.0, 0.0):  # the ends, where acos has infinite slope
        c = tf.Variable([[value, 0.1]], dtype=tf.float32)
        with tf.GradientTape() as tape:
            out = losses.MarginLoss("arcface", margin=m, scale=30.0, label_smoothing=0.1)(np.array([0]), c)
        assert np.isfinite(float(out)) and np.isfinite(np.asarray(tape.gradient(out, c))).all()


def test_smoothed_crossentropy_matches_the_formula():
    probs = np.array([[0.7, 0.2, 0.1]], np.float32)
    eps = 0.1
    target = (1 - eps) * np.array([1, 0, 0]) + eps / 3
    loss = float(recipes.make_loss(config.TrainConfig(label_smoothing=eps))(np.array([0]), probs))
    assert loss == pytest.approx(-(target * np.log(probs[0])).sum(), rel=1e-5)
    assert recipes.make_loss(recipes.STUDY) == "sparse_categorical_crossentropy"


def test_warmup_cosine_schedule_rises_then_decays_to_its_floor():
    recipe = config.TrainConfig(lr_schedule="warmup_cosine", warmup_epochs=2, min_lr_fraction=0.1)
    values = recipes.schedule_values(1e-3, recipe, epochs=10, steps_per_epoch=5)
    assert values[0] == 0.0 and values[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(values[2:], values[3:])) and values[-1] > 1e-4
    assert recipes.schedule_values(1e-3, recipes.STUDY, 3, 5) == [1e-3] * 3
    with pytest.raises(ValueError, match="lr_schedule"):
        config.TrainConfig(lr_schedule="step")


# --------------------------------------------------------------------------- index and vote


def _index(vectors, labels, n_classes):
    return retrieval.EmbeddingIndex(np.asarray(vectors, np.float32), labels, list(range(100, 100 + n_classes)))


def test_vote_scores_by_hand_and_ties_go_to_the_lower_class():
    # similarities 0.9 (class 1), 0.8 (class 0), 0.1 (class 0), -0.5 (class 2)
    sims = np.array([[0.9, 0.8, 0.1, -0.5]])
    labels = np.array([[1, 0, 0, 2]])
    scores, predicted, confidence = retrieval.vote_from_neighbours(sims, labels, 3)
    np.testing.assert_allclose(scores, [[0.9 / 4, 0.9 / 4, 0.0]])
    assert predicted.tolist() == [0]  # a tie: the lower class index
    assert confidence[0] == pytest.approx(0.225)
    # no positive similarity: the nearest neighbour's class, confidence 0
    scores, predicted, confidence = retrieval.vote_from_neighbours(np.array([[-0.1, -0.3]]), np.array([[2, 1]]), 3)
    assert predicted.tolist() == [2] and confidence.tolist() == [0.0]


def test_search_orders_equal_similarities_by_row_and_k_is_capped_at_the_index_size():
    idx = _index([[1, 0], [0, 1], [1, 0], [1, 0]], [2, 1, 0, 0], 3)
    sims, rows = idx.search(np.array([[1.0, 0.0]]), k=10)
    assert rows.tolist() == [[0, 2, 3, 1]] and sims.shape == (1, 4)
    np.testing.assert_allclose(sims, [[1, 1, 1, 0]], atol=1e-6)
    # k larger than class 2 (one image): its score is capped at 1/k_eff
    vote = retrieval.knn_vote(idx, np.array([[1.0, 0.0]]), k=10)
    np.testing.assert_allclose(vote.scores, [[0.5, 0.0, 0.25]], atol=1e-6)
    assert vote.predicted.tolist() == [0] and vote.confidence[0] == pytest.approx(0.5)


def test_an_empty_class_is_never_predicted():
    idx = _index([[1, 0], [0.8, 0.6]], [1, 2], 4)  # classes 0 and 3 have no image
    vote = retrieval.knn_vote(idx, np.array([[1.0, 0.0], [-1.0, 0.0]]), k=2)
    assert vote.scores[:, [0, 3]].max() == 0.0
    assert vote.predicted.tolist() == [1, 2]  # the second query: no positive similarity -> nearest (row 1)
    assert vote.confidence[1] == 0.0


def test_the_non_landmark_bank_lowers_the_confidence_of_queries_close_to_it():
    idx = _index([[1, 0], [0.9, 0.1]], [0, 0], 1)
    bank = retrieval.EmbeddingIndex(np.array([[0.0, 1.0]], np.float32), [0], [0])
    q = np.array([[1.0, 0.0], [0.7, 0.7]])
    plain = retrieval.knn_vote(idx, q, k=2)
    banked = retrieval.knn_vote(idx, q, k=2, bank=bank, bank_weight=1.0)
    assert banked.confidence[0] == pytest.approx(plain.confidence[0])  # orthogonal to the bank
    assert banked.confidence[1] == pytest.approx(max(0.0, plain.confidence[1] - math.sqrt(0.5)), abs=1e-6)


def test_index_save_load_round_trip_and_a_bad_file_is_named(tmp_path):
    rng = np.random.default_rng(0)
    idx = retrieval.EmbeddingIndex(
        rng.normal(size=(7, 5)),
        [0, 1, 2, 0, 1, 2, 2],
        [5, 17, 23],
        ids=[f"i{i}" for i in range(7)],
        paths=[f"/x/{i}.jpg" for i in range(7)],
    )
    path = idx.save(tmp_path / "m.index.npz")
    back = retrieval.EmbeddingIndex.load(path)
    np.testing.assert_array_equal(back.embeddings, idx.embeddings)
    assert back.labels.tolist() == idx.labels.tolist() and back.landmark_ids == [5, 17, 23]
    assert back.ids.tolist() == idx.ids.tolist() and back.paths[3] == "/x/3.jpg"
    np.testing.assert_allclose(np.linalg.norm(back.embeddings, axis=1), 1.0, rtol=1e-6)
    assert back.tta == "none"
    # an index remembers the test-time augmentation it was embedded with; a file from before it: none
    assert retrieval.EmbeddingIndex.load(dataclasses.replace(idx, tta="flip").save(tmp_path / "f.npz")).tta == "flip"
    with np.load(path) as f:
        old = {k: f[k] for k in f.files} | {"meta": np.asarray('{"format": "landmarks-embedding-index", "version": 1}')}
    np.savez(tmp_path / "old.npz", **old)
    assert retrieval.EmbeddingIndex.load(tmp_path / "old.npz").tta == "none"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        retrieval.EmbeddingIndex.load(tmp_path / "bad.npz")
    assert retrieval.index_path("models/x/ret.keras").name == "ret.index.npz"


def test_backend_is_chosen_by_size_and_faiss_gives_the_numpy_neighbours(monkeypatch):
    rng = np.random.default_rng(1)
    idx = retrieval.EmbeddingIndex(rng.normal(size=(300, 16)), rng.integers(0, 4, 300), [1, 2, 3, 4])
    assert idx.backend("auto") == "numpy"  # small: brute force
    monkeypatch.setattr(retrieval, "FAISS_MIN_ROWS", 100)
    assert idx.backend("auto") == ("faiss" if retrieval.faiss_available() else "numpy")
    monkeypatch.setattr(retrieval, "faiss_available", lambda: False)
    assert idx.backend("auto") == "numpy"  # falls back cleanly without FAISS
    with pytest.raises(ImportError, match="faiss-cpu"):
        idx.backend("faiss")


def brute_force_neighbours(embeddings: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    """The reference: every similarity in float64 row by row (math.fsum), sorted by (-similarity, row)."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    e = e.astype(np.float32).astype(np.float64)  # the index keeps float32 embeddings
    out = []
    for query in queries:
        qn = (query / np.linalg.norm(query)).astype(np.float32).astype(np.float64)
        sims = [math.fsum(qn * row) for row in e]
        out.append(sorted(range(len(e)), key=lambda i: (-sims[i], i))[:k])
    return out


def test_faiss_and_numpy_give_the_same_neighbours_as_brute_force_even_for_copies_of_an_image():
    """FAISS is installed wherever the tests run (`make install` brings the `knn` extra; CI too)."""
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 32))
    # real sets hold copies of one image: 6 copies of each of 40 rows give runs of equal similarities,
    # which float32 matrix products (BLAS blocks, FAISS kernels) do not always compute as equal
    embeddings = np.concatenate([base] * 6 + [rng.normal(size=(60, 32))])
    idx = retrieval.EmbeddingIndex(embeddings, rng.integers(0, 5, len(embeddings)), list(range(5)))
    queries = np.concatenate([base[:8], rng.normal(size=(8, 32))])
    for k in (1, 5, 7, 13, 40, len(embeddings)):
        expected = brute_force_neighbours(embeddings, queries, k)
        s_np, r_np = idx.search(queries, k, backend="numpy")
        s_fa, r_fa = idx.search(queries, k, backend="faiss")
        assert r_np.tolist() == expected, k
        assert r_fa.tolist() == expected, k
        np.testing.assert_array_equal(s_np, s_fa)  # the same float64 re-ranking: equal bit for bit
        assert (np.diff(s_np, axis=1) <= 0).all()
    copies = idx.search(base[:1], 6)[0][0]
    assert len(set(copies.tolist())) == 1  # six copies of the query: six equal similarities
    # through the vote, with `auto` choosing FAISS once the index is large enough
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retrieval, "FAISS_MIN_ROWS", 100)
        assert idx.backend("auto") == "faiss"
        by_faiss = retrieval.knn_vote(idx, queries, k=7)
    by_numpy = retrieval.knn_vote(idx, queries, k=7, backend="numpy")
    assert by_faiss.neighbours.tolist() == by_numpy.neighbours.tolist()
    assert by_faiss.predicted.tolist() == by_numpy.predicted.tolist()
    np.testing.assert_array_equal(by_faiss.confidence, by_numpy.confidence)


def test_a_search_asks_again_when_its_candidates_may_have_left_a_neighbour_out(monkeypatch):
    """A tie run longer than the first candidate list: the search must widen it, not cut the run."""
    rng = np.random.default_rng(5)
    one = rng.normal(size=(1, 16))
    embeddings = np.concatenate([rng.normal(size=(30, 16)), np.repeat(one, 50, axis=0)])
    idx = retrieval.EmbeddingIndex(embeddings, np.zeros(80, int), [1])
    for backend in ("numpy", "faiss"):
        _, rows = idx.search(one, 3, backend=backend)  # 14 candidates first, all among the 50 copies
        assert rows.tolist() == [[30, 31, 32]], backend  # the lowest rows of the equal run
        _, rows = idx.search(one, 52, backend=backend)
        assert rows[0, :50].tolist() == list(range(30, 80)), backend


def test_strict_top_k_breaks_ties_by_class_index():
    scores = np.array([[0.2, 0.5, 0.5, 0.1, 0.5, 0.0]])
    assert evaluate.strict_top_k(scores, 5).tolist() == [[1, 2, 4, 0, 3]]


# --------------------------------------------------------------------------- open split and open-set scores


def test_open_split_holds_landmarks_out_of_training_entirely_and_is_seeded(tmp_path):
    folder = write_tiny_folder(tmp_path / "train")
    a = data.load_open_split(folder, holdout=1, val_fraction=0.34, seed=3)
    b = data.load_open_split(folder, holdout=1, val_fraction=0.34, seed=3)
    assert a.held_out == b.held_out and len(a.held_out) == 1 and a.held_out[0] in LANDMARKS
    assert a.closed.train["path"].tolist() == b.closed.train["path"].tolist()
    trained = set(a.closed.train["landmark_id"]) | set(a.closed.val["landmark_id"])
    assert trained.isdisjoint(a.held_out) and a.closed.landmark_ids == sorted(set(LANDMARKS) - set(a.held_out))
    assert set(a.held_out_rows["landmark_id"]) == set(a.held_out) and len(a.held_out_rows) == 6
    assert a.closed.train["label"].max() == len(a.closed.landmark_ids) - 1
    choices = {tuple(data.holdout_landmarks(LANDMARKS, 2, seed)) for seed in range(20)}
    assert len(choices) > 1  # the seed matters
    assert data.load_open_split(folder, holdout=0, val_fraction=0.34, seed=3).held_out == []
    with pytest.raises(ValueError, match="hold out 3 of 4"):
        data.holdout_landmarks(LANDMARKS, 3)


# --------------------------------------------------------------------------- models


@pytest.mark.slow
def test_embedding_model_trains_saves_loads_and_predicts(tmp_path):
    from landmarklib import config
    from landmarklib.nets import train

    folder = write_tiny_folder(tmp_path / "train")
    split = data.load_split(folder, val_fraction=0.34, seed=1)
    settings = {**TINY_NETWORK, "augment": "photo"}
    train.set_seed(0)
    model = retrieval.embedding_model(settings, len(split.landmark_ids), embedding_dim=16)
    names = [layer.name for layer in model.layers]
    assert names[-5:] == ["gem_pool", "embedding_dense", "embedding_bn", "embedding", "cosines"]
    assert model.augmentation == augment.Augmentation("photo") and all(layer.name for layer in model.layers)
    settings = config.TrainConfig(
        epochs=1,
        batch_size=8,
        optimizer="adamw",
        learning_rate=1e-3,
        models_dir=str(tmp_path / "m"),
        loss="arcface",
        weight_decay=0.05,
        lr_schedule="warmup_cosine",
        warmup_epochs=0.5,
        label_smoothing=0.1,
    )
    result = train.train(model, split, settings, name="ret", progress=False)
    assert np.isfinite(result.history["loss"]).all() and result.settings["loss"] == "arcface"
    index = retrieval.build_index(result.model, split.train, split.landmark_ids)
    assert len(index) == len(split.train) and index.dim == 16
    index.save(retrieval.index_path(result.model_path))
    emb = retrieval.embed(result.model, frame=split.val)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    loaded = retrieval.load_model(result.model_path)
    np.testing.assert_allclose(retrieval.embed(loaded, frame=split.val), emb, atol=1e-5)
    pred = retrieval.predict(result.model_path, folder / "17", progress=False)
    assert len(pred) == 6 and pred["landmark_id"].isin(LANDMARKS).all()
    assert pred["confidence"].between(0, 1).all() and (pred["top_ids"].str.split().str.len() == 4).all()
    # the command line, and the Kaggle submission, with --method retrieval
    from landmarklib import cli

    out = tmp_path / "pred.csv"
    args = [
        "predict",
        "--method",
        "retrieval",
        "--model",
        str(result.model_path),
        "--images",
        str(folder / "17"),
        "--out",
        str(out),
        "--threshold",
        "0",
        "--k",
        "3",
    ]
    assert cli.main(args) == 0
    sub = pd.read_csv(tmp_path / "pred_submission.csv", dtype=str, keep_default_na=False)
    assert len(sub) == 6 and sub["landmarks"].str.fullmatch(r"\d+ \d\.\d{6}").all()
    assert cli.main([*args[:-6], "--index", str(tmp_path / "none.npz"), *args[-6:]]) == 2
    # --tta flip: an image and its mirror image get one answer (and the index's own "none" is overridden)
    flipped = tmp_path / "mirrored"
    flipped.mkdir()
    for path in sorted((folder / "17").glob("*.jpg")):
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped / path.name, "PNG")  # lossless
    both = [retrieval.predict(result.model_path, f, tta="flip", progress=False) for f in (folder / "17", flipped)]
    assert both[0]["landmark_id"].tolist() == both[1]["landmark_id"].tolist()
    np.testing.assert_allclose(both[0]["confidence"], both[1]["confidence"], atol=1e-5)
    assert cli.main([*args, "--tta", "flip"]) == 0


@pytest.mark.slow
def test_retrieval_path_runs_under_jax(tmp_path):
    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(ROOT / "tests")!r})
import keras
assert keras.backend.backend() == "jax"
from pathlib import Path
from conftest import write_tiny_folder
from landmarklib import config, data
from landmarklib.nets import retrieval, train
folder = write_tiny_folder(Path({str(tmp_path)!r}) / "train")
split = data.load_split(folder, val_fraction=0.34, seed=1)
settings = {{"model": "res_incep", "input_size": 32, "filters": [4, 4, 4, 4], "blocks": [1, 1, 1, 1],
            "dense_units": 8, "augment": "photo"}}
train.set_seed(0)
model = retrieval.embedding_model(settings, len(split.landmark_ids), embedding_dim=8)
r = train.train(model, split, config.TrainConfig(epochs=1, batch_size=8, optimizer="adamw", learning_rate=1e-3,
                models_dir={str(tmp_path / "m")!r}, loss="cosface", lr_schedule="warmup_cosine", warmup_epochs=1),
                name="ret", progress=False)
index = retrieval.build_index(r.model, split.train, split.landmark_ids)
vote = retrieval.knn_vote(index, retrieval.embed(r.model, frame=split.val), k=3)
loaded = retrieval.load_model(r.model_path)
diff = float(np.abs(retrieval.embed(loaded, frame=split.val) - retrieval.embed(r.model, frame=split.val)).max())
print("RESULT", len(index), vote.predicted.shape[0], float(np.isfinite(r.history["loss"]).all()), diff)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT)
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    n_index, n_val, finite, diff = line.split()[1:]
    assert int(n_index) > 0 and int(n_val) > 0 and float(finite) == 1.0 and float(diff) < 1e-4
