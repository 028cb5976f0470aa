"""landmarklib.data: fetched folder -> split, label map, batches for Keras."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarklib import catalog, data
from landmarklib.nets import pipeline

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_COLUMNS = ["id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds"]
SIZE = 32  # stored image size in the test folders


def _image(seed: int, size: int = SIZE) -> Image.Image:
    """A smooth random picture (JPEG keeps it close to the original)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)
    base = rng.integers(0, 256, 3) * ramp[:, None, None] + rng.integers(0, 256, 3) * ramp[None, :, None]
    return Image.fromarray(np.clip(base / 2 + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8))


def _row(image_id: str, landmark_id, status: str = "ok", error: str = "") -> list:
    return [image_id, f"http://127.0.0.1/{image_id}.jpg", landmark_id, status, error, 100, SIZE, SIZE, "JPEG", 0.01]


@pytest.fixture
def fetched(tmp_path: Path) -> Path:
    """A folder as ``landmarks fetch`` leaves it: classes 7 (6 images), 30 (4), 500 (3), 9 (1 image),
    plus a failed row, an ok row whose file is gone, an unlabelled row and a resumed (repeated) row."""
    folder = tmp_path / "train"
    rows = []
    counts = {7: 6, 30: 4, 500: 3, 9: 1}
    n = 0
    for landmark_id, count in counts.items():
        for _ in range(count):
            image_id = f"img{n:03d}"
            (folder / str(landmark_id)).mkdir(parents=True, exist_ok=True)
            _image(n).save(folder / str(landmark_id) / f"{image_id}.jpg", quality=95)
            rows.append(_row(image_id, landmark_id))
            n += 1
    rows.append(_row("broken", 7, "failed", "HTTP 404"))
    rows.append(_row("gone", 30))  # status ok, but the file was deleted since
    rows.append(_row("nolabel", ""))
    _image(99).save(folder / "nolabel.jpg")
    rows.insert(0, _row("img000", 7, "failed", "timeout"))  # an earlier try, then fetched ok on resume
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    return folder


def _frame(folder: Path, n: int | None = None) -> pd.DataFrame:
    """Rows whose label is their position, so a batch's y tells which rows it holds."""
    rows, _ = data.read_folder(folder)
    rows = rows.iloc[:n] if n else rows
    return rows.assign(label=np.arange(len(rows), dtype=np.int32))


# --------------------------------------------------------------------------- folder, split, label map


def test_load_split_drops_failed_missing_unlabelled_and_small_classes(fetched):
    split = data.load_split(fetched, min_images=2, val_fraction=0.25, seed=1)
    assert split.dropped == {"failed": 1, "unlabelled": 1, "missing_file": 1, "unreadable": 0, "min_images": 1}
    assert split.landmark_ids == [7, 30, 500]
    both = pd.concat([split.train, split.val])
    assert sorted(both["id"]) == [f"img{i:03d}" for i in range(13)]
    assert list(both.columns) == ["path", "id", "landmark_id", "label"]
    assert both["label"].dtype == np.int32 and both["landmark_id"].dtype == np.int64
    for path, landmark_id in zip(both["path"], both["landmark_id"]):
        assert Path(path).is_file() and Path(path).parent.name == str(landmark_id)
    assert [split.landmark_ids[label] for label in both["label"]] == list(both["landmark_id"])


def test_min_images_one_keeps_singletons_in_train(fetched):
    split = data.load_split(fetched, min_images=1)
    assert split.landmark_ids == [7, 9, 30, 500]
    assert split.dropped["min_images"] == 0
    assert 9 in set(split.train["landmark_id"]) and 9 not in set(split.val["landmark_id"])


def test_split_is_deterministic_stratified_and_disjoint(fetched):
    first = data.load_split(fetched, min_images=2, val_fraction=0.25, seed=3)
    again = data.load_split(fetched, min_images=2, val_fraction=0.25, seed=3)
    pd.testing.assert_frame_equal(first.train, again.train)
    pd.testing.assert_frame_equal(first.val, again.val)
    assert not set(first.train["id"]) & set(first.val["id"])
    # every class in both parts; round(n * 0.25) (at least 1) rows in validation
    assert first.val["landmark_id"].value_counts().to_dict() == {7: 2, 30: 1, 500: 1}
    assert set(first.train["landmark_id"]) == {7, 30, 500}
    others = [set(data.load_split(fetched, min_images=2, val_fraction=0.25, seed=s).val["id"]) for s in range(4, 12)]
    assert any(o != set(first.val["id"]) for o in others)


