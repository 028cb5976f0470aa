"""Dask engines on a real LocalCluster of 2 worker processes: prediction (and fetch) match the local engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarklib import cluster, evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of 2 single-thread worker processes, shared by this module's tests."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as lc, Client(lc) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


# --------------------------------------------------------------------------- prediction


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 3-class 16 px model saved as <dir>/tiny.keras with its label map."""
    import keras

    from landmarklib import data

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    data.save_label_map(path.with_name("tiny.labels.json"), [11, 22, 33])
    return path


def _fetched_test_folder(folder, n=45):
    """n random JPEGs, one that does not decode and one failed fetch, with their manifest."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"t{i:02d}.jpg", "JPEG")
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    rows = ["id,url,landmark_id,status,error,bytes,width,height,format,seconds"]
    rows += [f"t{i:02d},http://x/{i},,ok,,1,20,20,JPEG,0.1" for i in range(n // 2)]
    rows += ["bad,http://x/bad,,ok,,1,20,20,JPEG,0.1", "gone,http://x/gone,,failed,HTTP 404,,,,,0.1"]
    rows += [f"t{i:02d},http://x/{i},,ok,,1,20,20,JPEG,0.1" for i in range(n // 2, n)]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_dask_prediction_is_identical_to_local(tiny_model, tmp_path, dask_client):
    from landmarklib import cli

    folder = _fetched_test_folder(tmp_path / "test")
    local, dask_out = tmp_path / "local" / "pred.csv", tmp_path / "dask" / "pred.csv"
    common = ["predict", "--model", str(tiny_model), "--images", str(folder), "--batch-size", "2", "--threshold", "0.34"]

    assert cli.main([*common, "--out", str(local)]) == 0
    assert cli.main([*common, "--out", str(dask_out), "--engine", "dask",
                     "--scheduler", dask_client.scheduler.address]) == 0

    assert dask_out.read_bytes() == local.read_bytes()
    assert evaluate.submission_path(dask_out).read_bytes() == evaluate.submission_path(local).read_bytes()
    pred = pd.read_csv(dask_out, dtype={"id": str})
    assert len(pred) == 47 and pred["confidence"].notna().sum() == 45  # bad.jpg and the 404 keep their rows
    assert pred.set_index("id").loc["gone", "error"] == "HTTP 404"


def test_each_worker_loads_the_model_once(tiny_model, tmp_path, dask_client):
    import shutil

    folder = _fetched_test_folder(tmp_path / "test")
    model = tmp_path / "m" / "tiny.keras"  # a path no worker has loaded yet
    model.parent.mkdir()
    shutil.copy(tiny_model, model)
    shutil.copy(tiny_model.with_name("tiny.labels.json"), model.with_name("tiny.labels.json"))
    before = dask_client.run(cluster.model_loads)
    key = str(model.resolve())
    # batch 2 -> chunks of 16 images -> 3 partitions of 16 per call; two calls -> 6 tasks
    for _ in range(2):
        pred = evaluate.predict(model, folder, batch_size=2, engine="dask", scheduler=dask_client,
                                partition_images=16, progress=False)
        assert pred["confidence"].notna().sum() == 45
    after = dask_client.run(cluster.model_loads)
    loads = {w: after[w].get(key, 0) - before.get(w, {}).get(key, 0) for w in after}
    assert set(after) == set(before) and len(after) == 2
    assert all(n <= 1 for n in loads.values()), loads  # never once per task
    assert sum(loads.values()) >= 1


def test_partitions_are_whole_chunks_in_order():
    assert cluster.partition_bounds(0, 16, 16) == []
    assert cluster.partition_bounds(40, 16, 16) == [(0, 16), (16, 32), (32, 40)]
    assert cluster.partition_bounds(40, 20, 16) == [(0, 32), (32, 40)]  # rounded up to whole chunks
    assert cluster.partition_bounds(5, 1, 16) == [(0, 5)]


def test_unreachable_scheduler_is_one_line(tiny_model, tmp_path, capsys):
    from landmarklib import cli

    folder = _fetched_test_folder(tmp_path / "test", n=2)
    rc = cli.main(["predict", "--model", str(tiny_model), "--images", str(folder), "--out", str(tmp_path / "p.csv"),
                   "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err[0]
