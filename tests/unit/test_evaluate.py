"""GAP, accuracy, thresholds, submission, `landmarks predict` and timing, on hand-computed cases."""

import csv
import math
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarklib import catalog, evaluate, predict
from landmarklib.nets import inference
from landmarklib.nets.metrics import StrictTopKAccuracy


def brute_force_gap(predicted, confidence, actual, ids):
    """The competition's definition, one image at a time."""
    rows = [i for i in range(len(predicted)) if predicted[i] is not None]
    rows.sort(key=lambda i: (-confidence[i], ids[i]))
    hits, total = 0, 0.0
    for rank, i in enumerate(rows, start=1):
        if actual[i] is not None and predicted[i] == actual[i]:
            hits += 1
            total += hits / rank
    return total / sum(a is not None for a in actual)


# --------------------------------------------------------------------------- GAP


def test_gap_reference_case():
    # A right (10), B wrong (0.01), C non-landmark predicted (15), D landmark without prediction, E neither.
    predicted = ["A", "X", "C", None, None]
    confidence = [10, 0.01, 15, np.nan, np.nan]
    actual = ["A", "B", None, "D", None]
    # ranking C(15) wrong, A(10) right at rank 2 -> 1/2; B wrong; 3 landmark images.
    assert evaluate.gap(predicted, confidence, actual) == pytest.approx(0.5 / 3)
    assert evaluate.gap(predicted, confidence, actual) == pytest.approx(0.166667, abs=1e-6)


def test_gap_ties_are_broken_by_image_id():
    predicted, confidence, actual = [1, 2], [0.5, 0.5], [1, 3]
    # id "b" is right, "a" wrong: "a" ranks first -> the right one sits at rank 2.
    assert evaluate.gap(predicted, confidence, actual, ids=["b", "a"]) == pytest.approx(0.5 / 2)
    assert evaluate.gap(predicted, confidence, actual, ids=["a", "b"]) == pytest.approx(1.0 / 2)
    assert evaluate.gap(predicted, confidence, actual) == pytest.approx(1.0 / 2)  # index order


def test_gap_edge_cases():
    actual = [1, 2, 3]
    assert evaluate.gap([None] * 3, [np.nan] * 3, actual) == 0.0
    assert evaluate.gap([1, 2, 3], [0.1, 0.9, 0.5], actual) == 1.0
    assert evaluate.gap([2, 3, 1], [0.1, 0.9, 0.5], actual) == 0.0
    # right, wrong, right by confidence: (1/1 + 2/3) / 3
    assert evaluate.gap([1, 9, 3], [0.9, 0.5, 0.1], actual) == pytest.approx((1 + 2 / 3) / 3)
    # a missing prediction only loses recall: one right answer of three landmark images
    assert evaluate.gap([1, None, None], [0.9, np.nan, np.nan], actual) == pytest.approx(1 / 3)


def test_confident_prediction_on_a_non_landmark_image_pushes_the_rest_down():
    actual = [1, 2, None]
    without = evaluate.gap([1, 2, None], [0.9, 0.8, np.nan], actual)
    with_it = evaluate.gap([1, 2, 5], [0.9, 0.8, 0.95], actual)
    assert without == 1.0
    assert with_it == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_gap_labels_compare_across_types_and_missing_markers():
    assert evaluate.gap([7, "12", 3.0], [0.3, 0.2, 0.1], ["7", 12, "3"]) == 1.0
    assert evaluate.gap([7, 12], [0.3, 0.2], pd.array([7, pd.NA], dtype="Int64")) == 1.0
    assert evaluate.gap([7, 12], [0.3, 0.2], ["7", ""]) == 1.0


def test_gap_rejects_bad_input():
    with pytest.raises(ValueError, match="no test image shows a landmark"):
        evaluate.gap([1], [0.5], [None])
    with pytest.raises(ValueError, match="finite confidence"):
        evaluate.gap([1, 2], [0.5, np.nan], [1, 2])
    with pytest.raises(ValueError, match="one entry per test image"):
        evaluate.gap([1, 2], [0.5, 0.4], [1])


