"""Devices: the GPU check, the precision policy, data parallelism over JAX's forced host devices."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from landmarklib import config, data, devices
from landmarklib.nets import pipeline, res_incep, resnet50, train

REPO = Path(__file__).resolve().parents[2]
# a machine without any GPU, whatever this one has
TF_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following instructions)")
NO_GPU = {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout, env={**os.environ, **env}
    )


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_gpu_asked_for_and_not_found_stops_at_once_with_one_line(backend):
    done = _run(["-m", "landmarklib.devices", "--require", "gpu"], {**NO_GPU, "KERAS_BACKEND": backend})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    # TensorFlow's C++ start-up log lines (absl, oneDNN) are not ours: everything else is one line
    lines = [line for line in done.stderr.splitlines() if line.strip() and not TF_LOG.match(line)]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: device: gpu was asked for, but the " + backend + " backend sees no GPU")
    assert "allow_cpu: true" in lines[0]


def test_allow_cpu_carries_on_on_the_cpu_and_says_so():
    done = _run(["-m", "landmarklib.devices", "--require", "gpu", "--allow-cpu"], {**NO_GPU, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["device"] == "cpu" and described["backend"] == "jax" and described["device_asked"] == "gpu"
    assert "warning: device: gpu was asked for" in done.stderr and "running on the CPU" in done.stderr


def test_require_device_in_process(monkeypatch):
    monkeypatch.setattr(devices, "_physical_devices", lambda: [{"kind": "cpu", "name": "cpu", "memory_bytes": None}])
    with pytest.raises(devices.DeviceError) as err:
        devices.require_device("gpu")
    assert "\n" not in str(err.value)
    assert devices.require_device("gpu", allow_cpu=True)["device"] == "cpu"
    assert devices.require_device("auto")["device"] == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        devices.require_device("tpu0")
    gpus = [{"kind": "gpu", "name": "NVIDIA H200", "memory_bytes": 140 * 2**30}] * 2
    monkeypatch.setattr(devices, "_physical_devices", lambda: gpus)
    described = devices.require_device("gpu")
    assert (described["device"], described["device_count"], described["device_memory_gib"]) == ("gpu", 2, 140.0)
    assert devices.summary(described).startswith(f"{keras.backend.backend()}, 2 x NVIDIA H200 (140 GiB), float32")


def test_cpu_asked_for(monkeypatch):
    monkeypatch.setattr(devices, "_kind", None)  # restored after the test
    described = devices.require_device("cpu")
    assert described["device"] == "cpu" and described["device_asked"] == "cpu"


def test_describe_and_summary():
    described = devices.describe("auto")
    assert described["backend"] == keras.backend.backend()
    assert described["device_count"] == len(described["devices"]) >= 1
    assert described["precision"] == "float32" and described["replicas"] == 1
    json.dumps(described)  # goes into a metrics file as it is
    assert devices.summary(None) == "not recorded"
    assert (
        devices.summary(
            {
                "backend": "jax",
                "device": "cpu",
                "device_count": 1,
                "device_name": "cpu",
                "precision": "float32",
                "replicas": 1,
            }
        )
        == "jax, cpu, float32"
    )
    assert (
        devices.summary(
            {
                "backend": "jax",
                "device": "cpu",
                "device_count": 2,
                "device_name": "cpu",
                "precision": "float32",
                "replicas": 2,
            }
        )
        == "jax, 2 x cpu, float32, batch split across 2 devices"
    )
    assert devices.summary(
        {
            "backend": "jax",
            "device": "gpu",
            "device_count": 2,
            "device_name": "NVIDIA H200",
            "precision": "mixed_bfloat16",
            "replicas": 2,
        }
    ).endswith("mixed_bfloat16, batch split across 2 devices")


@pytest.fixture
def policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_softmax_in_float32(policy, precision):
    assert devices.set_precision(precision) == precision
    compute = precision.removeprefix("mixed_")
    for model in (
        res_incep.res_incep((32, 32, 3), 5, filters=(4, 4), blocks=(1, 1), stem_filters=4, dense_units=8),
        resnet50.resnet50_benchmark((32, 32, 3), 5, weights=None),
    ):
        assert model.get_layer("stem_conv" if model.name == "res_incep" else "conv1_conv").compute_dtype == compute
        assert model.get_layer("predictions").compute_dtype == "float32"
        assert model.outputs[0].dtype == "float32"
        assert all(v.dtype == "float32" for v in model.trainable_variables)  # mixed: float32 weights
        probs = model.predict(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"), verbose=0)
        assert probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        train.compile_model(model, config.TrainConfig(learning_rate=0.01))
        # Keras 3 compile(auto_scale_loss=True) wraps the optimizer for float16 only
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
        keras.backend.clear_session()


def test_precision_and_device_names_are_checked(policy):
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.set_precision("float16")
    assert devices.setup("auto", precision="float32")["precision"] == "float32"


def test_batches_for_replicas(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import write_tiny_folder

    split = data.load_split(write_tiny_folder(tmp_path, per_class=8), val_fraction=0.25, seed=1)
    train_rows, val_rows = split.train.iloc[:23], split.val.iloc[:7]
    with pytest.raises(ValueError, match="does not split evenly across 3 devices"):
        pipeline.batches(train_rows, 32, 4, replicas=3)
    trained = pipeline.batches(train_rows, 32, 4, shuffle=True, replicas=2)
    sizes = [len(trained[i][1]) for i in range(len(trained))]
    assert sizes == [4, 4, 4, 4, 4, 2] and trained.padding == 0  # 23 rows: one left out, another each epoch
    left_out = set(range(23)) - set(trained.order[:22])
    trained.on_epoch_begin(), trained.on_epoch_end()
    assert left_out != set(range(23)) - set(trained.order[:22])
    val = pipeline.batches(val_rows, 32, 4, replicas=2)
    (_, y0, w0), (x1, y1, w1) = val[0], val[1]
    assert val.padding == 1 and len(val) == 2
    assert (len(y0), len(y1)) == (4, 4) and list(w0) == [1, 1, 1, 1] and list(w1) == [1, 1, 1, 0]
    np.testing.assert_array_equal(x1[3], x1[2])  # a copy of the last real image
    # one replica: the batches are those of the undistributed run, prefetched or not
    one, plain = pipeline.batches(val_rows, 32, 4), pipeline.batches(val_rows, 32, 4, prefetch=0)
    for i in range(len(one)):
        assert len(one[i]) == 2
        np.testing.assert_array_equal(one[i][0], plain[i][0])


DATA_PARALLEL = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import keras, numpy as np
    sys.path.insert(0, "tests")
    from conftest import write_tiny_folder
    from landmarklib import config, data, devices
    from landmarklib.nets import pipeline, res_incep, train

    out = Path(sys.argv[1])
    split = data.load_split(write_tiny_folder(out / "fetched", per_class=8), val_fraction=0.25, seed=1)
    # 24 training rows (6 even steps of 4), 7 validation rows: the last batch of 3 does not split over 2
    split = data.Split(train=split.train, val=split.val.iloc[:7].reset_index(drop=True),
                       landmark_ids=split.landmark_ids, dropped=split.dropped)
    tiny = dict(filters=(4, 4), blocks=(1, 1), stem_filters=6, dense_units=8)
    runs = {}
    for name, parallel in (("one", False), ("two", True)):
        replicas = devices.distribute(parallel)
        train.set_seed(1)
        model = res_incep.res_incep((32, 32, 3), len(split.landmark_ids), **tiny)
        settings = config.TrainConfig(epochs=3, batch_size=4, learning_rate=0.05, models_dir=str(out / name), seed=1)
        result = train.train(model, split, settings, name="tiny", progress=False)
        x, y, w = pipeline.batches(split.val, 32, 4, replicas=replicas)[1] if replicas > 1 else (None, None, None)
        reloaded = keras.saving.load_model(result.model_path)
        runs[name] = {
            "replicas": replicas,
            "devices": len(keras.distribution.list_devices()),
            "history": result.history[["loss", "accuracy", "val_loss", "val_accuracy"]].to_dict("list"),
            "evaluate_split": train.evaluate_split(result.model, split.val, 32, batch_size=4),
            "evaluate_split_reloaded": train.evaluate_split(reloaded, split.val, 32, batch_size=4),
            "keras_evaluate": reloaded.evaluate(pipeline.batches(split.val, 32, 4, replicas=replicas), verbose=0,
                                                return_dict=True),
            "predict_rows": len(reloaded.predict(pipeline.batches(split.val, 32, 4, replicas=replicas), verbose=0)),
            "last_weights": None if w is None else w.tolist(),
        }
        # a training set that does not split evenly: the remainder is left out, training goes on
        uneven = data.Split(train=split.train.iloc[:23], val=split.val, landmark_ids=split.landmark_ids,
                            dropped=split.dropped)
        train.set_seed(1)
        again = train.train(res_incep.res_incep((32, 32, 3), len(split.landmark_ids), **tiny), uneven,
                            config.TrainConfig(epochs=1, batch_size=4, models_dir=str(out / (name + "-uneven")), seed=1),
                            name="tiny", progress=False)
        runs[name]["uneven_loss"] = float(again.history["loss"].iloc[0])
    print(json.dumps(runs))
""")


