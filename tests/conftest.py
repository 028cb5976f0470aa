"""Test-wide settings (headless plotting, quiet TensorFlow) and the builders tests share.

REPO, NOTEBOOKS                        the checkout and its numbered notebooks
run_notebook                           a notebook executed by papermill with the ``landmarks`` kernel
write_tiny_folder, TINY_LANDMARKS      a fetched folder of four noisy-colour landmarks
write_shards, write_id_catalog         GLDv2-layout TAR shards and id catalogs (``--images``)
write_metrics                          metrics files of notebooks 01-05, built from their schemas
end_to_end, end_to_end_shards          ``landmarks report`` on a tiny sample, from urls and repacked as shards
tiny_model                             a 3-class 16 px saved model with its label map (prediction tests)
FAST, serve_every_failure, ...         the fetch engines' tests: settings, and a server with every failure
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmarklib.httpserver import (
    HttpTestServer,
    bomb_png,
    image,
    jpeg_bytes,
    oversized,
    redirect,
    retry_after,
    sequence,
    slow,
    status,
    text,
    trickle,
)

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Set outright, not by default: a user's KERAS_BACKEND=jax must not flip the backend under the tests
# (the JAX tests start their own processes with KERAS_BACKEND=jax).
os.environ["KERAS_BACKEND"] = "tensorflow"
# Every test talks to 127.0.0.1 or to `.invalid` hosts, never through a proxy: a user's proxy settings
# would route those requests elsewhere (the one proxy test sets its own). Cleared before any server,
# Dask cluster or notebook kernel starts, so their processes inherit the cleared environment.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")
for _name in PROXY_VARIABLES:
    os.environ.pop(_name, None)
    os.environ.pop(_name.upper(), None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(REPO.glob("notebooks/[0-9][0-9]_*.ipynb"))


# --------------------------------------------------------------------------- notebooks


@pytest.fixture(scope="session")
def run_notebook():
    """``run_notebook(name, out, parameters, cwd=None)``: execute ``notebooks/<name>`` with papermill.

    ``name`` is a notebook file name or its number (``"03"``); ``out`` is the executed copy
    (its folder is also the working folder unless ``cwd`` is given). Returns ``out``.
    """
    import papermill

    def run(name: str, out: Path, parameters: dict, cwd: Path | None = None) -> Path:
        source = next(p for p in NOTEBOOKS if p.name == name or p.name.startswith(f"{name}_"))
        papermill.execute_notebook(
            str(source),
            str(out),
            parameters=parameters,
            kernel_name="landmarks",
            cwd=str(cwd or Path(out).parent),
            progress_bar=False,
        )
        return Path(out)

    return run


# --------------------------------------------------------------------------- a fetched folder

TINY_LANDMARKS = [5, 17, 23, 40]
TINY_NETWORK = {
    "model": "res_incep",
    "input_size": 32,
    "filters": [4, 4, 4, 4],
    "blocks": [1, 1, 1, 1],
    "dense_units": 8,
}
"""A Res-Incep of a few hundred weights for 32 px images (tests that train)."""
TINY_COLOURS = [(210, 50, 50), (50, 190, 60), (40, 60, 210), (220, 210, 40)]
MANIFEST_COLUMNS = ["id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds"]


def run_on_jax(script: str, *args: str, timeout: float = 900) -> list[dict]:
    """Run ``script`` in a fresh JAX process (``sys.argv[1]``: this folder, for ``conftest``; then ``args``) and
    return what it printed as ``RESULT <json>`` lines. Fails on a non-zero exit, and on Keras' "Proceeding with
    `jit_compile=False`" (a model trained op by op: the GPU path's old fallback)."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parent
    out = subprocess.run(
        [sys.executable, "-c", script, str(root), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=str(root.parent),
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Proceeding with `jit_compile=False`" not in out.stderr
    return [json.loads(line[len("RESULT ") :]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]


def write_tiny_folder(root: Path, per_class: int = 6, size: int = 32) -> Path:
    """A fetched folder: ``root/<landmark_id>/<id>.jpg`` (one noisy colour per landmark) and manifest.csv."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for landmark_id, colour in zip(TINY_LANDMARKS, TINY_COLOURS):
        (root / str(landmark_id)).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image_id = f"{landmark_id:02d}{i:02d}abcd"
            pixels = np.clip(np.array(colour) + rng.normal(0, 35, (size, size, 3)), 0, 255).astype(np.uint8)
            path = root / str(landmark_id) / f"{image_id}.jpg"
            Image.fromarray(pixels).save(path, "JPEG", quality=90)
            rows.append(
                [
                    image_id,
                    f"images/{image_id}.jpg",
                    landmark_id,
                    "ok",
                    "",
                    path.stat().st_size,
                    size,
                    size,
                    "JPEG",
                    0.01,
                ]
            )
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    return root


# --------------------------------------------------------------------------- metrics files


def write_test_folder(root: Path, per_class: int = 3, size: int = 32) -> Path:
    """Flat test images ``root/<id>.jpg`` (a noisy colour per landmark) and ``root/solution.csv``."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for landmark_id, colour in zip(TINY_LANDMARKS, TINY_COLOURS):
        for i in range(per_class):
            image_id = f"t{landmark_id:02d}{i:02d}"
            pixels = np.clip(np.array(colour) + rng.normal(0, 35, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"{image_id}.jpg", "JPEG", quality=90)
            rows.append([image_id, landmark_id])
    with open(root / "solution.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "landmark_id"], *rows])
    return root


def nb07_tiny_parameters(tmp_path: Path) -> dict:
    """Notebook 07's parameters for a tiny run (the folders written under ``tmp_path``; reports in ``reports/``)."""
    test_dir = write_test_folder(tmp_path / "test")
    return {
        "train_dir": str(write_tiny_folder(tmp_path / "train")),
        "test_dir": str(test_dir),
        "test_solution_csv": str(test_dir / "solution.csv"),
        "models_dir": str(tmp_path / "models"),
        "reports_dir": str(tmp_path / "reports"),
        **{k: v for k, v in TINY_NETWORK.items() if k != "model"},
        "batch_size": 8,
        "min_images": 2,
        "val_fraction": 0.34,
        "holdout_landmarks": 1,
        "beyond_epochs": 1,
        "embedding_dim": 8,
        "retrieval_k": 3,
        "n_bootstrap": 50,
        "seed": 3,
    }


def training_metrics(**values) -> dict:
    """A ``metrics.Training`` record: the keys every run writes, with plausible values, then ``values``."""
    from landmarklib import metrics

    base = dict(
        model="res_incep",
        input_size=32,
        epochs=3,
        batch_size=8,
        optimizer="sgd",
        learning_rate=0.002,
        momentum=0.9,
        seed=3,
        params=215_432,
        n_classes=3,
        n_train=1100,
        n_val=280,
        chance=1 / 3,
        majority=0.4,
        val_top1=0.3125,
        val_top5=0.875,
        val_loss=2.1,
        train_top1=0.9,
        best_epoch=3,
        epochs_run=3,
        first_epoch_seconds=25.0,
        seconds_per_epoch=20.0,
        images_per_second=55.0,
        resumed_from=0,
        model_path="models/t/res_incep.keras",
        label_map_path="models/t/res_incep.labels.json",
        history_csv="models/t/res_incep.history.csv",
        min_images=2,
        val_fraction=0.2,
        study_val_top1=0.0589,
        study_params=2_200_000,
        backend="tensorflow",
        variants=[],
        figures=[],
    )
    return metrics.Training(**{**base, **values})


def fabricated_metrics(size: int = 32) -> dict[str, dict]:
    """Metrics of notebooks 01-05 as their schemas define them, with numbers the report tests expect."""
    from landmarklib import metrics, study

    variants = [
        metrics.Variant(name="study filters", val_top1=0.31, val_top5=0.8, train_top1=0.9),
        metrics.Variant(name="augmented", val_top1=0.27, val_top5=0.7, train_top1=0.6),
    ]
    fetch_run = dict(
        n_rows=1500,
        ok=1463,
        failed=37,
        skipped=0,
        failed_by_reason={"HTTP 404": 30, "not an image": 7},
        seconds=12.5,
        images_per_second=117.0,
        out_dir="data/processed/t/train",
        empty_folders_removed=2,
        images_ok=1463,
        image_size=size,
        resize="stretch",
        catalog="data/raw/sample/train.csv",
    )
    test_run = {
        **fetch_run,
        "n_rows": 11,
        "ok": 10,
        "failed": 1,
        "images_ok": 10,
        "failed_by_reason": {"HTTP 404": 1},
        "empty_folders_removed": 0,
        "out_dir": "data/processed/t/test",
        "catalog": "data/raw/sample/test.csv",
    }
    return {
        "01_explore": metrics.Explore(
            catalog="data/raw/sample/train.csv",
            n_rows_total=1500,
            n_landmarks_total=30,
            n_images=1500,
            n_landmarks=30,
            top_k=[{"landmark_id": 101, "count": 211}, {"landmark_id": 202, "count": 150}],
            single_image_landmarks=4,
            landmarks_covering_50pct=6,
            landmarks_covering_90pct=19,
            min_images=2,
            landmarks_kept=26,
            images_kept=1496,
            figures=["figures/01_top_k.png"],
        ),
        "02_fetch": metrics.Fetch(**fetch_run, test=metrics.FetchRun(**test_run), figures=["figures/02_grid.png"]),
        "03_res_incep": training_metrics(
            input_size=size, variants=variants, first_try_params=61_000_000, figures=["figures/03_curves.png"]
        ),
        "04_resnet50": training_metrics(
            model="resnet50",
            params=23_600_000,
            input_size=size,
            epochs=2,
            epochs_run=2,
            batch_size=55,
            optimizer="rmsprop",
            learning_rate=0.001,
            momentum=None,
            val_top1=0.25,
            val_top5=0.75,
            val_loss=2.5,
            train_top1=0.5,
            seconds_per_epoch=40.0,
            images_per_second=27.0,
            model_path="models/t/resnet50.keras",
            label_map_path="models/t/resnet50.labels.json",
            history_csv="models/t/resnet50.history.csv",
            study_val_top1=study.RESNET50_VAL_TOP1,
            study_params=study.RESNET50_PARAMS,
            backbone_params=23_500_000,
            weights="random",
            weights_note="no ImageNet weights in the Keras cache and no network",
            figures=["figures/04_curves.png"],
        ),
        "05_visualize": metrics.Visualize(
            model_path="models/t/res_incep.keras",
            layers=["stem_conv", "stage2_block1_concat"],
            figures=[{"path": "figures/05_filters.png", "caption": "First-layer filters."}],
        ),
    }


def write_metrics(reports: Path, which: tuple[str, ...] = ("01", "02", "03", "04", "05"), size: int = 32) -> None:
    """Save the ``fabricated_metrics`` of the notebooks ``which`` (checked by ``metrics.save``), and their figures."""
    from PIL import Image

    from landmarklib import metrics, report

    for stem, entry in fabricated_metrics(size).items():
        if stem[:2] not in which:
            continue
        for path, _ in report.figure_list(entry):
            (reports / path).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (60, 40), (90, 140, 200)).save(reports / path)
        metrics.save(stem, entry, reports)


# --------------------------------------------------------------------------- the end-to-end run

E2E_METRICS = ["01_explore", "02_fetch", "03_res_incep", "04_resnet50", "05_visualize", "06_report", "07_beyond"]
# Sizes small enough for a 2-core machine; every name is one that a notebook declares (the run warns otherwise).
E2E_TINY = {
    "run_name": "e2e",
    "sample_landmarks": 5,
    "sample_train": 60,
    "sample_test": 10,
    "sample_seed": 0,
    "image_size": 32,
    "input_size": 32,
    "workers": 4,
    "filters": [4, 4, 4, 4],
    "dense_units": 8,
    "epochs": 1,
    "batch_size": 16,
    "variant_epochs": 1,
    "variants": [{"name": "baseline"}],  # as long as the main run: reuses it, trains nothing more
    "benchmark_weights": None,
    "benchmark_epochs": 1,
    "benchmark_batch_size": 16,
    "n_cam": 1,
    "max_val_images": 16,
    "holdout_landmarks": 1,
    "beyond_epochs": 1,
    "embedding_dim": 8,
    "retrieval_k": 3,
    "n_bootstrap": 50,
}


@pytest.fixture(scope="session")
def end_to_end(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``landmarks report`` (the installed script, in a subprocess) run once per session into ``<basetemp>/e2e``.

    The default parameters file with a ``--set`` for every path and every size, so that nothing lands in
    the checkout and the run stays short: 5 landmarks, 60 training and 10 test images of 32 px, one epoch
    of tiny models.

    Returns:
        (the run's folder: sample/, processed/, models/, reports/; the finished process).
    """
    base = tmp_path_factory.getbasetemp() / "e2e"
    base.mkdir(exist_ok=True)
    sample = {
        "sample_dir": base / "sample",
        "train_csv": base / "sample" / "train.csv",
        "test_csv": base / "sample" / "test.csv",
        "test_solution_csv": base / "sample" / "test_solution.csv",
    }
    return base, run_tiny_report(base, sample)


def run_tiny_report(base: Path, settings: dict) -> subprocess.CompletedProcess:
    """``landmarks report`` with E2E_TINY's sizes and ``settings``, every output under ``base``."""
    folders = {
        "train_dir": base / "processed" / "train",
        "test_dir": base / "processed" / "test",
        "models_dir": base / "models",
    }
    # values as JSON, which YAML reads back as written (None -> null, lists, quoted paths)
    settings = [
        f"{key}={json.dumps(str(v) if isinstance(v, Path) else v)}"
        for key, v in {**E2E_TINY, **folders, **settings}.items()
    ]
    command = [
        str(Path(sys.executable).with_name("landmarks")),
        "report",
        "--params",
        "params/default.yaml",
        "--out",
        str(base / "reports"),
        "--no-progress",
        *(a for s in settings for a in ("--set", s)),
    ]
    # a guard against a hung run only: the tiny run takes 4-6 minutes on 2 idle cores, several times that under load
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=2400)


@pytest.fixture(scope="session")
def end_to_end_shards(end_to_end) -> tuple[Path, subprocess.CompletedProcess]:
    """``landmarks report`` on end_to_end's sample repacked as the field ships it, into ``<basetemp>/e2e-shards``.

    The training images as GLDv2 TAR shards (``images_000.tar`` ... with md5 files, members
    ``a/b/c/<id>.jpg``) and ``train.csv`` as ``id,landmark_id``; the test images as a Kaggle 2019-2021
    folder (``test/a/b/c/<id>.jpg``), ``test.csv`` as ``id`` and the solution as ``id,landmarks,Usage``.

    Returns:
        (the run's folder: shards/, kaggle/, processed/, models/, reports/; the finished process).
    """
    sample = end_to_end[0] / "sample"
    base = end_to_end[0].with_name("e2e-shards")
    base.mkdir(exist_ok=True)
    train = list(csv.DictReader(open(sample / "train.csv", newline="")))
    solution = list(csv.DictReader(open(sample / "test_solution.csv", newline="")))
    shards = base / "shards" / "train"
    shards.mkdir(parents=True, exist_ok=True)
    for k in range(3):  # every third row in each shard: the catalog interleaves them
        path = shards / f"images_{k:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for row in train[k::3]:
                if (sample / row["url"]).is_file():  # the sample's missing file stays missing
                    tar.add(sample / row["url"], arcname=shard_member(row["id"]))
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        (shards / f"md5.images_{k:03d}.txt").write_text(f"{digest}  images_{k:03d}.tar\n")
    kaggle = base / "kaggle"
    for row in csv.DictReader(open(sample / "test.csv", newline="")):
        member = kaggle / "test" / shard_member(row["id"])
        member.parent.mkdir(parents=True, exist_ok=True)
        member.write_bytes((sample / row["url"]).read_bytes())
    (kaggle / "train.csv").write_text("id,landmark_id\n" + "".join(f"{r['id']},{r['landmark_id']}\n" for r in train))
    (kaggle / "test.csv").write_text("id\n" + "".join(f"{r['id']}\n" for r in solution))
    (kaggle / "solution.csv").write_text(
        "id,landmarks,Usage\n"
        + "".join(f"{r['id']},{r['landmark_id']},{('Public', 'Private')[i % 2]}\n" for i, r in enumerate(solution))
    )
    settings = {
        "sample_dir": base / "no-sample",
        "train_csv": kaggle / "train.csv",
        "test_csv": kaggle / "test.csv",
        "test_solution_csv": kaggle / "solution.csv",
        "train_images": shards,
        "test_images": kaggle / "test",
    }
    return base, run_tiny_report(base, settings)


def read_metrics(base: Path, name: str) -> dict:
    """``<base>/reports/metrics/<name>.json``."""
    return json.loads((base / "reports" / "metrics" / f"{name}.json").read_text())


# --------------------------------------------------------------------------- notebook 02's catalog

NB02_TRAIN, NB02_IMAGES, NB02_TEST = 80, 72, 6  # 72 rows to do: enough for the worker processes to start


def write_nb02_catalog(folder: Path) -> None:
    """Notebook 02's small catalog (also fetched on Dask): train.csv: 80 rows over 5 landmarks, relative paths; rows 3 and 10 broken; test.csv: 6 rows."""
    images = folder / "images"
    images.mkdir(parents=True)
    train = ["id,url,landmark_id"]
    for i in range(NB02_TRAIN):
        name = f"tr{i:03d}.jpg"
        if i == 3:
            pass  # a missing file
        elif i == 10:
            (images / name).write_text("<html>gone</html>")
        elif i % 7 == 0:  # a PNG named .jpg
            out = io.BytesIO()
            Image.new("RGBA", (60 + i, 40), (200, 30, 30, 255)).save(out, "PNG")
            (images / name).write_bytes(out.getvalue())
        else:
            (images / name).write_bytes(jpeg_bytes(90 + i, 70, seed=i, quality=80))
        train.append(f"tr{i:03d},images/{name},{100 + i % 5}")
    (folder / "train.csv").write_text("\n".join(train) + "\n")
    test = ["id,url"]
    for i in range(NB02_TEST):
        (images / f"te{i}.jpg").write_bytes(jpeg_bytes(80, 60, seed=100 + i, quality=80))
        test.append(f"te{i},{(images / f'te{i}.jpg').as_uri()}")
    (folder / "test.csv").write_text("\n".join(test) + "\n")


# --------------------------------------------------------------------------- the fetch engines

# Seconds one attempt may take. A row the server answers at once must never reach it on a loaded
# machine: at 0.5 s, stalls of the test process made the local and Dask manifests differ (once in CI).
# The routes built to time out exceed it by their own sleeps, which are lower bounds, so a slow machine
# cannot make them succeed either.
FETCH_TIMEOUT = 2.0
FAST = dict(progress=False, timeout=FETCH_TIMEOUT, retries=2, backoff=0.05)
TIMED_OUT = f"timeout after {FETCH_TIMEOUT:g}s"  # the manifest's reason for both routes that time out


def write_csv(path: Path, rows: list[tuple], header=("id", "url", "landmark_id")) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def check_jpeg(path: Path, size: int) -> None:
    with Image.open(path) as img:
        assert img.format == "JPEG" and img.size == (size, size) and img.mode == "RGB"
        img.load()


def free_port() -> int:
    """A port nothing listens on (a dead host: fail-fast counts per host:port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_rgba() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (120, 80), (0, 0, 255, 0)).save(out, "PNG")
    return out.getvalue()


def serve_every_failure(server: HttpTestServer, folder: Path) -> bytes:
    """Route on ``server`` a good photo, and each kind of answer a fetch must fail or recover from
    (``/good.jpg``, ``/rgba.png``, ``/missing.jpg``, ``/flaky.jpg``, ``/busy.jpg``, ``/down.jpg``,
    ``/slow.jpg``, ``/stall.jpg``, ``/huge.jpg``, ``/truncated.jpg``, ``/page.html``, ``/bomb.png``,
    ``/moved.jpg``, ``/to-file.jpg``, ``/loop.jpg``); write ``folder/local/rel.jpg``. Returns the
    photo's bytes.

    ``/slow.jpg`` answers 2 x ``FETCH_TIMEOUT`` late, on every try; ``/stall.jpg`` sends its
    22 kB in 2 kB pieces 0.5 s apart (5 s in all, 2.5 x ``FETCH_TIMEOUT``)."""
    photo = jpeg_bytes(640, 480, seed=3)
    truncated = jpeg_bytes(400, 300, seed=4)
    (folder / "local").mkdir()
    (folder / "local" / "rel.jpg").write_bytes(jpeg_bytes(300, 500, seed=5))
    routes = {
        "/good.jpg": image(photo),
        "/rgba.png": image(png_rgba(), "image/png"),
        "/missing.jpg": status(404),
        "/flaky.jpg": sequence(status(500), image(photo)),
        "/busy.jpg": sequence(retry_after(1), image(photo)),
        "/down.jpg": status(503),
        "/slow.jpg": slow(2 * FETCH_TIMEOUT, image(photo)),
        "/stall.jpg": trickle(photo, 2048, 0.5),
        "/huge.jpg": oversized(3 * 2**20),
        "/truncated.jpg": image(truncated[: len(truncated) // 2]),
        "/page.html": text(),
        "/bomb.png": image(bomb_png(100_000, 100_000), "image/png"),
        "/moved.jpg": redirect("/good.jpg"),
        "/to-file.jpg": redirect("file:///etc/passwd"),
        "/loop.jpg": redirect("/loop.jpg"),
    }
    for path, route in routes.items():
        server.route(path, route)
    return photo


# GLDv2-layout TAR shards and id catalogs (`landmarks fetch --images`).
SHARD_IDS = [
    f"{i:016x}" for i in range(0x0A1B2C3D00000000, 0x0A1B2C3D00000000 + 9 * 0x1111, 0x1111)
]  # 9 hex ids, GLDv2-style


def shard_body(i: int) -> bytes:
    return jpeg_bytes(80 + i, 60, seed=i)


def shard_member(image_id: str) -> str:
    return f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"


def write_shards(folder: Path, shards: list[list[int]], md5: bool = True, corrupt: int | None = None) -> Path:
    """GLDv2-layout shards ``images_000.tar`` ... holding SHARD_IDS[i] for the i of each list, with md5 files."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, members in enumerate(shards):
        path = folder / f"images_{k:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in members:
                data = b"\xff\xd8\xff not a jpeg at all" if i == corrupt else shard_body(i)
                info = tarfile.TarInfo(shard_member(SHARD_IDS[i]))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if md5:
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            (folder / f"md5.images_{k:03d}.txt").write_text(f"{digest}  images_{k:03d}.tar\n")
    return folder


def write_id_catalog(path: Path, rows: list[tuple], header: str = "id,landmark_id") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- a saved model to predict with


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