def test_gap_matches_the_definition_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        actual = [None if rng.random() < 0.3 else int(rng.integers(0, 4)) for _ in range(n)]
        if all(a is None for a in actual):
            actual[0] = 0
        predicted = [None if rng.random() < 0.2 else int(rng.integers(0, 4)) for _ in range(n)]
        confidence = [float(rng.integers(0, 5)) / 4 for _ in range(n)]  # many ties
        ids = [f"{v:03d}" for v in rng.permutation(n)]
        expected = brute_force_gap(predicted, confidence, actual, ids)
        assert evaluate.gap(predicted, confidence, actual, ids) == pytest.approx(expected)


# --------------------------------------------------------------------------- thresholds


def test_threshold_curve_on_the_reference_case():
    confidence = [10, 0.01, 15, np.nan, np.nan]
    correct = [True, False, False, False, False]
    curve = evaluate.threshold_curve(confidence, correct, [0, 0.045, 12, 20], n_landmarks=3)
    assert list(curve.columns) == ["threshold", "answered", "answered_share", "precision_answered", "gap"]
    assert curve["answered"].tolist() == [3, 2, 1, 0]
    assert curve["answered_share"].tolist() == pytest.approx([0.6, 0.4, 0.2, 0.0])
    assert curve["precision_answered"].tolist()[:3] == pytest.approx([1 / 3, 1 / 2, 0.0])
    assert math.isnan(curve["precision_answered"].iloc[3])
    assert curve["gap"].tolist() == pytest.approx([1 / 6, 1 / 6, 0.0, 0.0])


def test_gap_never_rises_with_the_threshold():
    rng = np.random.default_rng(1)
    thresholds = np.linspace(0, 1, 21)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        confidence = np.round(rng.random(n), 1)  # ties
        confidence[rng.random(n) < 0.1] = np.nan
        correct = rng.random(n) < rng.random()
        ids = rng.permutation(n)
        curve = evaluate.threshold_curve(confidence, correct, thresholds, n_landmarks=n, ids=ids)
        assert (np.diff(curve["gap"].to_numpy()) <= 1e-12).all()
        # at threshold 0 every prediction counts: the curve agrees with gap()
        predicted = np.where(correct, 1, 2).astype(object)
        predicted[np.isnan(confidence)] = None
        assert curve["gap"].iloc[0] == pytest.approx(evaluate.gap(predicted, confidence, [1] * n, ids))


# --------------------------------------------------------------------------- accuracy


def test_accuracy_and_top_k():
    assert evaluate.accuracy([1, 2, None, 4], [1, 3, 5, None]) == pytest.approx(1 / 3)
    assert math.isnan(evaluate.accuracy([1], [None]))
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    labels = [1, 2, 0]
    assert evaluate.top_k_accuracy(probs, labels, 1) == pytest.approx(1 / 3)
    assert evaluate.top_k_accuracy(probs, labels, 2) == pytest.approx(2 / 3)
    # top-5 needs more than five classes to mean anything: seven, with ties across the fifth place
    seven = np.array(
        [
            [0.30, 0.05, 0.20, 0.10, 0.10, 0.10, 0.15],  # order 0, 2, 6, 3, 4 | 5, 1
            [0.30, 0.05, 0.20, 0.10, 0.10, 0.10, 0.15],
            [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.70],  # order 6, 0, 1, 2, 3 | 4, 5
            [0.10, 0.20, 0.10, 0.20, 0.10, 0.20, 0.10],  # order 1, 3, 5, 0, 2 | 4, 6
        ]
    )
    # row 0: label 5 ties with the fifth (class 4) and loses on index; row 1: label 4 is that fifth;
    # row 2: label 4 is sixth (tied with 0-3, a higher index); row 3: label 2 wins the fifth place from 4 and 6
    seven_labels = [5, 4, 4, 2]
    assert evaluate.top_k_accuracy(seven, seven_labels, 5) == pytest.approx(2 / 4)  # rows 1 and 3
    assert evaluate.top_k_accuracy(seven, seven_labels, 6) == 1.0  # every label is at most sixth
    assert evaluate.top_k_accuracy(seven, seven_labels, 1) == 0.0
    assert evaluate.top_k_ids(seven, [10, 11, 12, 13, 14, 15, 16], 5).tolist() == [
        [10, 12, 16, 13, 14],
        [10, 12, 16, 13, 14],
        [16, 10, 11, 12, 13],
        [11, 13, 15, 10, 12],
    ]
    assert evaluate.top_k_accuracy(probs, [1, -1, -1], 3) == pytest.approx(1 / 3)
    assert evaluate.top_k_ids(probs, [10, 20, 30], 2).tolist() == [[20, 30], [10, 30], [30, 20]]