@pytest.mark.slow
def test_data_parallel_over_two_forced_host_devices(tmp_path):
    done = _run(
        ["-c", DATA_PARALLEL, str(tmp_path)],
        {
            "KERAS_BACKEND": "jax",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "JAX_PLATFORMS": "cpu",
            "PYTHONWARNINGS": "ignore",
        },
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = runs["one"], runs["two"]
    assert (one["devices"], one["replicas"], two["replicas"]) == (2, 1, 2)
    # the same loss curve, step for step: the global batch is split, not changed (a sum of the
    # replicas' gradients instead of their mean, or a different batch, moves the loss by far more)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=2e-3, err_msg=key)
    for key in ("accuracy", "val_accuracy"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], atol=1e-6, err_msg=key)
    assert len(set(np.round(one["history"]["loss"], 4))) == 3  # it did train
    # the uneven last validation batch: padded with a zero-weight copy, every real row counted once
    assert two["last_weights"] == [1.0, 1.0, 1.0, 0.0]
    assert one["predict_rows"] == 7 and two["predict_rows"] == 8
    for key in ("evaluate_split", "evaluate_split_reloaded"):
        assert two[key]["n"] == one[key]["n"] == 7
        assert two[key]["top1"] == pytest.approx(one[key]["top1"], abs=1e-9)
        assert two[key]["loss"] == pytest.approx(one[key]["loss"], rel=2e-3)
    # the saved file is compiled with Keras' own accuracy only (train._save_portable), weighted
    assert two["keras_evaluate"]["accuracy"] == pytest.approx(one["keras_evaluate"]["accuracy"], abs=1e-6)
    # save and reload: the best epoch's weights, whichever way they were laid out
    assert one["evaluate_split_reloaded"]["top1"] == pytest.approx(max(one["history"]["val_accuracy"]), abs=1e-6)
    assert two["evaluate_split_reloaded"]["loss"] == pytest.approx(two["evaluate_split"]["loss"], rel=1e-5)
    assert np.isfinite(two["uneven_loss"]) and two["uneven_loss"] > 0


