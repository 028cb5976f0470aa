"""`landmarks report` on the data as the field ships it: GLDv2 TAR shards, a Kaggle 2019-2021 test folder and
an ``id,landmarks,Usage`` solution (``end_to_end_shards`` in conftest.py repacks the end-to-end run's sample).

The same images as the end-to-end run, read in place from the shards and the folder instead of the
catalog's urls: the processed folders must be the same files, byte for byte, and every notebook must run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import E2E_METRICS, NOTEBOOKS, read_metrics


def tree(folder: Path) -> dict[str, bytes]:
    """Every JPEG under ``folder`` by its relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.jpg"))}


def manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_the_study_runs_on_gldv2_shards_and_a_kaggle_folder_with_the_same_images(end_to_end, end_to_end_shards):
    (urls, _), (base, proc) = end_to_end, end_to_end_shards
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" not in proc.stderr  # train_images and test_images are declared by the notebooks
    status = {line.split()[0]: line.split()[-1] for line in proc.stdout.splitlines() if line[:2].isdigit()}
    assert status == {p.stem: "ok" for p in NOTEBOOKS}, proc.stdout[-2000:]
    assert sorted(p.stem for p in (base / "reports" / "metrics").glob("*.json")) == E2E_METRICS

    # the same JPEGs as from the urls, in the same <landmark_id>/<id>.jpg places
    for split in ("train", "test"):
        assert tree(base / "processed" / split) == tree(urls / "processed" / split), split
    # row for row the same outcome; the sample's broken images fail as what they are in a shard
    for split in ("train", "test"):
        rows, rows_urls = manifest(base / "processed" / split), manifest(urls / "processed" / split)
        assert [(r["id"], r["status"]) for r in rows] == [(r["id"], r["status"]) for r in rows_urls], split
    train = manifest(base / "processed" / "train")
    reasons = sorted(r["error"].split(" (")[0] for r in train if r["status"] == "failed")
    assert reasons == ["not in the images", "unreadable member", "unreadable member", "unreadable member"], reasons
    assert all(r["url"].startswith("tar://") for r in train if r["error"] != "not in the images")  # read in place
    assert all(r["url"].startswith("file://") for r in manifest(base / "processed" / "test"))  # the folder's files

    # every notebook saw the same data: 01 the id,landmark_id catalog, 02 the sources, 06/07 the Kaggle solution
    explored, explored_urls = read_metrics(base, "01_explore"), read_metrics(urls, "01_explore")
    for key in ("n_images", "n_landmarks", "n_bad_rows", "top_k", "landmarks_kept", "images_kept"):
        assert explored[key] == explored_urls[key], key
    fetched = read_metrics(base, "02_fetch")
    assert fetched["images"] == str(base / "shards" / "train") and fetched["test"]["images"].endswith("kaggle/test")
    fetched_urls = read_metrics(urls, "02_fetch")
    assert (fetched["ok"], fetched["failed"], fetched["test"]["ok"]) == (56, 4, 9)
    assert (fetched_urls["ok"], fetched_urls["failed"], fetched_urls["test"]["ok"]) == (56, 4, 9)
    beyond = read_metrics(base, "07_beyond")
    assert beyond["n_test_ids"] == 10 and beyond["unreadable"] == {}
    report = read_metrics(base, "06_report")
    assert report["n_test"] == read_metrics(urls, "06_report")["n_test"] == 10 and report["gap"] is not None