def test_top_k_is_strict_on_tied_scores_and_misses_a_diverged_row():
    # a collapsed model: every class the same score. Only the k lowest class indices are its top k.
    flat = np.full((6, 10), 0.1, dtype=np.float32)
    labels = np.array([0, 4, 5, 9, 2, 7])
    assert evaluate.top_k_accuracy(flat, labels, 5) == pytest.approx(3 / 6)  # labels 0, 4, 2
    assert evaluate.top_k_accuracy(flat, labels, 1) == pytest.approx(1 / 6)  # label 0
    assert evaluate.top_k_ids(flat[:1], list(range(100, 110)), 5).tolist() == [[100, 101, 102, 103, 104]]
    # a tie across the k-th place: class 3 ties with class 1 at second place, the lower index wins
    probs = np.array([[0.4, 0.2, 0.1, 0.2, 0.1]])
    assert evaluate.top_k_accuracy(probs, [1], 2) == 1.0 and evaluate.top_k_accuracy(probs, [3], 2) == 0.0
    assert evaluate.top_k_ids(probs, [10, 11, 12, 13, 14], 3).tolist() == [[10, 11, 13]]
    # NaN scores (a diverged model) are never a hit
    assert evaluate.top_k_accuracy(np.full((2, 10), np.nan), [0, 3], 5) == 0.0


@pytest.mark.slow
def test_keras_top5_metric_is_strict_and_matches_numpy():
    import keras

    rng = np.random.default_rng(3)
    probs = rng.integers(0, 3, (64, 12)).astype("float32")  # many ties
    probs[:8] = 0.25  # rows that are one big tie
    probs[8, 0] = np.nan
    labels = rng.integers(0, 12, 64)
    metric = StrictTopKAccuracy(k=5, name="top5")
    metric.update_state(labels, probs)
    assert float(metric.result()) == pytest.approx(evaluate.top_k_accuracy(probs, labels, 5), abs=1e-6)
    keras_top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    keras_top5.update_state(labels[:8], probs[:8])
    assert float(keras_top5.result()) == 1.0  # Keras counts every tied class: why it is not used
    assert evaluate.top_k_accuracy(probs[:8], labels[:8], 5) == pytest.approx(np.mean(labels[:8] < 5))
    clone = type(metric).from_config(metric.get_config())
    assert (clone.k, clone.name) == (5, "top5")


@pytest.mark.slow
def test_log_probabilities_give_keras_cross_entropy_where_float32_probabilities_underflow():
    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(inputs))
    model.get_layer("predictions").set_weights([np.eye(3, dtype="float32") * 40, np.zeros(3, "float32")])
    x, y = np.eye(3, dtype="float32"), np.array([1, 2, 0])  # every true class at e^-40: far below 1e-7
    probs, logs = inference.predict_probabilities(model, x, with_log=True)
    ours = float(-logs[np.arange(3), y].mean())
    model.compile(loss="sparse_categorical_crossentropy")
    assert ours == pytest.approx(40.0, rel=1e-6)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(ours, rel=1e-5)  # Keras uses the logits too
    # what -log of the clipped float32 probability gives instead (issue 8's 6.89 against 10.11)
    assert -np.log(np.clip(probs[np.arange(3), y], 1e-7, 1)).mean() == pytest.approx(16.118, abs=1e-3)
    # one traced function per model, whatever the batch size
    fn = inference.inference_function(model)
    assert inference.inference_function(model) is fn
    assert fn(x[:1])[0].shape == (1, 3) and fn(np.tile(x, (5, 1)))[0].shape == (15, 3)
    if keras.backend.backend() == "tensorflow":
        assert fn.tracing_count() == 1  # no retracing for the new batch sizes


