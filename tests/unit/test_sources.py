"""`landmarks fetch --images`: GLDv2 TAR shards and Kaggle 2019-2021 folders, read in place."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import pytest

from landmarklib import cli, fetch
from landmarklib.fetch import core, sources

from conftest import SHARD_IDS as IDS
from conftest import check_jpeg, write_shards
from conftest import shard_body as body
from conftest import shard_member as nested
from conftest import write_id_catalog as write_catalog


def manifest(out: Path) -> dict[str, dict]:
    with open(out / "manifest.csv", newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def test_tar_shards_are_read_in_place_and_each_bad_row_fails_alone_with_its_reason(tmp_path):
    shards = write_shards(tmp_path / "train", [[0, 1, 2], [3, 4], [5, 6, 7]], corrupt=6)
    md5_1 = tmp_path / "train" / "md5.images_001.txt"
    md5_1.write_text("0" * 32 + "  images_001.tar\n")  # shard 1 is damaged: its rows fail, the others go on
    rows = [(IDS[i], i % 3) for i in range(9)]  # IDS[8] is in no shard
    catalog = write_catalog(tmp_path / "train.csv", rows)
    summary = fetch.fetch_catalog(
        catalog, tmp_path / "out", image_size=32, processes=1, images=str(shards), progress=False
    )
    m = manifest(tmp_path / "out")
    assert list(m) == [r[0] for r in rows]  # catalog order, every row once
    errors = {image_id: row["error"] for image_id, row in m.items() if row["status"] == "failed"}
    assert errors == {
        IDS[3]: "md5 mismatch: images_001.tar",
        IDS[4]: "md5 mismatch: images_001.tar",
        IDS[6]: errors[IDS[6]],
        IDS[8]: "not in the images",
    }
    assert errors[IDS[6]] == "unreadable member (not an image (cannot identify image file))"
    assert summary.ok == 5 and summary.failed == 4
    for i in (0, 1, 2, 5, 7):
        row = m[IDS[i]]
        assert row["url"].startswith(f"tar://{shards}/images_00") and row["url"].endswith(nested(IDS[i]))
        check_jpeg(tmp_path / "out" / str(i % 3) / f"{IDS[i]}.jpg", 32)
        assert core.read_member(row["url"]) == body(i)  # the member's bytes, found by offset
    assert not list(tmp_path.rglob("*/a/*"))  # nothing extracted anywhere


def test_the_same_images_from_shards_a_nested_folder_a_flat_folder_and_train_clean(tmp_path):
    members = [0, 1, 2, 3, 4]
    write_shards(tmp_path / "shards", [members[:2], members[2:]])
    for i in members:  # Kaggle 2019-2021: train/a/b/c/<id>.jpg; and the same files flat
        for path in (tmp_path / "kaggle" / nested(IDS[i]), tmp_path / "flat" / f"{IDS[i]}.jpg"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body(i))
    rows = [(IDS[i], 10 + i % 2) for i in members]
    by_id = write_catalog(tmp_path / "train.csv", rows)
    clean = write_catalog(  # GLDv2's train_clean.csv: landmark_id,images (space-separated ids)
        tmp_path / "train_clean.csv",
        [(10, " ".join(IDS[i] for i in members if i % 2 == 0)), (11, " ".join(IDS[i] for i in members if i % 2))],
        header="landmark_id,images",
    )
    outputs = {}
    for name, source, cat in (
        ("shards", "shards", by_id),
        ("kaggle", "kaggle", by_id),
        ("flat", "flat", by_id),
        ("clean", "shards", clean),
    ):
        out = tmp_path / f"out-{name}"
        summary = fetch.fetch_catalog(cat, out, image_size=24, images=str(tmp_path / source), progress=False)
        assert summary.ok == 5 and summary.failed == 0, name
        outputs[name] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.jpg"))}
    assert len(outputs["shards"]) == 5
    assert outputs["kaggle"] == outputs["flat"] == outputs["shards"] == outputs["clean"]  # byte for byte


def test_a_truncated_shard_keeps_the_members_before_the_cut(tmp_path):
    write_shards(tmp_path / "train", [[0, 1], [2, 3, 4]], md5=False)
    shard = tmp_path / "train" / "images_001.tar"
    data = shard.read_bytes()
    with tarfile.open(shard) as tar:
        last = tar.getmembers()[-1]
    shard.write_bytes(data[: last.offset_data + last.size // 2])  # the download stopped inside the last member
    catalog = write_catalog(tmp_path / "train.csv", [(IDS[i], 1) for i in range(5)])
    fetch.fetch_catalog(catalog, tmp_path / "out", image_size=24, images=str(tmp_path / "train"), progress=False)
    m = manifest(tmp_path / "out")
    assert [m[IDS[i]]["status"] for i in range(4)] == ["ok"] * 4
    assert m[IDS[4]]["error"] == "not in the images (images_001.tar ends early: it may have held it)"


def test_a_test_set_catalog_of_ids_writes_unlabelled_images_and_a_rerun_resumes(tmp_path, capsys):
    write_shards(tmp_path / "test", [[0, 1, 2]])
    catalog = write_catalog(tmp_path / "test.csv", [(IDS[i],) for i in range(3)], header="id")
    args = ["fetch", str(catalog), "--out", str(tmp_path / "out"), "--images", str(tmp_path / "test"), "--quiet"]
    assert cli.main([*args, "--size", "24"]) == 0
    assert "ok 3, failed 0" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == sorted(f"{IDS[i]}.jpg" for i in range(3))
    index = tmp_path / "out" / sources.INDEX_DIR
    assert sorted(p.name for p in index.iterdir()) == ["images_000.tar.csv", "images_000.tar.json"]
    assert cli.main([*args, "--size", "24"]) == 0  # resumed: the shard's index is read back, not rebuilt
    assert "skipped 3" in capsys.readouterr().out


def test_a_source_or_catalog_that_cannot_be_used_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    catalog = write_catalog(tmp_path / "train.csv", [(IDS[0], 1)])
    for source, expected in (
        (tmp_path / "empty", "no *.tar shard and no image file"),
        (tmp_path / "nowhere", "must be a folder"),
    ):
        assert cli.main(["fetch", str(catalog), "--out", str(tmp_path / "o"), "--images", str(source), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    odd = write_catalog(tmp_path / "odd.csv", [("x", "y")], header="name,label")
    write_shards(tmp_path / "s", [[0]])
    assert cli.main(["fetch", str(odd), "--out", str(tmp_path / "o2"), "--images", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "id,landmark_id or id,url,landmark_id or landmark_id,images or id expected" in err


@pytest.mark.parametrize("form", ["id,landmark_id", "id,url,landmark_id"])
def test_catalog_forms_with_an_id_column_ignore_any_url(tmp_path, form):
    path = tmp_path / "c.csv"
    if form == "id,url,landmark_id":
        path.write_text(f"id,url,landmark_id\n{IDS[0]},http://dead.invalid/x.jpg,3\n")
    else:
        path.write_text(f"id,landmark_id\n{IDS[0]},3\n")
    from landmarklib import catalog

    frame = catalog.read_image_rows(path)
    assert frame.to_dict("records") == [{"id": IDS[0], "landmark_id": "3"}]
