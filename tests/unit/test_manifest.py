"""landmarklib.manifest: the one reader and writer of manifest.csv, its journal, and the failure lines."""

from __future__ import annotations

import pytest

from landmarklib import catalog, manifest

HEADER = ",".join(manifest.COLUMNS)


def row(image_id: str, label: str = "1", status: str = "ok", error: str = "", url: str = "") -> str:
    return f"{image_id},{url or 'http://x/' + image_id},{label},{status},{error},10,5,5,JPEG,0.1"


def write(folder, lines: list[str], header: str = HEADER):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / manifest.NAME).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return folder


def test_read_fills_optional_columns_strips_and_checks_ok_labels(tmp_path):
    (tmp_path / manifest.NAME).write_text("\ufeff id , landmark_id,status\n a ,7,ok\nb,seven,failed\n")
    frame = manifest.read(tmp_path)
    assert list(frame.columns) == list(manifest.COLUMNS)
    assert frame[["id", "landmark_id", "status", "error"]].values.tolist() == [
        ["a", "7", "ok", ""],
        ["b", "seven", "failed", ""],
    ]  # a failed row may carry the catalog's bad landmark_id
    assert manifest.read(tmp_path, only_ok=True)["id"].tolist() == ["a"]
    (tmp_path / manifest.NAME).write_text("id,landmark_id,status\na,7,ok\nb,seven,ok\n")
    with pytest.raises(catalog.CatalogError) as err:
        manifest.read(tmp_path)
    assert (err.value.line, err.value.column) == (3, "landmark_id")
    (tmp_path / manifest.NAME).write_text("id,url\nx,y\n")
    with pytest.raises(catalog.CatalogError, match="missing column"):
        manifest.read(tmp_path)


def test_one_per_id_prefers_the_ok_row(tmp_path):
    write(
        tmp_path,
        [
            row("a", status="failed", error="timeout"),
            row("a"),
            row("b"),
            row("b", "2", "failed", "duplicate id 'b'"),
            row("c", status="failed", error="HTTP 404"),
        ],
    )
    kept = manifest.one_per_id(manifest.read(tmp_path))
    assert kept[["id", "status"]].values.tolist() == [["a", "ok"], ["b", "ok"], ["c", "failed"]]


def test_failure_lines(tmp_path):
    lines = [row(f"h{i}", status="failed", error="host unreachable (DNS lookup failed)") for i in range(6)]
    lines += [row("d", status="failed", error="DNS lookup failed"), row("n", status="failed", error="no url")]
    folder = write(tmp_path / "train", lines)
    assert (
        manifest.describe_failures(folder)
        == "8 of 8 rows failed: host unreachable (6), DNS lookup failed (1), no url (1)"
    )
    assert manifest.describe_failures(folder, top=1) == "8 of 8 rows failed: host unreachable (6), other (2)"
    assert manifest.no_images_reason(folder, shown_as="data/processed/x/train") == (
        "no images in data/processed/x/train: 8 of 8 rows failed: host unreachable (6), DNS lookup failed (1), no url (1)"
    )
    write(folder, [row("a")])  # ok, but its file is gone
    assert manifest.no_images_reason(folder).endswith(": 1 rows fetched ok but their files are missing")
    assert "no manifest.csv" in manifest.no_images_reason(tmp_path / "absent")
    write(folder, [])
    assert manifest.no_images_reason(folder).endswith("the catalog had no rows")


def test_journal_writes_the_manifest_in_catalog_order_and_fold_recovers_a_killed_run(tmp_path):
    def manifest_row(i: int, status: str = "ok") -> dict:
        return {
            **dict.fromkeys(manifest.COLUMNS, ""),
            "id": f"i{i}",
            "url": f"u{i}",
            "landmark_id": "1",
            "status": status,
            "seconds": "0.1",
        }

    journal = manifest.Journal(tmp_path)
    journal.add([(2, manifest_row(2)), (0, manifest_row(0))])
    journal.add([(1, manifest_row(1, "failed"))])
    path = journal.finish()
    assert manifest.read(path)["id"].tolist() == ["i0", "i1", "i2"]
    assert not (tmp_path / manifest.JOURNAL_NAME).exists()

    # a killed rerun: its journal (last line cut) and a temporary file are folded in
    journal = manifest.Journal(tmp_path)
    journal.add([(1, manifest_row(1))])
    journal.close()
    with open(tmp_path / manifest.JOURNAL_NAME, "a") as f:
        f.write("3,i3,u3,1,ok")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / ".i3.jpg.12-34.tmp").write_bytes(b"part")
    done = manifest.fold(tmp_path)
    assert sorted(done["id"]) == ["i0", "i1", "i2"]
    assert manifest.read(tmp_path)["status"].tolist() == ["ok", "ok", "ok"]
    assert not (tmp_path / manifest.JOURNAL_NAME).exists() and not list(tmp_path.rglob("*.tmp"))


def test_image_path_and_reason_of(tmp_path):
    assert manifest.image_path(tmp_path, "a", "7") == tmp_path / "7" / "a.jpg"
    assert manifest.image_path(tmp_path, "a", "") == tmp_path / "a.jpg"
    assert manifest.reason_of("host unreachable (DNS lookup failed)") == "host unreachable"
    assert manifest.reason_of("duplicate id 'x'") == "duplicate id"