def test_confusion_matrix():
    predicted = [1, 1, 2, 3, None, 4, 1]
    actual = [1, 2, 2, 3, 3, 5, 1]
    cm = evaluate.confusion_matrix(predicted, actual, top_n=2)
    assert list(cm.index) == [1, 2, "other"] and list(cm.columns) == [1, 2, "other"]
    assert cm.to_numpy().tolist() == [[2, 0, 0], [1, 1, 0], [0, 0, 3]]
    assert cm.to_numpy().sum() == len(actual)


# --------------------------------------------------------------------------- submission and scoring


def test_write_submission_format(tmp_path):
    pred = pd.DataFrame(
        {
            "id": ["a1", "b,2", "c3", "d4"],
            "landmark_id": pd.array([7, 12, 5, pd.NA], dtype="Int64"),
            "confidence": [0.5, 0.0449, 0.045, np.nan],
        }
    )
    path = predict.write_submission(pred, tmp_path / "sub.csv", threshold=0.045)
    text = path.read_text()
    assert text.splitlines()[0] == "id,landmarks"
    assert text.splitlines()[1] == "a1,7 0.500000"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["a1", "b,2", "c3", "d4"]  # every id, quoted where needed
    assert [r["landmarks"] for r in rows] == ["7 0.500000", "", "5 0.045000", ""]


def test_score_combines_everything():
    pred = pd.DataFrame(
        {
            "id": ["a", "b", "c", "x"],
            "landmark_id": pd.array([1, 9, 3, 4], dtype="Int64"),
            "confidence": [0.9, 0.5, 0.01, 0.99],
            "top_ids": ["1 2", "9 2", "3 1", "4 1"],
        }
    )
    solution = pd.DataFrame({"id": ["a", "b", "c", "d", "x"], "landmark_id": ["1", "2", "3", "4", ""]})
    s = evaluate.score(pred, solution, threshold=0.045)
    # answered: x (0.99, no landmark), a right, b wrong; c below the threshold. 4 landmark images.
    assert s["gap"] == pytest.approx((1 / 2) / 4)
    assert s["gap_all"] == pytest.approx((1 / 2 + 2 / 4) / 4)
    assert s["n_test"] == 5 and s["n_landmark_images"] == 4 and s["n_answered"] == 3
    assert s["answered_share"] == pytest.approx(3 / 5)
    assert s["answered_precision"] == pytest.approx(1 / 3)
    assert s["top1"] == pytest.approx(2 / 4)
    assert s["top5"] == pytest.approx(3 / 4)


def test_a_solution_file_is_read_by_catalog_read_solution(tmp_path):
    path = tmp_path / "test_solution.csv"
    path.write_text("id,landmark\na,1\n")
    with pytest.raises(catalog.CatalogError, match="missing column landmark_id"):
        evaluate.score(pd.DataFrame({"id": ["a"], "landmark_id": [1], "confidence": [0.9]}), path)
    path.write_text("id,landmarks,Usage\na,7 9,Private\nb,,Public\n")  # GLDv2 layout: the first landmark counts
    pred = pd.DataFrame({"id": ["a", "b"], "landmark_id": [7, 7], "confidence": [0.9, 0.1]})
    s = evaluate.score(pred, path, threshold=0.5)
    assert (s["n_test"], s["n_landmark_images"], s["top1"], s["gap"]) == (2, 1, 1.0, 1.0)


# --------------------------------------------------------------------------- predict CLI and timing


# A 7-class model whose answer does not depend on the image: zero weights, these biases (logits).
# Classes by probability: 1, 3, then 0, 2, 5, 6 tied (index order), then 4; top-5: 1, 3, 0, 2, 5.
CONSTANT_LOGITS = [1.0, 3.0, 1.0, 2.0, 0.0, 1.0, 1.0]
CONSTANT_LANDMARKS = [11, 22, 33, 44, 55, 66, 77]


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    """A 7-class 16 px model answering every image alike (``CONSTANT_LOGITS``), saved with its label map."""
    import keras

    from landmarklib import data

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Rescaling(1 / 255, name="rescale")(inputs))
    outputs = keras.layers.Dense(
        7,
        activation="softmax",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(CONSTANT_LOGITS),
        name="predictions",
    )(x)
    path = tmp_path_factory.mktemp("constant") / "constant.keras"
    keras.Model(inputs, outputs).save(path)
    data.save_label_map(path.with_name("constant.labels.json"), CONSTANT_LANDMARKS)
    return path