def test_folder_without_manifest_is_scanned(fetched):
    with_manifest, _ = data.read_folder(fetched)
    (fetched / "manifest.csv").unlink()
    (fetched / "7" / "notes.txt").write_text("not an image")
    (fetched / "7" / "fake.jpg").write_text("not an image either")
    _image(5).convert("RGBA").save(fetched / "9" / "extra.png")
    rows, dropped = data.read_folder(fetched)
    assert dropped == {"failed": 0, "unlabelled": 1, "missing_file": 0, "unreadable": 1}
    assert set(rows["id"]) == set(with_manifest["id"]) | {"extra"}
    split = data.load_split(fetched, min_images=2)
    assert split.landmark_ids == [7, 9, 30, 500]  # 9 now has two images


def test_scanned_folder_needs_integer_folder_names(tmp_path):
    (tmp_path / "eiffel").mkdir()
    _image(0).save(tmp_path / "eiffel" / "a.jpg")
    with pytest.raises(ValueError, match="'eiffel' is not an integer landmark_id"):
        data.read_folder(tmp_path)


def test_manifest_errors_name_file_line_and_column(fetched):
    manifest = fetched / "manifest.csv"
    lines = manifest.read_text().splitlines()
    lines[3] = lines[3].replace(",7,ok,", ",seven,ok,")
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(catalog.CatalogError) as err:
        data.load_split(fetched)
    assert (err.value.path, err.value.line, err.value.column) == (str(manifest), 4, "landmark_id")
    manifest.write_text("id,url\nx,y\n")
    with pytest.raises(catalog.CatalogError, match="missing column"):
        data.load_split(fetched)