def test_the_report_and_the_index_say_where_it_ran(tmp_path):
    from landmarklib import files, metrics, paths, report

    from conftest import training_metrics

    runtime = {
        "backend": "jax",
        "device": "gpu",
        "device_count": 1,
        "device_name": "NVIDIA H200",
        "device_memory_gib": 139.8,
        "precision": "mixed_bfloat16",
        "replicas": 1,
    }
    recorded = devices.record(runtime)
    assert recorded == {"runtime": runtime, "ran_on": "jax, 1 x NVIDIA H200 (139.8 GiB), mixed_bfloat16"}
    metrics.save("03_res_incep", training_metrics(val_top1=0.5, params=10, **recorded), tmp_path)
    # only where 06 predicted matters here: written as it is, without the rest of 06's schema
    files.write_json(paths.metrics_dir(tmp_path) / "06_report.json", {"gap": 0.1, **devices.record(devices.describe())})
    found = metrics.load_all(tmp_path)
    assert "It trained on jax, 1 x NVIDIA H200 (139.8 GiB), mixed_bfloat16." in report.implementation_md(found)
    notebooks = [tmp_path / "03_build_res_incep.ipynb", tmp_path / "06_write_report.ipynb"]
    page = report.build_index(tmp_path, notebooks, [], {"run_name": "gpu"}).read_text()
    assert "ran on: <b>jax, 1 x NVIDIA H200 (139.8 GiB), mixed_bfloat16</b>" in page
    assert f"ran on: <b>{devices.summary(devices.describe())}</b>" in page


def test_uint8_batches_give_the_model_the_same_numbers(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import write_tiny_folder

    split = data.load_split(write_tiny_folder(tmp_path, per_class=4), val_fraction=0.25, seed=1)
    as_float = pipeline.batches(split.train, 32, 8, dtype="float32")
    as_uint8 = pipeline.batches(split.train, 32, 8, dtype="uint8")
    assert as_float[0][0].dtype == np.float32 and as_uint8[0][0].dtype == np.uint8
    np.testing.assert_array_equal(as_uint8[0][0].astype(np.float32), as_float[0][0])
    losses = []
    for feed in (as_float, as_uint8):
        train.set_seed(0)
        model = res_incep.res_incep(
            (32, 32, 3),
            len(split.landmark_ids),
            filters=(4, 4),
            blocks=(1, 1),
            stem_filters=4,
            dense_units=8,
            dropout=0.0,
        )
        train.compile_model(model, config.TrainConfig(learning_rate=0.05))
        x, y = feed[0]
        losses.append([float(model.train_on_batch(x, y)[0]) for _ in range(3)])
        keras.backend.clear_session()
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