def _write_jpeg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")


def test_predict_cli_on_a_fetched_folder(tiny_model, tmp_path, capsys):
    from landmarklib import cli

    folder = tmp_path / "test"
    for i in range(5):
        _write_jpeg(folder / f"t{i}.jpg", i)
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    manifest = ["id,url,landmark_id,status,error,bytes,width,height,format,seconds"]
    manifest += [f"t{i},http://x/{i},,ok,,1,20,20,JPEG,0.1" for i in range(5)]
    manifest += ["gone,http://x/gone,,failed,HTTP 404,,,,,0.1", "bad,http://x/bad,,ok,,1,20,20,JPEG,0.1"]
    (folder / "manifest.csv").write_text("\n".join(manifest) + "\n")
    out = tmp_path / "out" / "pred.csv"

    rc = cli.main(
        ["predict", "--model", str(tiny_model), "--images", str(folder), "--threshold", "0.34", "--out", str(out)]
    )

    assert rc == 0
    pred = pd.read_csv(out, dtype={"id": str})
    assert list(pred.columns) == ["id", "landmark_id", "confidence", "answered", "top_ids", "error"]
    assert pred["id"].tolist() == ["t0", "t1", "t2", "t3", "t4", "gone", "bad"]
    ok = pred.iloc[:5]
    assert ok["landmark_id"].isin([11, 22, 33]).all()
    assert ((ok["confidence"] >= 1 / 3) & (ok["confidence"] <= 1)).all()
    assert (ok["answered"] == (ok["confidence"] >= 0.34)).all()
    assert all(len(t.split()) == 3 for t in ok["top_ids"])
    assert pred.loc[5, "error"] == "HTTP 404" and pred.loc[6, "error"]  # decode failure recorded
    assert pred.iloc[5:]["confidence"].isna().all() and not pred.iloc[5:]["answered"].any()

    sub_path = predict.submission_path(out)
    assert sub_path == tmp_path / "out" / "pred_submission.csv"
    sub = pd.read_csv(sub_path, dtype=str, keep_default_na=False)
    assert sub["id"].tolist() == pred["id"].tolist()
    expected = [
        f"{int(lid)} {c:.6f}" if a else ""
        for lid, c, a in zip(pred["landmark_id"].fillna(0), pred["confidence"], pred["answered"])
    ]
    assert sub["landmarks"].tolist() == expected
    printed = capsys.readouterr().out
    assert str(out) in printed and str(sub_path) in printed


def test_predict_on_a_labelled_folder_and_score(constant_model, tmp_path):
    folder = tmp_path / "labelled"
    truth = [77, 55, 22, 66]
    for i, lid in enumerate(truth):
        _write_jpeg(folder / str(lid) / f"img{i}.jpg", 10 + i)
    pred = predict.predict(constant_model, folder, threshold=0.0, progress=False)
    assert sorted(pred["id"]) == ["img0", "img1", "img2", "img3"]  # in path order: by landmark folder first
    pred = pred.sort_values("id", ignore_index=True)
    assert pred["answered"].all() and pred["landmark_id"].tolist() == [22] * 4
    logits = np.array(CONSTANT_LOGITS)
    np.testing.assert_allclose(pred["confidence"], np.exp(3.0) / np.exp(logits).sum(), rtol=1e-6)
    assert pred["top_ids"].tolist() == ["22 44 11 33 66"] * 4  # 66 and 77 tie: the lower class index is listed
    solution = pd.DataFrame({"id": [f"img{i}" for i in range(4)], "landmark_id": truth})
    s = evaluate.score(pred, solution, threshold=0.0)
    # top-5: 22 and 66 are listed, 77 (tied with 66, a higher index) and 55 (last) are not
    assert s["top5"] == pytest.approx(2 / 4)
    assert s["top1"] == pytest.approx(1 / 4) == evaluate.accuracy(pred["landmark_id"], solution["landmark_id"])
    # one confidence for all: ranked by id, the one right answer (img2) is third
    assert s["gap"] == pytest.approx((1 / 3) / 4)


