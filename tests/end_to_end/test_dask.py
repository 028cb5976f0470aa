"""Dask engines on a real LocalCluster of 2 worker processes: the fetch manifest and the
predictions are the local engine's; a killed worker, a rerun, the per-host limit."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from landmarklib import cli, cluster, fetch, predict
from landmarklib.fetch import dask_engine
from landmarklib.httpserver import Gate, HttpTestServer, image, jpeg_bytes, sequence, status
from landmarklib.predict import dask_engine as dask_predict

from conftest import FAST, check_jpeg, free_port, serve_every_failure, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of 2 single-thread worker processes, shared by this module's tests."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},  # proxy variables: cleared by conftest before the cluster starts
        ) as lc,
        Client(lc) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        yield client


def manifest_rows(out: Path, timings: bool = False) -> list[dict]:
    """The manifest's rows in file order; ``seconds`` blanked unless ``timings``."""
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if timings else [{**row, "seconds": ""} for row in rows]


def tree(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` but the Dask engine's own state, with its bytes (manifest aside)."""
    return {
        p.relative_to(out).as_posix(): (b"" if p.name == "manifest.csv" else p.read_bytes())
        for p in sorted(out.rglob("*"))
        if p.is_file() and dask_engine.SHARDS_DIR not in p.parts
    }


# --------------------------------------------------------------------------- fetch


def hostile_catalog(tmp_path: Path, server: HttpTestServer) -> tuple[Path, int]:
    """Good images, and every kind of failure the local engine's tests use, one host that refuses."""
    serve_every_failure(server, tmp_path)
    u = server.url
    port = free_port()
    refused = f"http://127.0.0.1:{port}"  # nothing listens there: a dead host (fail-fast is per host:port)
    rows = [
        (f"g{i:02d}", server.route(f"/p{i}.jpg", image(jpeg_bytes(200 + i, 150, seed=i))), i % 3) for i in range(12)
    ]
    rows += [
        ("good", u("/good.jpg"), 1),
        ("rgba", u("/rgba.png"), 1),
        ("moved", u("/moved.jpg"), 2),
        ("flaky", u("/flaky.jpg"), 3),
        ("busy", u("/busy.jpg"), 3),
        ("relative", "local/rel.jpg", 4),
        ("missing", u("/missing.jpg"), 5),
        ("down", u("/down.jpg"), 5),
        ("slow", u("/slow.jpg"), 5),
        ("stall", u("/stall.jpg"), 5),
        ("huge", u("/huge.jpg"), 5),
        ("truncated", u("/truncated.jpg"), 5),
        ("page", u("/page.html"), 5),
        ("bomb", u("/bomb.png"), 5),
        ("to-file", u("/to-file.jpg"), 5),
        ("loop", u("/loop.jpg"), 5),
        ("nofile", "local/none.jpg", 5),
        ("ftp", "ftp://example.org/x.jpg", 5),
        ("../escape", u("/good.jpg"), 6),
        ("a/b", u("/good.jpg"), 6),
        ("good", u("/rgba.png"), 1),
        ("nourl", "", 6),
        ("badlabel", u("/good.jpg"), "x7"),
    ]
    rows += [(f"r{i:02d}", f"{refused}/{i}.jpg", 7) for i in range(8)]  # a dead host: fails fast
    return write_csv(tmp_path / "train.csv", rows), port


def rows_that_differ(got: list[dict], expected: list[dict]) -> list[tuple[dict, dict]]:
    """The (got, expected) pairs of rows that differ, but for which rows of a dead host say the
    connection error and which ``host unreachable (...)``: a row that used up its retries before its
    process gave the host up says the former, and which one does is a matter of timing (in either engine)."""

    def plain(row):
        error = row["error"]
        if error.startswith("host unreachable (") and error.endswith(")"):
            error = error.removeprefix("host unreachable (").removesuffix(")")
        return {**row, "error": error}

    assert len(got) == len(expected), (len(got), len(expected))
    return [(g, e) for g, e in zip(got, expected) if plain(g) != plain(e)]


def test_dask_fetch_writes_the_local_manifest(tmp_path, dask_client):
    with HttpTestServer() as server:
        csv_path, port = hostile_catalog(tmp_path, server)
        local_out, dask_out = tmp_path / "local_out", tmp_path / "dask_out"
        local = fetch.fetch_catalog(csv_path, local_out, image_size=48, max_bytes=2**20, processes=1, **FAST)
        server.reset_hits()
        summary = dask_engine.fetch_catalog_dask(
            csv_path, dask_out, image_size=48, max_bytes=2**20, workers=4, client=dask_client, shard_rows=7, **FAST
        )

    expected = manifest_rows(local_out)
    assert len(expected) == 43 and {r["status"] for r in expected} == {"ok", "failed"}
    got = manifest_rows(dask_out)
    differ = rows_that_differ(got, expected)  # row for row, column for column, timings aside
    assert not differ, "; ".join(f"{g['id']}: dask {g}, local {e}" for g, e in differ)
    dead = [r["error"] for r in got if r["id"].startswith("r0")]
    assert all(e in ("connection refused", "host unreachable (connection refused)") for e in dead)
    # The dead host failed fast. Each attempt counts toward its process's streak of 3 (FAST: 3 attempts a
    # row), so a row uses up its own retries only if no other row of the host failed in its process
    # before its last attempt: at most one such row per worker process (2), however the threads interleave.
    assert dead.count("connection refused") <= 2, dead
    assert f"127.0.0.1:{port}" in summary.unreachable_hosts
    assert tree(dask_out) == tree(local_out)  # the same images, byte for byte, and nothing else
    assert sorted(p.name for p in (dask_out / "_shards").iterdir()) == [
        f"{k:06d}.{ext}" for k in range(7) for ext in ("csv", "done")
    ]
    assert (summary.n_rows, summary.ok, summary.failed, summary.skipped, summary.bad_rows) == (
        local.n_rows,
        local.ok,
        local.failed,
        0,
        local.bad_rows,
    )

    def merged(reasons):  # the dead host's rows, whichever wording each got
        reasons = dict(reasons)
        dead = reasons.pop("connection refused", 0) + reasons.pop("host unreachable", 0)
        return {**reasons, "dead host": dead}

    assert merged(summary.failed_by_reason) == merged(local.failed_by_reason)
    assert summary.unreachable_hosts == local.unreachable_hosts == [f"127.0.0.1:{port}"]


def test_dask_fetch_cli_and_rerun_skips_finished_shards(tmp_path, dask_client, capsys):
    with HttpTestServer() as server:
        rows = [
            (f"img{i:02d}", server.route(f"/p{i}.jpg", image(jpeg_bytes(120, 90, seed=i))), i % 4) for i in range(20)
        ]
        rows[13] = ("img13", server.route("/later.jpg", sequence(status(404), image(jpeg_bytes(90, 90)))), 1)
        csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
        args = [
            "fetch",
            str(csv_path),
            "--out",
            str(out),
            "--size",
            "32",
            "--engine",
            "dask",
            "--quiet",
            "--scheduler",
            dask_client.scheduler.address,
            "--shard-rows",
            "5",
            "--max-per-host",
            "4",
        ]
        assert cli.main(args) == 0
        assert "ok 19, failed 1, skipped 0" in capsys.readouterr().out
        first = manifest_rows(out, timings=True)
        assert first[13]["error"] == "HTTP 404"

        before = dict(server.hits)
        assert cli.main(args) == 0  # only shard 2 (rows 10-14) runs again, and fetches only row 13
        assert "ok 1, failed 0, skipped 19" in capsys.readouterr().out
        assert {p: n - before.get(p, 0) for p, n in server.hits.items() if n != before.get(p, 0)} == {"/later.jpg": 1}
        second = manifest_rows(out, timings=True)
        assert second[:13] + second[14:] == first[:13] + first[14:]  # kept, timings included
        assert second[13]["status"] == "ok"
        check_jpeg(out / "1" / "img13.jpg", 32)

        server.reset_hits()
        assert cli.main(args) == 0
        assert not server.hits and manifest_rows(out, timings=True) == second


def test_worker_killed_mid_shard_loses_nothing(tmp_path, dask_client):
    n = 60
    # 10 requests served, the rest held until the worker is killed: the run cannot end first, and with
    # two shards under way one of them has journalled 5 rows by then
    gate = Gate(free=10)
    with HttpTestServer() as server:
        rows = [
            (f"img{i:02d}", server.route(f"/p{i}.jpg", gate(image(jpeg_bytes(120, 90, seed=i)))), i % 4)
            for i in range(n)
        ]
        csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
        result: dict = {}

        def run() -> None:
            try:
                result["summary"] = dask_engine.fetch_catalog_dask(
                    csv_path, out, image_size=32, workers=2, client=dask_client, shard_rows=30, **FAST
                )
            except BaseException as exc:  # handed to the test below
                result["error"] = exc

        driver = threading.Thread(target=run)
        driver.start()
        victim, journalled = None, set()
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            for journal in (out / "_shards").glob("*.journal.csv"):
                text = journal.read_text()
                if text.count("\n") >= 6:  # header + 5 finished rows
                    victim = int(journal.name.split(".")[1].split("-")[0])
                    journalled = {line.split(",")[0] for line in text[: text.rfind("\n")].splitlines()[1:]}
                    break
            time.sleep(0.01)
        assert victim is not None, "no shard got under way"
        os.kill(victim, signal.SIGKILL)
        gate.open()
        driver.join(120)
        assert not driver.is_alive() and "error" not in result, result.get("error")

    m = manifest_rows(out)
    assert [r["id"] for r in m] == [r[0] for r in rows]  # every row once, in catalog order
    assert all(r["status"] == "ok" for r in m)
    assert len(journalled) >= 5
    for image_id in journalled:  # fetched before the kill: never asked for again
        assert server.hits[f"/p{int(image_id[3:])}.jpg"] == 1, image_id
    assert result["summary"].skipped >= len(journalled) and result["summary"].ok + result["summary"].skipped == n
    for image_id, _, label in rows:
        check_jpeg(out / str(label) / f"{image_id}.jpg", 32)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".journal.csv")]


def test_requests_per_host_stay_under_max_per_host(tmp_path, dask_client):
    body = jpeg_bytes(64, 64)
    changed = threading.Condition()
    state = {"now": 0, "peak": 0, "wait_for": 0}

    def counted(handler, hit):
        with changed:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            changed.notify_all()
            # unbounded: each request waits for 3 in flight at once (16 threads can get there, so the
            # unbounded run's peak is at least 3 however the threads are scheduled); the deadline only
            # keeps a broken engine from hanging the test
            changed.wait_for(lambda: state["peak"] >= state["wait_for"], timeout=30)
        try:
            image(body)(handler, hit)
        finally:
            with changed:
                state["now"] -= 1

    peaks = {}
    with HttpTestServer() as server:
        rows = [(f"i{i:02d}", server.route(f"/p{i}.jpg", counted), 0) for i in range(32)]
        csv_path = write_csv(tmp_path / "train.csv", rows)
        for limit in (0, 2):
            state.update(peak=0, wait_for=3 if limit == 0 else 0)
            summary = dask_engine.fetch_catalog_dask(
                csv_path,
                tmp_path / f"out{limit}",
                image_size=16,
                workers=16,
                client=dask_client,
                shard_rows=8,
                max_per_host=limit,
                **FAST,
            )
            assert summary.ok == 32
            peaks[limit] = state["peak"]
    assert peaks[2] <= 2 < peaks[0], peaks  # 2 workers x 1 connection; unbounded: more at once


def test_a_worker_that_cannot_see_the_output_folder_stops_the_run(tmp_path, dask_client):
    (tmp_path / "out" / "_shards").mkdir(parents=True)
    seen = dask_client.run(dask_engine.probe_output, str(tmp_path / "out"), ".driver-token-not-there")
    assert len(seen) == 2 and all("cannot see" in why and "shared filesystem" in why for why in seen.values())
    dask_engine.check_output(dask_client, tmp_path / "out")  # the real token: every worker sees it
    assert not list((tmp_path / "out" / "_shards").iterdir())  # nothing left behind
    with pytest.raises(dask_engine.OutputNotShared, match=r"^worker tcp://\S+ cannot see the catalog .*nowhere.csv"):
        dask_engine.check_output(dask_client, tmp_path / "out", tmp_path / "nowhere.csv")
    with pytest.raises(cluster.NotShared, match=r"^worker tcp://\S+ cannot see .*no-model.keras: .*share"):
        cluster.check_visible(dask_client, [tmp_path / "out", tmp_path / "no-model.keras"])


# --------------------------------------------------------------------------- prediction


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
    common = [
        "predict",
        "--model",
        str(tiny_model),
        "--images",
        str(folder),
        "--batch-size",
        "2",
        "--threshold",
        "0.34",
    ]

    assert cli.main([*common, "--out", str(local)]) == 0
    assert (
        cli.main([*common, "--out", str(dask_out), "--engine", "dask", "--scheduler", dask_client.scheduler.address])
        == 0
    )

    assert dask_out.read_bytes() == local.read_bytes()
    assert predict.submission_path(dask_out).read_bytes() == predict.submission_path(local).read_bytes()
    pred = pd.read_csv(dask_out, dtype={"id": str})
    assert len(pred) == 47 and pred["confidence"].notna().sum() == 45  # bad.jpg and the 404 keep their rows
    assert pred.set_index("id").loc["gone", "error"] == "HTTP 404"
    # with test-time flips too: the workers answer each image and its mirror image as this process does
    flips = [tmp_path / "local" / "flip.csv", tmp_path / "dask" / "flip.csv"]
    assert cli.main([*common, "--tta", "flip", "--out", str(flips[0])]) == 0
    dask_args = ["--engine", "dask", "--scheduler", dask_client.scheduler.address]
    assert cli.main([*common, "--tta", "flip", "--out", str(flips[1]), *dask_args]) == 0
    assert flips[1].read_bytes() == flips[0].read_bytes() != local.read_bytes()


def test_each_worker_loads_the_model_once(tiny_model, tmp_path, dask_client):
    import shutil

    folder = _fetched_test_folder(tmp_path / "test")
    model = tmp_path / "m" / "tiny.keras"  # a path no worker has loaded yet
    model.parent.mkdir()
    shutil.copy(tiny_model, model)
    shutil.copy(tiny_model.with_name("tiny.labels.json"), model.with_name("tiny.labels.json"))
    before = dask_client.run(dask_predict.model_loads)
    key = str(model.resolve())
    # batch 2 -> chunks of 16 images -> 3 partitions of 16 per call; two calls -> 6 tasks
    for _ in range(2):
        pred = predict.predict(
            model, folder, batch_size=2, engine="dask", scheduler=dask_client, partition_images=16, progress=False
        )
        assert pred["confidence"].notna().sum() == 45
    after = dask_client.run(dask_predict.model_loads)
    loads = {w: after[w].get(key, 0) - before.get(w, {}).get(key, 0) for w in after}
    assert set(after) == set(before) and len(after) == 2
    assert all(n <= 1 for n in loads.values()), loads  # never once per task
    assert sum(loads.values()) >= 1


def test_partitions_are_whole_chunks_in_order():
    assert dask_predict.partition_bounds(0, 16, 16) == []
    assert dask_predict.partition_bounds(40, 16, 16) == [(0, 16), (16, 32), (32, 40)]
    assert dask_predict.partition_bounds(40, 20, 16) == [(0, 32), (32, 40)]  # rounded up to whole chunks
    assert dask_predict.partition_bounds(5, 1, 16) == [(0, 5)]


def test_unreachable_scheduler_is_one_line(tiny_model, tmp_path, capsys):
    from landmarklib import cli

    folder = _fetched_test_folder(tmp_path / "test", n=2)
    rc = cli.main(
        [
            "predict",
            "--model",
            str(tiny_model),
            "--images",
            str(folder),
            "--out",
            str(tmp_path / "p.csv"),
            "--engine",
            "dask",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err[0]


def test_notebook_02_fetches_on_dask(tmp_path, dask_client, run_notebook):
    from conftest import NB02_IMAGES as N_IMAGES
    from conftest import write_nb02_catalog

    write_nb02_catalog(tmp_path / "raw")
    reports = tmp_path / "reports"
    common = dict(image_size=32, n_images=N_IMAGES, progress=False)
    local = fetch.fetch_catalog(tmp_path / "raw" / "train.csv", tmp_path / "local", processes=1, **common)
    run_notebook(
        "02",
        tmp_path / "02.ipynb",
        {
            "train_csv": str(tmp_path / "raw" / "train.csv"),
            "test_csv": str(tmp_path / "raw" / "test.csv"),
            "train_dir": str(tmp_path / "processed" / "train"),
            "test_dir": str(tmp_path / "processed" / "test"),
            "sample_dir": str(tmp_path / "sample"),
            "n_images": N_IMAGES,
            "image_size": 32,
            "workers": 8,
            "reports_dir": str(reports),
            "fetch_engine": "dask",
            "dask_scheduler": dask_client.scheduler.address,
            "shard_rows": 20,
            "max_per_host": 4,
        },
        cwd=tmp_path,
    )
    m = __import__("json").loads((reports / "metrics" / "02_fetch.json").read_text())
    assert (m["n_rows"], m["ok"], m["failed"]) == (local.n_rows, local.ok, local.failed)
    assert m["failed_by_reason"] == local.failed_by_reason
    train = tmp_path / "processed" / "train"
    assert manifest_rows(train) == manifest_rows(tmp_path / "local")
    assert len(list((train / "_shards").glob("*.done"))) == -(-N_IMAGES // 20)


def test_dask_prediction_of_a_test_csv_fetches_it_on_the_cluster(tiny_model, tmp_path, dask_client):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (30, 24, 3), dtype=np.uint8)).save(raw / "images" / f"q{i}.jpg")
    (raw / "test.csv").write_text(
        "id,url\n" + "".join(f"q{i},images/q{i}.jpg\n" for i in range(6)) + "q9,images/missing.jpg\n"
    )
    local, dask_out = tmp_path / "local" / "pred.csv", tmp_path / "dask" / "pred.csv"
    common = ["predict", "--model", str(tiny_model), "--images", str(raw / "test.csv")]
    assert cli.main([*common, "--out", str(local)]) == 0
    assert (
        cli.main([*common, "--out", str(dask_out), "--engine", "dask", "--scheduler", dask_client.scheduler.address])
        == 0
    )
    assert dask_out.read_bytes() == local.read_bytes()
    assert predict.submission_path(dask_out).read_bytes() == predict.submission_path(local).read_bytes()
    fetched = dask_out.with_name("pred_images")
    assert (fetched / "_shards" / "000000.done").is_file()  # fetched by the Dask engine
    assert manifest_rows(fetched) == manifest_rows(local.with_name("pred_images"))


def test_fetch_cli_starts_its_own_local_cluster(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    for i in range(4):
        (tmp_path / "images" / f"a{i}.jpg").write_bytes(jpeg_bytes(60, 40, seed=i))
    csv_path = write_csv(tmp_path / "train.csv", [(f"a{i}", f"images/a{i}.jpg", 5) for i in range(4)])
    rc = cli.main(
        [
            "fetch",
            str(csv_path),
            "--out",
            str(tmp_path / "out"),
            "--size",
            "16",
            "--engine",
            "dask",
            "--dask-workers",
            "1",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dask: local cluster, 1 workers, 1 threads; dashboard http" in printed and "ok 4, failed 0" in printed
    assert [r["status"] for r in manifest_rows(tmp_path / "out")] == ["ok"] * 4


def test_dask_options_need_the_dask_engine(tmp_path, capsys):
    assert cli.main(["fetch", str(tmp_path / "x.csv"), "--out", str(tmp_path / "o"), "--max-per-host", "4"]) == 2
    assert "need --engine dask" in capsys.readouterr().err


def test_killed_driver_leaves_no_worker_and_the_rerun_resumes(tmp_path, capsys):
    import subprocess
    import sys

    import psutil

    n = 60
    gate = Gate(free=10)  # the run cannot end before it is killed: the requests after the 10th wait
    with HttpTestServer() as server:
        rows = [
            (f"img{i:02d}", server.route(f"/p{i}.jpg", gate(image(jpeg_bytes(100, 80, seed=i)))), i % 3)
            for i in range(n)
        ]
        csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
        args = [
            "fetch",
            str(csv_path),
            "--out",
            str(out),
            "--size",
            "24",
            "--engine",
            "dask",
            "--dask-workers",
            "2",
            "--shard-rows",
            "15",
            "--workers",
            "4",
            "--quiet",
        ]
        proc = subprocess.Popen([sys.executable, "-m", "landmarklib.cli", *args])
        deadline, journalled = time.monotonic() + 90, set()
        while time.monotonic() < deadline and proc.poll() is None and len(journalled) < 5:
            for journal in (out / "_shards").glob("*.journal.csv"):
                text = journal.read_text()
                journalled |= {line.split(",")[0] for line in text[: text.rfind("\n")].splitlines()[1:]}
            time.sleep(0.02)
        assert proc.poll() is None and len(journalled) >= 5, "the run finished before it could be killed"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the local cluster's processes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, alive  # the workers do not outlive the run
        gate.open()
        first_run = dict(server.hits)
        server.forget_clients()  # the killed workers' requests still queued in the kernel are not counted below

        assert cli.main(args) == 0
        assert "skipped" in capsys.readouterr().out
    m = manifest_rows(out)
    assert [r["id"] for r in m] == [r[0] for r in rows] and all(r["status"] == "ok" for r in m)
    for image_id in journalled:  # finished before the kill: not asked for again
        path = f"/p{int(image_id[3:])}.jpg"
        assert first_run[path] == 1 and server.hits[path] == 0, image_id
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".journal.csv"))]


def test_dask_reads_tar_shards_in_place_and_writes_the_local_manifest(tmp_path, dask_client):
    from conftest import SHARD_IDS as IDS
    from conftest import write_id_catalog as write_catalog
    from conftest import write_shards

    shards = write_shards(tmp_path / "train", [[0, 1, 2], [3, 4], [5, 6, 7]], corrupt=6)
    (tmp_path / "train" / "md5.images_001.txt").write_text("0" * 32 + "  images_001.tar\n")
    order = [5, 0, 3, 8, 1, 6, 2, 4, 7]  # the catalog interleaves the shards: 2, 0, 1, none, 0, 2, 0, 1, 2
    catalog = write_catalog(tmp_path / "train.csv", [(IDS[i], i % 3) for i in order])
    local = fetch.fetch_catalog(catalog, tmp_path / "local", image_size=24, images=str(shards), progress=False)
    summary = dask_engine.fetch_catalog_dask(
        catalog, tmp_path / "dask", image_size=24, images=str(shards), client=dask_client, shard_rows=4, progress=False
    )
    assert (summary.ok, summary.failed) == (local.ok, local.failed) == (5, 4)
    assert [r["id"] for r in manifest_rows(tmp_path / "dask")] == [IDS[i] for i in order]  # catalog order
    assert manifest_rows(tmp_path / "dask") == manifest_rows(tmp_path / "local")
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")
    # one task per readable TAR shard (images_000: ids 0 1 2; images_002: 5 6 7, its corrupt member
    # included); the rows no shard can give (images_001's md5 mismatch, id 8 missing) in one chunk
    markers = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "dask" / "_shards").glob("*.done")}
    tasks = [(m["rows"], m["ok"], m["failed"]) for _, m in sorted(markers.items())]
    assert tasks == [(3, 2, 1), (3, 3, 0), (3, 0, 3)], tasks
    rows, _ = fetch.local._read_input(catalog, strict=False, images=str(shards))
    groups = dask_engine.shard_positions(rows, 4)
    assert [[order[i] for i in g] for g in groups] == [[5, 6, 7], [0, 1, 2], [3, 8, 4]]