def test_nothing_usable_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.load_split(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no usable labelled image"):
        data.load_split(tmp_path)


def test_label_map_round_trip(tmp_path):
    path = data.save_label_map(tmp_path / "models" / "m.labels.json", [np.int64(3), 17, 200001])
    assert json.loads(path.read_text()) == {"landmark_ids": [3, 17, 200001]}
    assert data.load_label_map(path) == [3, 17, 200001]
    path.write_text('{"landmark_ids": ["a"]}')
    with pytest.raises(ValueError, match="list of integers"):
        data.load_label_map(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a label map"):
        data.load_label_map(path)


# --------------------------------------------------------------------------- decoding and batches


def test_batches_match_pil_decode_at_stored_size(fetched):
    frame = _frame(fetched)
    feed = pipeline.batches(frame, SIZE, 4, cache=False)
    x, y = feed[1]
    assert x.dtype == np.float32 and x.shape == (4, SIZE, SIZE, 3)
    assert y.dtype == np.int32 and list(y) == [4, 5, 6, 7]
    for image, path in zip(x, frame["path"].iloc[4:8]):
        np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB"), dtype=np.float32))


def test_smaller_input_is_close_to_a_full_decode_and_resize(fetched):
    frame = _frame(fetched)
    x = data.load_images(frame["path"], 16, progress=False)
    assert x.dtype == np.uint8 and x.shape == (len(frame), 16, 16, 3)
    for image, path in zip(x, frame["path"]):
        reference = np.asarray(Image.open(path).convert("RGB").resize((16, 16), Image.Resampling.BICUBIC))
        assert np.abs(image.astype(int) - reference).mean() < 4
    np.testing.assert_array_equal(pipeline.batches(frame, 16, len(frame))[0][0], x.astype(np.float32))


def test_other_formats_come_out_rgb(tmp_path):
    paths = [tmp_path / "gray.jpg", tmp_path / "alpha.png", tmp_path / "palette.gif"]
    _image(1).convert("L").save(paths[0])
    transparent = np.zeros((SIZE, SIZE, 4), np.uint8)
    Image.fromarray(transparent).save(paths[1])
    _image(2).convert("P").save(paths[2])
    x = data.load_images(paths, 8, progress=False)
    assert x.shape == (3, 8, 8, 3)
    assert (x[1] == 255).all()  # transparent -> white
    assert np.ptp(x[0], axis=-1).max() == 0  # gray stays gray


def test_undecodable_image_is_black_and_recorded(fetched):
    frame = _frame(fetched, 5)
    bad = frame["path"].iloc[2]
    Path(bad).write_bytes(b"\xff\xd8\xff not really a jpeg")
    errors: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the caller collects the errors (and reports them): no warning
        x = data.load_images(frame["path"], SIZE, errors=errors, progress=False)
    assert list(errors) == [bad] and errors[bad].startswith("UnidentifiedImageError")
    assert (x[2] == 0).all() and x[1].any()
    with pytest.warns(UserWarning, match="cannot decode image, using a black image"):  # nobody collects: warned
        again = data.load_images(frame["path"], SIZE, progress=False)
    np.testing.assert_array_equal(again, x)
    feed = pipeline.batches(frame, SIZE, 5)
    with pytest.warns(UserWarning):
        feed[0]
    assert list(feed.errors) == [bad]


def test_last_partial_batch_and_range(fetched):
    frame = _frame(fetched, 10)
    feed = pipeline.batches(frame, 8, 4)
    assert len(feed) == 3
    assert [feed[i][0].shape[0] for i in range(3)] == [4, 4, 2]
    with pytest.raises(IndexError):
        feed[3]


def _epoch_labels(feed) -> list[int]:
    return [int(v) for i in range(len(feed)) for v in feed[i][1]]


def test_shuffle_is_seeded_per_epoch_and_covers_every_row_once(fetched):
    frame = _frame(fetched)
    n = len(frame)
    feed = pipeline.batches(frame, 8, 5, shuffle=True, seed=7)
    epochs = []
    for _ in range(3):
        feed.on_epoch_begin()
        epochs.append(_epoch_labels(feed))
        feed.on_epoch_end()
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(n))

    same = pipeline.batches(frame, 8, 5, shuffle=True, seed=7)
    assert _epoch_labels(same) == epochs[0]
    same.set_epoch(2)
    assert _epoch_labels(same) == epochs[2]
    assert _epoch_labels(pipeline.batches(frame, 8, 5, shuffle=True, seed=8)) != epochs[0]
    assert _epoch_labels(pipeline.batches(frame, 8, 5)) == list(range(n))


def test_epoch_end_outside_an_epoch_keeps_the_order(fetched):
    """Keras resets its iterator (reporting on_epoch_end) before training starts."""
    feed = pipeline.batches(_frame(fetched), 8, 5, shuffle=True, seed=7)
    first = _epoch_labels(feed)
    feed.on_epoch_end()
    assert feed.epoch == 0 and _epoch_labels(feed) == first


def test_cache_serves_later_epochs_without_the_files(fetched):
    frame = _frame(fetched, 6)
    feed = pipeline.batches(frame, 16, 4, shuffle=True, seed=0)
    decoded = data.load_images(frame["path"], 16, progress=False)
    feed.on_epoch_begin()
    first = [feed[i] for i in range(len(feed))]
    feed.on_epoch_end()
    for path in frame["path"]:
        os.remove(path)
    for x, y in first + [feed[i] for i in range(len(feed))]:
        np.testing.assert_array_equal(x, decoded[y].astype(np.float32))
    assert feed.errors == {}


def test_a_failing_cache_turns_itself_off(fetched, monkeypatch):
    def disk_full(*args):
        raise OSError(28, "No space left on device")

    frame = _frame(fetched, 4)
    feed = pipeline.batches(frame, 16, 4)
    monkeypatch.setattr(data.os, "pwrite", disk_full)
    with pytest.warns(UserWarning, match="cache turned off"):
        x, _ = feed[0]
    assert not feed.cache.enabled
    np.testing.assert_array_equal(x, data.load_images(frame["path"], 16, progress=False).astype(np.float32))


# --------------------------------------------------------------------------- Keras


_FIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    from landmarklib import data
    from landmarklib.nets import pipeline

    split = data.load_split(sys.argv[1], min_images=2, val_fraction=0.25, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(split.landmark_ids), activation="softmax"),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    train = pipeline.batches(split.train, 16, 4, shuffle=True, seed=0)
    val = pipeline.batches(split.val, 16, 4)
    history = model.fit(train, validation_data=val, epochs=2, verbose=0)
    one = model.fit(train, epochs=1, steps_per_epoch=1, verbose=0)
    probs = model.predict(pipeline.batches(split.val, 16, 3), verbose=0)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "epochs": len(history.history["loss"]),
        "val_loss": history.history["val_loss"][-1],
        "train_epoch": train.epoch,
        "one_step_loss": one.history["loss"][0],
        "predict_shape": list(probs.shape),
    }))
    """
)


def _fit_in(backend: str, folder: Path) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", _FIT_SCRIPT, str(folder)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_model_fit_with_batches(fetched, backend):
    pytest.importorskip(backend)
    result = _fit_in(backend, fetched)
    assert result["backend"] == backend
    assert result["epochs"] == 2 and np.isfinite(result["val_loss"])
    # one order per epoch Keras runs: 2 + 1, and under JAX the build pass of the unbuilt model
    assert result["train_epoch"] == (4 if backend == "jax" else 3)
    assert np.isfinite(result["one_step_loss"])
    assert result["predict_shape"] == [4, 3]  # 4 validation rows (2 + 1 + 1), 3 classes