def test_predict_with_flips_answers_an_image_and_its_mirror_image_alike(tiny_model, tmp_path):
    for i in range(4):
        _write_jpeg(tmp_path / "plain" / f"img{i}.jpg", 20 + i)
        image = Image.open(tmp_path / "plain" / f"img{i}.jpg")
        (tmp_path / "mirrored").mkdir(exist_ok=True)
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "mirrored" / f"img{i}.jpg", "PNG")
    flip, mirrored, plain = (
        predict.predict(tiny_model, tmp_path / folder, threshold=0.0, progress=False, tta=tta)
        for folder, tta in (("plain", "flip"), ("mirrored", "flip"), ("plain", "none"))
    )
    assert flip["landmark_id"].tolist() == mirrored["landmark_id"].tolist()
    np.testing.assert_allclose(flip["confidence"], mirrored["confidence"], atol=1e-6)
    assert not np.allclose(flip["confidence"], plain["confidence"], atol=1e-4)
    with pytest.raises(ValueError, match="tta must be one of"):
        predict.predict(tiny_model, tmp_path / "plain", progress=False, tta="rotate")


def test_predict_rejects_a_missing_source(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder of images nor a CSV"):
        predict.predict(tiny_model, tmp_path / "nothing", progress=False)


def test_time_model_returns_positive_numbers(tiny_model, tmp_path):
    folder = tmp_path / "imgs"
    for i in range(3):
        _write_jpeg(folder / f"t{i}.jpg", i)
    t = inference.time_model(tiny_model, folder, n_latency=5, warmup=2, batch_size=4, n_batches=2)
    for key in (
        "load_seconds",
        "latency_median_ms",
        "latency_p90_ms",
        "predict_one_median_ms",
        "batch_images_per_second",
        "decode_median_ms",
    ):
        assert t[key] > 0 and math.isfinite(t[key]), key
    assert t["latency_p90_ms"] >= t["latency_median_ms"]
    assert t["backend"] == "tensorflow"
    x = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    t2 = inference.time_model(tiny_model, x, n_latency=3, warmup=1, batch_size=2, n_batches=1)
    assert t2["decode_median_ms"] is None and t2["batch_images_per_second"] > 0
    table = evaluate.timing_table({"res_incep": t, "other": t2})
    assert table.loc["res_incep", "study_seconds_per_image"] == 33.14
    assert table.loc["res_incep", "study_over_measured"] == pytest.approx(33.14e3 / t["latency_median_ms"])
    assert math.isnan(table.loc["other", "study_seconds_per_image"])


def test_importing_evaluate_and_predict_does_not_import_keras():
    import subprocess

    code = "import sys, landmarklib.evaluate, landmarklib.predict; print('keras' in sys.modules)"  # predict --help
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_predict_cli_fetches_a_test_csv_at_the_model_input_size(tiny_model, tmp_path):
    from landmarklib import cli

    raw = tmp_path / "raw"
    for i in range(3):
        _write_jpeg(raw / "images" / f"q{i}.jpg", 20 + i)
    (raw / "test.csv").write_text(
        "id,url\n" + "".join(f"q{i},images/q{i}.jpg\n" for i in range(3)) + "q9,images/missing.jpg\n"
    )
    out = tmp_path / "run" / "pred.csv"

    assert cli.main(["predict", "--model", str(tiny_model), "--images", str(raw / "test.csv"), "--out", str(out)]) == 0

    fetched = tmp_path / "run" / "pred_images"
    assert (fetched / "manifest.csv").is_file()
    with Image.open(fetched / "q0.jpg") as img:
        assert img.size == (16, 16)
    pred = pd.read_csv(out, dtype={"id": str})
    assert sorted(pred["id"]) == ["q0", "q1", "q2", "q9"]
    assert pred.set_index("id").loc[["q0", "q1", "q2"], "confidence"].notna().all()
    missing = pred.set_index("id").loc["q9"]
    assert math.isnan(missing["confidence"]) and isinstance(missing["error"], str)
    sub = pd.read_csv(predict.submission_path(out), dtype=str, keep_default_na=False)
    assert sorted(sub["id"]) == ["q0", "q1", "q2", "q9"]


@pytest.mark.slow
def test_flip_tta_averages_each_image_with_its_mirror_image():
    import keras

    inputs = keras.Input((1, 3, 1))
    flat = keras.layers.Flatten(name="flat")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(flat))
    model.get_layer("predictions").set_weights([np.array([[1, 0], [0, 0], [0, 1]], "float32"), np.zeros(2, "float32")])
    x = np.array([[[[2.0], [0.0], [0.0]]], [[[0.0], [1.0], [3.0]]]], "float32")  # (2, 1, 3, 1), not symmetric
    plain = inference.predict_probabilities(model, x)
    mirrored = inference.predict_probabilities(model, x[:, :, ::-1])
    assert np.abs(plain - mirrored).max() > 0.5  # the mirror image is answered differently
    np.testing.assert_array_equal(inference.predict_probabilities(model, x, tta="none"), plain)
    probs, logs = inference.predict_probabilities(model, x, with_log=True, tta="flip")
    np.testing.assert_allclose(probs, (plain + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(np.exp(logs), (plain + mirrored) / 2, atol=1e-6)
    # an image and its mirror image get one answer; the batch path agrees with the array path
    np.testing.assert_allclose(inference.predict_probabilities(model, x[:, :, ::-1], tta="flip"), probs, atol=1e-7)
    np.testing.assert_allclose(inference.predict_probabilities(model, [(x, None)], tta="flip"), probs, atol=1e-7)
    with pytest.raises(ValueError, match="tta must be one of"):
        inference.predict_probabilities(model, x, tta="rotate")


def test_predict_answers_at_the_models_own_threshold_and_says_where_it_came_from(tiny_model, tmp_path, capsys):
    from landmarklib import cli, scoring

    folder = tmp_path / "test"
    for i in range(6):
        _write_jpeg(folder / f"t{i}.jpg", i)
    model = tmp_path / "m" / "tiny.keras"  # a copy of the model, so that its threshold file is this test's own
    model.parent.mkdir()
    model.write_bytes(tiny_model.read_bytes())
    model.with_name("tiny.labels.json").write_bytes(tiny_model.with_name("tiny.labels.json").read_bytes())
    args = ["predict", "--model", str(model), "--images", str(folder), "--out"]

    assert cli.main([*args, str(tmp_path / "default.csv")]) == 0  # no threshold file: the study's
    assert f"threshold:   {evaluate.DEFAULT_THRESHOLD:g} (the study's default" in capsys.readouterr().out
    scores = pd.read_csv(tmp_path / "default.csv")["confidence"].sort_values().to_numpy()
    own = float((scores[2] + scores[3]) / 2)  # half of the images lie above it
    assert scores[2] < own < scores[3]
    written = scoring.save_threshold(model, own, "6 validation queries")
    assert written == model.with_name("tiny.threshold.json")

    assert cli.main([*args, str(tmp_path / "own.csv")]) == 0
    printed = capsys.readouterr().out
    assert f"threshold:   {own:g} (the model's own, chosen on 6 validation queries (tiny.threshold.json))" in printed
    pred = pd.read_csv(tmp_path / "own.csv")
    assert pred["answered"].sum() == 3 and (pred["answered"] == (pred["confidence"] >= own)).all()
    sub = pd.read_csv(predict.submission_path(tmp_path / "own.csv"), dtype=str, keep_default_na=False)
    assert (sub["landmarks"] != "").sum() == 3

    assert cli.main([*args, str(tmp_path / "given.csv"), "--threshold", "0"]) == 0  # --threshold still wins
    assert "threshold:   0 (given)" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "given.csv")["answered"].all()

    written.write_text("{}")
    assert cli.main([*args, str(tmp_path / "bad.csv")]) == 2
    assert "tiny.threshold.json: not a threshold file" in capsys.readouterr().err
