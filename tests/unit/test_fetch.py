"""landmarklib.fetch against a real HTTP server on 127.0.0.1: good images, every failure,
path traversal, file:// and relative URLs, layouts, resume, a kill and resume, the CLI."""

from __future__ import annotations

import collections
import csv
import io
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from landmarklib import cli, config, fetch, files
from landmarklib.httpserver import Gate, HttpTestServer, image, jpeg_bytes, oversized, status

from conftest import FAST, FETCH_TIMEOUT, TIMED_OUT, check_jpeg, free_port, png_rgba, serve_every_failure, write_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server():
    with HttpTestServer() as srv:
        yield srv


def manifest(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(fetch.MANIFEST_COLUMNS) if rows else True
    return {row["id"]: row for row in rows}


def gif_bytes() -> bytes:
    out = io.BytesIO()
    frames = [Image.new("RGB", (90, 60), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_good_rows_and_every_failure(tmp_path, server):
    photo = serve_every_failure(server, tmp_path)
    (tmp_path / "abs.png").write_bytes(png_rgba())
    server.route("/anim.gif", image(gif_bytes(), "image/gif"))
    server.route("/huge-chunked.jpg", oversized(3 * 2**20, declare_length=False))
    u = server.url
    rows = [
        ("good", u("/good.jpg"), 1),
        ("rgba", u("/rgba.png"), 1),
        ("gif", u("/anim.gif"), 2),
        ("moved", u("/moved.jpg"), 2),
        ("flaky", u("/flaky.jpg"), 3),
        ("busy", u("/busy.jpg"), 3),
        ("relative", "local/rel.jpg", 4),
        ("fileurl", (tmp_path / "abs.png").as_uri(), 4),
        ("missing", u("/missing.jpg"), 5),
        ("down", u("/down.jpg"), 5),
        ("slow", u("/slow.jpg"), 5),
        ("stall", u("/stall.jpg"), 5),
        ("huge", u("/huge.jpg"), 5),
        ("huge-chunked", u("/huge-chunked.jpg"), 5),
        ("truncated", u("/truncated.jpg"), 5),
        ("page", u("/page.html"), 5),
        ("bomb", u("/bomb.png"), 5),
        ("to-file", u("/to-file.jpg"), 5),
        ("loop", u("/loop.jpg"), 5),
        ("refused", f"http://127.0.0.1:{free_port()}/x.jpg", 5),
        ("nofile", "local/none.jpg", 5),
        ("ftp", "ftp://example.org/x.jpg", 5),
        ("../escape", u("/good.jpg"), 6),
        ("a/b", u("/good.jpg"), 6),
        ("..", u("/good.jpg"), 6),
    ]
    out = tmp_path / "out"
    csv_path = write_csv(tmp_path / "train.csv", rows)
    summary = fetch.fetch_catalog(csv_path, out, image_size=64, max_bytes=2**20, processes=1, **FAST)

    m = manifest(out)
    assert list(m) == [r[0] for r in rows]  # one row per input row, in input order
    ok = ["good", "rgba", "gif", "moved", "flaky", "busy", "relative", "fileurl"]
    for image_id in ok:
        assert m[image_id]["status"] == "ok" and m[image_id]["error"] == "", m[image_id]
        check_jpeg(out / m[image_id]["landmark_id"] / f"{image_id}.jpg", 64)
    assert {k: m["good"][k] for k in ("bytes", "width", "height", "format")} == {
        "bytes": str(len(photo)),
        "width": "640",
        "height": "480",
        "format": "JPEG",
    }
    assert (m["rgba"]["format"], m["gif"]["format"], m["relative"]["height"]) == ("PNG", "GIF", "500")
    with Image.open(out / "1" / "rgba.jpg") as img:  # transparent -> white
        assert all(v > 245 for v in img.getpixel((32, 32)))
    errors = {image_id: row["error"] for image_id, row in m.items() if row["status"] == "failed"}
    assert errors == {
        "missing": "HTTP 404",
        "down": "HTTP 503",
        "slow": TIMED_OUT,
        "stall": TIMED_OUT,
        "huge": "body larger than 1 MB",
        "huge-chunked": "body larger than 1 MB",
        "truncated": "truncated image",
        "page": "not an image (cannot identify image file)",
        "bomb": "decompression bomb (10000000000 pixels)",
        "to-file": "redirect to unsupported URL scheme 'file'",
        "loop": "too many redirects",
        "refused": "connection refused",
        "nofile": "file not found",
        "ftp": "unsupported URL scheme 'ftp'",
        "../escape": "unsafe id '../escape'",
        "a/b": "unsafe id 'a/b'",
        "..": "unsafe id '..'",
    }
    assert m["truncated"]["format"] == "JPEG" and m["truncated"]["width"] == "400"
    # retries: transient failures tried 1 + retries times, permanent ones once
    assert server.hits["/flaky.jpg"] == 2 and server.hits["/busy.jpg"] == 2
    assert server.hits["/down.jpg"] == 3 and server.hits["/slow.jpg"] == 3
    assert server.hits["/missing.jpg"] == 1 and server.hits["/page.html"] == 1 and server.hits["/bomb.png"] == 1
    busy = server.hit_times["/busy.jpg"]
    assert busy[1] - busy[0] >= 0.9  # Retry-After: 1 honoured
    # nothing written outside the output folder, no image for a failed row, no temporary file
    assert not (tmp_path / "escape.jpg").exists() and not (out.parent / "escape.jpg").exists()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [f"{m[i]['landmark_id']}/{i}.jpg" for i in ok] + ["manifest.csv"]
    )
    assert (summary.n_rows, summary.ok, summary.failed, summary.skipped) == (len(rows), 8, 17, 0)
    assert summary.failed_by_reason[TIMED_OUT] == 2
    assert summary.failed_by_reason["unsafe id"] == 3 and summary.failed_by_reason["decompression bomb"] == 1
    assert summary.images_per_second > 0 and summary.empty_folders_removed == 0
    assert not (out / "5").exists() and not (out / "6").exists()  # no folder for a landmark without image


def good_server(server: HttpTestServer, n: int, landmarks: int = 4) -> list[tuple]:
    rows = []
    for i in range(n):
        url = server.route(f"/p{i}.jpg", image(jpeg_bytes(200 + i, 150, seed=i)))
        rows.append((f"img{i:03d}", url, i % landmarks))
    return rows


def test_resume_fetches_only_what_is_missing(tmp_path, server):
    rows = good_server(server, 12) + [("gone", server.route("/gone.jpg", status(404)), 0)]
    csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
    first = fetch.fetch_catalog(csv_path, out, image_size=48, processes=1, **FAST)
    assert (first.ok, first.failed, first.skipped) == (12, 1, 0)
    before = manifest(out)
    hits = server.total_hits()

    again = fetch.fetch_catalog(csv_path, out, image_size=48, processes=1, **FAST)
    assert (again.ok, again.failed, again.skipped) == (0, 1, 12)
    assert server.total_hits() == hits + 1 and server.hits["/gone.jpg"] == 2  # only the failed row again
    after = manifest(out)
    assert {k: after[k] for k in after if k != "gone"} == {k: before[k] for k in before if k != "gone"}

    (out / "1" / "img001.jpg").unlink()  # a lost image is fetched again
    (out / "2" / "img002.jpg").write_bytes(b"junk")  # so is a broken one
    third = fetch.fetch_catalog(csv_path, out, image_size=48, processes=1, **FAST)
    assert (third.ok, third.skipped) == (2, 10)
    assert server.hits["/p1.jpg"] == 2 and server.hits["/p2.jpg"] == 2 and server.hits["/p3.jpg"] == 1

    other_size = fetch.fetch_catalog(csv_path, out, image_size=32, processes=1, **FAST)  # outputs of another size
    assert (other_size.ok, other_size.skipped) == (12, 0)
    check_jpeg(out / "3" / "img003.jpg", 32)


def test_the_settings_are_one_fetch_config_and_a_bad_one_fails_before_any_work(tmp_path, server):
    rows = good_server(server, 5)
    csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
    settings = config.FetchConfig(image_size=24, n_images=3, processes=1, timeout=FETCH_TIMEOUT, retries=0)
    summary = fetch.fetch_catalog(csv_path, out, settings, progress=False)
    assert (summary.n_rows, summary.ok) == (3, 3)  # n_images is the limit
    check_jpeg(out / "2" / "img002.jpg", 24)
    # a keyword changes one field of the settings given, the others stay
    again = fetch.fetch_catalog(csv_path, out, settings, n_images=None, progress=False)
    assert (again.n_rows, again.ok, again.skipped) == (5, 2, 3)
    check_jpeg(out / "0" / "img004.jpg", 24)
    # an unknown name or a bad value: ConfigError (a ValueError), one line, nothing fetched
    server.reset_hits()
    cases = [
        ({"size": 24}, "unknown setting 'size' for FetchConfig (did you mean 'image_size'?)"),
        ({"limit": 2}, "unknown setting 'limit' for FetchConfig"),
        ({"workers": 0}, "workers: must be positive, not 0"),
        ({"fail_fast_after": -1}, "fail_fast_after: must be 0 or more, not -1"),
        ({"resize": "squash"}, "resize: 'squash' is not one of 'stretch', 'crop', 'pad'"),
    ]
    for changes, message in cases:
        with pytest.raises(config.ConfigError) as err:
            fetch.fetch_catalog(csv_path, tmp_path / "bad", settings, progress=False, **changes)
        assert message in str(err.value) and "\n" not in str(err.value), changes
    assert not (tmp_path / "bad").exists() and not server.hits
    # the engines' options come from the same settings
    options = fetch.FetchOptions.from_config(settings, labelled=True, base_dir=".", threads=2)
    assert (options.size, options.timeout, options.retries, options.max_bytes) == (
        24,
        FETCH_TIMEOUT,
        0,
        settings.max_bytes,
    )
    assert fetch.FetchOptions().size == config.FetchConfig().image_size  # one owner of the defaults


def test_interrupted_run_is_folded_in_on_resume(tmp_path, server):
    rows = good_server(server, 4)
    csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
    fetch.fetch_catalog(csv_path, out, image_size=32, **FAST)
    done = list(manifest(out).values())
    # the state a crash leaves: no manifest.csv, a journal whose last line was cut, a temporary file
    (out / "manifest.csv").unlink()
    lines = ["seq," + ",".join(fetch.MANIFEST_COLUMNS)]
    lines += [f"{seq}," + ",".join(row[c] for c in fetch.MANIFEST_COLUMNS) for seq, row in enumerate(done[:3])]
    lines[-1] = lines[-1][: lines[-1].index(",ok,") + 3]  # img002's row ends after its status
    (out / fetch.JOURNAL_NAME).write_text("\n".join(lines))
    stale = out / "3" / ".img003.jpg.123-456.tmp"
    stale.write_bytes(b"partial")
    server.reset_hits()

    summary = fetch.fetch_catalog(csv_path, out, image_size=32, **FAST)
    assert (summary.ok, summary.skipped) == (2, 2)  # img002 (cut row) and img003 (no row) fetched again
    assert dict(server.hits) == {"/p2.jpg": 1, "/p3.jpg": 1}
    assert not stale.exists() and not (out / fetch.JOURNAL_NAME).exists()
    assert [row["status"] for row in manifest(out).values()] == ["ok"] * 4


def test_worker_processes_give_the_same_result(tmp_path, server):
    rows = good_server(server, 70, landmarks=7) + [("gone", server.route("/gone.jpg", status(404)), 0)]
    out = tmp_path / "out"
    csv_path = write_csv(tmp_path / "train.csv", rows)
    summary = fetch.fetch_catalog(csv_path, out, image_size=40, processes=2, workers=8, **FAST)
    assert (summary.ok, summary.failed) == (70, 1)
    m = manifest(out)
    assert list(m) == [r[0] for r in rows]
    assert all(server.hits[f"/p{i}.jpg"] == 1 for i in range(70))
    for image_id, _url, label in rows[:-1]:
        check_jpeg(out / str(label) / f"{image_id}.jpg", 40)
    assert m["gone"]["error"] == "HTTP 404"


def test_early_worker_processes_stop_when_the_catalog_is_bad(tmp_path, monkeypatch):
    pools = []

    class Recorded(fetch.local._Workers):
        def __init__(self, *args):
            super().__init__(*args)
            pools.append(self)

    monkeypatch.setattr(fetch.local, "_Workers", Recorded)
    bad = tmp_path / "bad.csv"  # big enough for worker processes, which start before it is read
    bad.write_text("id,link,landmark_id\n" + "".join(f"a{i},http://x/{i}.jpg,1\n" for i in range(100)))
    with pytest.raises(ValueError, match="url"):
        fetch.fetch_catalog(bad, tmp_path / "out", processes=2, **FAST)
    assert len(pools) == 1 and not pools[0].pool._processes
    assert multiprocessing.active_children() == []


def test_unlabelled_catalog_layout(tmp_path, server):
    rows = [(f"t{i}", url) for i, (_, url, _) in enumerate(good_server(server, 3))]
    out = tmp_path / "test"
    test_csv = write_csv(tmp_path / "test.csv", rows, header=("id", "url"))
    summary = fetch.fetch_catalog(test_csv, out, image_size=32, **FAST)
    assert summary.ok == 3
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "t0.jpg", "t1.jpg", "t2.jpg"]
    assert {row["landmark_id"] for row in manifest(out).values()} == {""}


def test_empty_landmark_folders_are_removed(tmp_path, server):
    rows = good_server(server, 3)
    out = tmp_path / "out"
    (out / "999").mkdir(parents=True)  # left over, empty
    csv_path = write_csv(tmp_path / "train.csv", rows)
    assert fetch.fetch_catalog(csv_path, out, image_size=32, **FAST).empty_folders_removed == 1
    assert not (out / "999").exists() and (out / "1" / "img001.jpg").is_file()

    # the image of landmark 1 now fails: its old image goes (as in the study), then its empty folder
    rows[1] = ("img001", server.route("/now-missing.jpg", status(404)), 1)
    summary = fetch.fetch_catalog(write_csv(csv_path, rows), out, image_size=32, **FAST)
    assert (summary.ok, summary.failed, summary.skipped, summary.empty_folders_removed) == (0, 1, 2, 1)
    assert not (out / "1").exists() and (out / "0" / "img000.jpg").is_file()


def test_fetch_chunk_core_maps_rows_to_manifest_rows(tmp_path, server):
    import pandas as pd

    rows = [{"id": i, "url": url, "landmark_id": label} for i, url, label in good_server(server, 3)]
    rows.append({"id": "x", "url": server.route("/x", status(410)), "landmark_id": 9})
    rows.append({"id": "y", "url": "", "landmark_id": 9, "problem": "no url"})
    options = fetch.FetchOptions(size=24, timeout=2, retries=0, threads=4)
    result = fetch.fetch_chunk(pd.DataFrame(rows), tmp_path / "part", options)
    assert list(result.columns) == list(fetch.MANIFEST_COLUMNS)
    assert result["id"].tolist() == ["img000", "img001", "img002", "x", "y"]
    assert result["status"].tolist() == ["ok", "ok", "ok", "failed", "failed"]
    assert result["error"].tolist()[3:] == ["HTTP 410", "no url"]
    assert result["landmark_id"].tolist() == ["0", "1", "2", "9", "9"]
    check_jpeg(tmp_path / "part" / "1" / "img001.jpg", 24)
    assert fetch.fetch_chunk(rows[:0], tmp_path / "part", options).empty


def test_http_client_keeps_connections_alive_and_survives_closed_ones(server):
    body = jpeg_bytes(50, 50)
    url = server.route("/a.jpg", image(body))

    def close_after(handler, hit):  # answers, then drops the connection without saying so
        image(body)(handler, hit)
        handler.close_connection = True

    closing = server.route("/c.jpg", close_after)
    client = fetch.HttpClient(fetch.FetchOptions(timeout=2, retries=0))
    try:
        assert all(client.get(url) == body for _ in range(5))
        assert server.connections == 1
        assert client.get(closing) == body and client.get(closing) == body
        assert server.connections == 2 and server.hits["/c.jpg"] == 2
    finally:
        client.close()


def test_cli_exit_codes(tmp_path, server, capsys):
    rows = good_server(server, 2) + [("gone", server.route("/gone.jpg", status(404)), 0)]
    csv_path = write_csv(tmp_path / "train.csv", rows)
    assert cli.main(["fetch", str(csv_path), "--out", str(tmp_path / "out"), "--size", "32", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "ok 2, failed 1" in printed and "HTTP 404" in printed

    assert cli.main(["fetch", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.csv" in err and len(err.splitlines()) == 1

    bad = tmp_path / "bad.csv"
    bad.write_text("id,link,landmark_id\na,http://x/a.jpg,1\n")
    assert cli.main(["fetch", str(bad), "--out", str(tmp_path / "o3"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.csv" in err and "url" in err and len(err.splitlines()) == 1

    (tmp_path / "afile").write_text("x")
    assert cli.main(["fetch", str(csv_path), "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_killed_mid_run_resumes(tmp_path, capsys):
    import psutil

    n, free = 40, 10
    gate = Gate(free)  # the first 10 requests are served, the others held until the run is killed
    with HttpTestServer() as server:
        rows = []
        for i in range(n):
            url = server.route(f"/p{i}.jpg", gate(image(jpeg_bytes(200 + i, 150, seed=i))))
            rows.append((f"img{i:03d}", url, i % 4))
        csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
        args = [str(csv_path), "--out", str(out), "--size", "40", "--workers", "4", "--processes", "2", "--quiet"]
        proc = subprocess.Popen([sys.executable, "-m", "landmarklib.cli", "fetch", *args], cwd=ROOT)
        journal = out / fetch.JOURNAL_NAME
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file() and journal.read_text().count("\n") >= 8:  # header + 7 rows
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it was killed"
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2  # the two fetch processes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, alive  # the worker processes exit with their parent: no more requests come from them
        gate.open()

        # whatever is visible is whole: every .jpg decodes, no manifest.csv yet, the journal holds the finished rows
        for path in out.rglob("*.jpg"):
            check_jpeg(path, 40)
        assert not (out / "manifest.csv").exists()
        with open(journal, newline="") as f:
            done = {row["id"] for row in csv.DictReader(f) if row["status"] == "ok"}
        assert 7 <= len(done) <= free  # held requests never finished

        server.forget_clients()  # the killed run's requests still in the kernel's queues are not counted below
        assert cli.main(["fetch", *args]) == 0
        assert f"skipped {len(done)}" in capsys.readouterr().out
        m = manifest(out)
        assert len(m) == n and all(row["status"] == "ok" for row in m.values())
        fetched_again = {f"img{int(path[2:-4]):03d}" for path in server.hits}
        assert fetched_again == {r[0] for r in rows} - done  # only the missing rows
        assert all(count == 1 for count in server.hits.values())
        assert not journal.exists() and not list(out.rglob("*.tmp"))
        for image_id, _, label in rows:
            check_jpeg(out / str(label) / f"{image_id}.jpg", 40)


# --------------------------------------------------------------------------- bad rows, dead hosts, proxies


def test_each_bad_row_fails_alone_with_its_reason(tmp_path, server, capsys):
    good = good_server(server, 2)
    rows = [
        good[0],
        ("nourl", "", 1),
        ("noneurl", "None", 1),
        ("badlabel", server.route("/never1.jpg", image(jpeg_bytes(40, 40))), "abc"),
        ("a/b", server.route("/never2.jpg", image(jpeg_bytes(40, 40))), 2),
        (good[0][0], server.route("/never3.jpg", image(jpeg_bytes(40, 40))), 3),  # duplicate id, another label
        good[1],
    ]
    csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
    summary = fetch.fetch_catalog(csv_path, out, image_size=32, **FAST)
    m = list(csv.DictReader(open(out / "manifest.csv", newline="")))
    assert [r["id"] for r in m] == [r[0] for r in rows]
    assert [r["error"] for r in m] == [
        "",
        "no url",
        "no url",
        "bad landmark_id 'abc'",
        "unsafe id 'a/b'",
        "duplicate id 'img000'",
        "",
    ]
    assert (summary.ok, summary.failed, summary.bad_rows) == (2, 5, 5)
    assert summary.failed_by_reason == {"no url": 2, "bad landmark_id": 1, "unsafe id": 1, "duplicate id": 1}
    assert not any(server.hits[f"/never{i}.jpg"] for i in (1, 2, 3))
    check_jpeg(out / "0" / "img000.jpg", 32)  # the duplicate did not remove the first row's image
    assert not summary.network_down

    # the command line: exit 0 with the counts; --strict refuses the catalog with one line
    assert cli.main(["fetch", str(csv_path), "--out", str(tmp_path / "o2"), "--size", "32", "--quiet"]) == 0
    assert "no url" in capsys.readouterr().out
    strict = ["fetch", str(csv_path), "--out", str(tmp_path / "o3"), "--quiet", "--strict"]
    assert cli.main(strict) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 3, column url: empty url" in err
    assert not (tmp_path / "o3" / "manifest.csv").exists()


def test_dead_hosts_fail_fast_and_a_rerun_tries_them_again(tmp_path, server, capsys):
    refused_port = free_port()  # nothing listens there (yet)
    refused = [(f"r{i:03d}", f"http://127.0.0.1:{refused_port}/r{i}.jpg", 1) for i in range(60)]
    unresolvable = [(f"n{i:03d}", f"http://landmarks-test.invalid/n{i}.jpg", 2) for i in range(60)]
    good = good_server(server, 4)
    rows = good[:2] + [row for pair in zip(refused, unresolvable) for row in pair] + good[2:]
    csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
    workers, fail_after = 4, 3
    summary = fetch.fetch_catalog(
        csv_path, out, image_size=32, processes=1, workers=workers, fail_fast_after=fail_after, **FAST
    )
    m = manifest(out)
    assert all(m[r[0]]["status"] == "ok" for r in good)  # the live server on the same machine is not given up
    refused_errors = collections.Counter(m[r[0]]["error"] for r in refused)
    assert set(refused_errors) <= {"connection refused", "host unreachable (connection refused)"}
    unresolved_errors = collections.Counter(m[r[0]]["error"] for r in unresolvable)
    assert set(unresolved_errors) <= {"DNS lookup failed", "host unreachable (DNS lookup failed)"}
    # at most the rows in flight when the host was given up were tried: the others failed at once
    assert refused_errors["connection refused"] <= fail_after + workers
    assert unresolved_errors["DNS lookup failed"] <= fail_after + workers
    assert summary.failed == 120 and summary.ok == 4
    assert summary.unreachable_hosts == sorted([f"127.0.0.1:{refused_port}", "landmarks-test.invalid:80"])
    assert not summary.network_down  # the good rows came in

    # a later run tries the given-up rows again: a server now answers on the refused port
    with HttpTestServer(port=refused_port) as revived:
        for i in range(60):
            revived.route(f"/r{i}.jpg", image(jpeg_bytes(50, 40, seed=i)))
        again = fetch.fetch_catalog(csv_path, out, image_size=32, processes=1, workers=workers, **FAST)
    assert (again.ok, again.skipped, again.failed) == (60, 4, 60)
    assert set(revived.hits) == {f"/r{i}.jpg" for i in range(60)}
    check_jpeg(out / "1" / "r007.jpg", 32)


def test_a_row_cut_short_by_the_give_up_says_host_unreachable(tmp_path):
    """Which rows of a dead host say ``host unreachable`` must not hang on thread timing: a row whose
    retries the give-up cut short says it; only a row that used up its own retries keeps its error."""
    from landmarklib.fetch import core

    options = core.FetchOptions(size=32, timeout=FETCH_TIMEOUT, retries=2, backoff=0.05, base_dir=str(tmp_path))
    url = f"http://127.0.0.1:{free_port()}/x.jpg"

    def error(fail_after: int) -> tuple[str, int, bool]:
        hosts = core.HostHealth(fail_after)
        row, _ = core.fetch_row({"id": "x", "url": url, "landmark_id": "1"}, tmp_path / "out", options, hosts)
        host = core.host_of(url)
        return row["error"], hosts._streak[host][0], host in hosts.dead

    # given up after its first refusal, as when other rows in flight had failed meanwhile: no more tries
    assert error(1) == ("host unreachable (connection refused)", 1, True)
    # given up at its third refusal, its last try: its own error
    assert error(3) == ("connection refused", 3, True)
    assert error(4) == ("connection refused", 3, False)  # never given up


def test_nothing_reachable_says_so_and_exits_0(tmp_path, capsys):
    rows = [(f"n{i}", f"http://nowhere-{i % 2}.invalid/{i}.jpg", 1) for i in range(40)]
    rows.append(("x", "", 1))
    csv_path = write_csv(tmp_path / "train.csv", rows)
    args = ["fetch", str(csv_path), "--out", str(tmp_path / "out"), "--quiet", "--processes", "1"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "ok 0, failed 41" in printed
    assert "nothing could be fetched: the network or the hosts are unreachable (2 hosts given up" in printed
    from landmarklib import manifest as manifest_module

    line = manifest_module.no_images_reason(tmp_path / "out", shown_as="data/processed/x")
    assert line.startswith("no images in data/processed/x: 41 of 41 rows failed: host unreachable (")
    assert "no url (1)" in line


def test_proxies_from_the_environment(tmp_path, server, monkeypatch):
    body = jpeg_bytes(60, 40)
    server.route("http://landmark.invalid/p.jpg", image(body))  # a proxy sees the absolute URL
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("no_proxy", "localhost")
    monkeypatch.setenv("NO_PROXY", "localhost")
    fetch.core.client_for.cache_clear()  # clients read the environment when made
    try:
        csv_path = write_csv(tmp_path / "train.csv", [("p", "http://landmark.invalid/p.jpg", 1)])
        summary = fetch.fetch_catalog(csv_path, tmp_path / "out", image_size=24, processes=1, **FAST)
    finally:
        fetch.core.client_for.cache_clear()
    assert summary.ok == 1 and server.hits["http://landmark.invalid/p.jpg"] == 1
    check_jpeg(tmp_path / "out" / "1" / "p.jpg", 24)


# --------------------------------------------------------------------------- one writer per output folder


def test_a_second_fetch_into_the_same_folder_is_refused_at_once_and_the_first_loses_nothing(tmp_path, capsys):
    import psutil

    n = 30
    gate = Gate(free=3)  # the first run stays under way until the second has been refused
    with HttpTestServer() as server:
        rows = [
            (f"img{i:03d}", server.route(f"/p{i}.jpg", gate(image(jpeg_bytes(90, 70, seed=i)))), i % 3)
            for i in range(n)
        ]
        csv_path, out = write_csv(tmp_path / "train.csv", rows), tmp_path / "out"
        args = [str(csv_path), "--out", str(out), "--size", "32", "--workers", "4", "--quiet"]
        first = subprocess.Popen([sys.executable, "-m", "landmarklib.cli", "fetch", *args], cwd=ROOT)
        owner = files.lock_path(out).with_name(".out.lock.json")
        deadline = time.monotonic() + 120
        while not owner.is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None and owner.is_file(), "the first run did not take the folder"

        assert cli.main(["fetch", *args]) == 2  # the second writer
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert str(out) in err[0] and "being written by another run" in err[0]
        assert f"landmarks fetch train.csv, pid {first.pid}" in err[0]
        assert not (out / "manifest.csv").exists()  # the refused run wrote nothing

        gate.open()
        assert first.wait(120) == 0
        assert len(manifest(out)) == n and {r["status"] for r in manifest(out).values()} == {"ok"}
        assert not owner.exists()  # who holds it: gone with the run; the (empty) lock file stays
        assert cli.main(["fetch", *args]) == 0  # the folder is free again: a rerun resumes
        assert f"skipped {n}" in capsys.readouterr().out

        # a run killed with SIGKILL leaves no lock behind: the kernel drops it with the process
        gate2, out2 = Gate(free=2), tmp_path / "out2"
        for i in range(n):
            server.route(f"/p{i}.jpg", gate2(image(jpeg_bytes(90, 70, seed=i))))
        args2 = [str(csv_path), "--out", str(out2), "--size", "32", "--workers", "2", "--processes", "2", "--quiet"]
        killed = subprocess.Popen([sys.executable, "-m", "landmarklib.cli", "fetch", *args2], cwd=ROOT)
        owner2 = files.lock_path(out2).with_name(".out2.lock.json")
        deadline = time.monotonic() + 120
        while not owner2.is_file() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert killed.poll() is None and owner2.is_file()
        children = psutil.Process(killed.pid).children(recursive=True)
        killed.kill()
        killed.wait()
        psutil.wait_procs(children, timeout=60)
        gate2.open()
        assert cli.main(["fetch", *args2]) == 0  # not refused: nobody holds the folder
        assert len(manifest(out2)) == n


def test_the_dask_engine_and_predict_out_take_the_same_lock(tmp_path, capsys):
    from landmarklib.fetch import dask_engine

    csv_path = write_csv(tmp_path / "train.csv", [("a", "http://127.0.0.1:9/a.jpg", 1)])
    out = tmp_path / "out"
    with files.one_writer(out, "a test holding the folder"):
        with pytest.raises(files.FolderBusy, match=r"being written by another run \(a test holding the folder, pid"):
            dask_engine.fetch_catalog_dask(csv_path, out, client=object(), progress=False)
        with pytest.raises(files.FolderBusy):
            fetch.fetch_catalog(csv_path, out, progress=False)
    assert not list(out.glob("_shards"))  # refused before anything was written

    model = tmp_path / "m.keras"
    model.write_bytes(b"not read: the lock is taken first")
    pred = tmp_path / "pred.csv"
    with files.one_writer(pred, "another predict"):
        rc = cli.main(["predict", "--model", str(model), "--images", str(tmp_path), "--out", str(pred)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pred.csv is being written by another run (another predict" in err
    assert files.lock_path(pred) == tmp_path / ".pred.csv.lock"  # a file's lock lies beside it
