"""The methods of notebook 07 and the recognition benchmark: how each answers (landmarklib.recognition)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from landmarklib import config, data, recognition
from landmarklib.nets import retrieval

from conftest import TINY_NETWORK, write_tiny_folder

RUN = config.RunConfig.from_params({**TINY_NETWORK, "batch_size": 8, "seed": 3})
BEYOND = config.BeyondConfig(beyond_epochs=1, embedding_dim=8, retrieval_k=3)


def test_only_the_modern_methods_answer_with_test_time_augmentation():
    assert recognition.method_tta("study", BEYOND) == "none"
    for name in ("modern", "retrieval"):
        assert recognition.method_tta(name, BEYOND) == "flip"  # BeyondConfig's default
        assert recognition.method_tta(name, BEYOND.replace(modern_tta="none")) == "none"


def test_the_methods_are_variants_of_one_run():
    """The study's recipe on the run's network; modern: config.MODERN_RECIPE with BeyondConfig's modern_* values;
    retrieval: the modern one with the margin loss. Every method trains beyond_epochs."""
    run = RUN.replace(recipe="modern", dropout=0.3)  # a run's own recipe does not reach the study's method
    methods = recognition.method_runs(run, BEYOND.replace(study_augment="add", modern_warmup_epochs=0.5))
    study, modern, retrieval_run = methods["study"], methods["modern"], methods["retrieval"]
    assert {m.train.epochs for m in methods.values()} == {1} and {m.model.filters for m in methods.values()} == {
        (4,) * 4
    }
    assert (study.train.optimizer, study.train.lr_schedule, study.train.learning_rate) == ("sgd", "constant", 0.002)
    assert (study.model.augment, study.model.dropout, study.train.weight_decay) == ("add", 0.3, 0.0)
    assert (modern.train.optimizer, modern.train.warmup_epochs, modern.model.augment) == ("adamw", 0.5, "photo")
    assert modern.model.dropout == config.MODERN_RECIPE["dropout"] and modern.train.loss == "crossentropy"
    assert retrieval_run == modern.replace(loss="arcface", margin=BEYOND.retrieval_margin, scale=BEYOND.retrieval_scale)


@pytest.mark.slow
def test_retrieval_thresholds_on_an_index_without_the_validation_images_and_answers_flips_alike(tmp_path):
    split = data.load_split(write_tiny_folder(tmp_path / "train"), val_fraction=0.34, seed=1)
    run = recognition.train_method("retrieval", split, RUN, BEYOND, tmp_path / "models", progress=False)
    assert run.tta == "flip" and "flip test-time augmentation" in run.recipe
    # the validation queries vote among the training rows only (a validation image would find itself)
    assert sorted(run.val_index.ids) == sorted(split.train["id"].astype(str))
    assert sorted(run.index.ids) == sorted(pd.concat([split.train, split.val])["id"].astype(str))
    rows = [list(run.index.ids).index(i) for i in run.val_index.ids]
    np.testing.assert_allclose(run.index.embeddings[rows], run.val_index.embeddings, atol=1e-6)
    saved = retrieval.EmbeddingIndex.load(retrieval.index_path(run.result.model_path))
    assert saved.ids.tolist() == list(run.index.ids) and saved.tta == "flip"
    # every image and its mirror image get the same embedding, hence the same answer
    x = data.load_images(split.val["path"].tolist(), 32, progress=False)
    pred, extra = recognition.answer(run, split.val, x=x)
    mirrored, extra_m = recognition.answer(run, split.val, x=np.ascontiguousarray(x[:, :, ::-1]))
    np.testing.assert_allclose(extra["embeddings"], extra_m["embeddings"], atol=1e-5)
    np.testing.assert_array_equal(pred.landmark, mirrored.landmark)
    run.tta = "none"
    plain, _ = recognition.answer(run, split.val, x=x)
    assert not np.allclose(plain.confidence, pred.confidence)  # the flips changed the answers' scores
    # an image that cannot be decoded is not answered (not answered as the black image it decodes to)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    frame = pd.concat([split.val, pd.DataFrame({"path": [str(bad)], "id": ["bad"]})], ignore_index=True)
    with_bad, _ = recognition.answer(run, frame)
    assert with_bad.landmark[-1] == -1 and np.isnan(with_bad.confidence[-1]) and (with_bad.top5[-1] == -1).all()
    np.testing.assert_array_equal(with_bad.landmark[:-1], plain.landmark)


def test_every_test_id_gets_exactly_one_submission_row(tmp_path):
    from landmarklib import catalog, openset, scoring

    queries = pd.DataFrame({"id": ["b", "d", "a"], "path": ["x", "y", "z"]})  # c was not fetched, d not decoded
    pred = openset.Predictions(
        landmark=np.array([7, -1, 5]), confidence=np.array([0.9, np.nan, 0.3]), top5=np.full((3, 5), -1), threshold=0.5
    )
    outcome = recognition.Outcome(predictions={"m": pred})
    written = recognition.write_submissions(outcome, queries, tmp_path, test_ids=["a", "b", "c", "d"])
    sub = catalog.read_submission(tmp_path / written["m"])
    assert sub["id"].tolist() == ["a", "b", "c", "d"]  # the test set's order, every id once
    assert sub["landmark_id"].tolist()[1] == 7 and sub["landmark_id"].isna().tolist() == [True, False, True, True]
    solution = pd.DataFrame({"id": list("abcd"), "landmarks": [[5], [7], [], [1]], "usage": ""})
    assert scoring.score(sub, solution)["all"]["n_answered"] == 1  # Kaggle's check passes: nothing missing
    with pytest.raises(ValueError, match="every query's id exactly once"):
        recognition.write_submissions(outcome, queries, tmp_path, test_ids=["a", "b"])
