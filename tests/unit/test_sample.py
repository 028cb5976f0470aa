"""The embedded synthetic sample: plan, files, formats, determinism, idempotence, CLI."""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image, ImageOps

from landmarklib import sample
from landmarklib.sample import make_sample, plan_sample, upright_image

SMALL = dict(n_landmarks=6, n_train=60, n_test=12)
TINY = dict(n_landmarks=4, n_train=16, n_test=4)
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except sample.json (which holds timings)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "sample.json"
    }


def _image_digests(folder: Path) -> set[str]:
    """sha256 of the files under ``folder/images`` that decode as images."""
    digests = set()
    for path in (folder / "images").iterdir():
        try:
            with Image.open(path) as im:
                im.load()
        except OSError:
            continue
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return digests


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    a = np.asarray(a.convert("RGB").resize((64, 64)), dtype=np.float32)
    b = np.asarray(b.convert("RGB").resize((64, 64)), dtype=np.float32)
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small sample (written in a single process) and its plan."""
    out = tmp_path_factory.mktemp("sample") / "a"
    summary = make_sample(out, seed=3, progress=False, workers=1, **SMALL)
    return out, summary, plan_sample(seed=3, **SMALL)


# ----------------------------------------------------------------------------- the plan


def test_default_plan_is_long_tailed():
    plan = plan_sample()
    counts = list(plan.train_counts().values())
    assert len(plan.landmarks) == 30 and len(plan.train) == 1500 and len(plan.test) == 150
    assert counts == sorted(counts, reverse=True)
    assert counts[0] >= 200  # a head landmark with hundreds of images
    assert 3 <= counts.count(1) <= 5  # a handful with a single image
    assert counts[0] >= 10 * counts[len(counts) // 2]  # head >> middle
    assert sum(c <= 10 for c in counts) >= 5  # a real tail, not a uniform spread


def test_default_plan_ids_and_test_split():
    plan = plan_sample()
    ids = [lm.landmark_id for lm in plan.landmarks]
    assert len(set(ids)) == 30 and all(1 <= i <= 15000 for i in ids)
    assert max(ids) - min(ids) > 30 * 10  # spread out, not 1..30
    image_ids = [r.id for r in plan.train + plan.test]
    assert len(set(image_ids)) == len(image_ids) and all(HEX16.match(i) for i in image_ids)
    counts = plan.train_counts()
    non_landmark = [r for r in plan.test if r.landmark_id is None]
    assert 5 <= len(non_landmark) <= 10
    tested = [r.landmark_id for r in plan.test if r.landmark_id is not None]
    assert all(counts[lm] >= sample.TEST_MIN_TRAIN_IMAGES for lm in tested)
    assert len(set(tested)) >= 15  # spread over the landmarks that have enough images
    assert len({lm.name for lm in plan.landmarks}) == 30


def test_default_plan_broken_rows_and_formats():
    plan = plan_sample()
    broken_train = [r for r in plan.train if r.broken]
    broken_test = [r for r in plan.test if r.broken]
    assert 6 <= len(broken_train) <= 10 and 1 <= len(broken_test) <= 2
    assert {r.kind for r in broken_train} == set(sample.BROKEN_KINDS)
    assert all(r.landmark_id is not None for r in broken_test)
    # one singleton landmark loses its only image: an empty folder after fetching
    singletons = {lm for lm, c in plan.train_counts().items() if c == 1}
    assert any(r.landmark_id in singletons for r in broken_train)
    kinds = [r.kind for r in plan.train]
    assert kinds.count("jpeg") > len(kinds) / 2
    assert all(kinds.count(k) >= 10 for k in sample.FORMAT_SHARES)


def test_plan_is_deterministic_and_depends_on_seed():
    assert plan_sample(seed=5, **SMALL) == plan_sample(seed=5, **SMALL)
    other = plan_sample(seed=6, **SMALL)
    assert [r.id for r in other.train] != [r.id for r in plan_sample(seed=5, **SMALL).train]


@pytest.mark.parametrize("sizes", [dict(n_landmarks=1), dict(n_landmarks=10, n_train=20), dict(n_test=1)])
def test_plan_rejects_impossible_sizes(sizes):
    with pytest.raises(ValueError, match="must be at least"):
        plan_sample(**{**SMALL, **sizes})


# ----------------------------------------------------------------------------- the files


def test_csv_layout(built):
    out, summary, plan = built
    with open(out / "train.csv", encoding="utf-8") as f:
        assert f.readline() == '"id","url","landmark_id"\n'  # quoted like Kaggle's files
    train, test = _rows(out / "train.csv"), _rows(out / "test.csv")
    solution, landmarks = _rows(out / "test_solution.csv"), _rows(out / "landmarks.csv")
    assert list(train[0]) == ["id", "url", "landmark_id"] and len(train) == 60
    assert list(test[0]) == ["id", "url"] and len(test) == 12
    assert list(solution[0]) == ["id", "landmark_id"] and [r["id"] for r in solution] == [r["id"] for r in test]
    assert list(landmarks[0])[:2] == ["landmark_id", "name"] and len(landmarks) == 6
    known = {r["landmark_id"] for r in landmarks}
    assert {r["landmark_id"] for r in train} == known
    assert any(r["landmark_id"] == "" for r in solution)
    assert {r["landmark_id"] for r in solution} - {""} <= known
    for row in train + test:
        assert HEX16.match(row["id"]) and row["url"].startswith("images/")
    assert summary["train_rows"] == 60 and summary["test_rows"] == 12 and summary["n_landmarks"] == 6
    assert sum(p["train"] for p in summary["per_landmark"]) == 60
    assert summary["bytes"] == sum(p.stat().st_size for p in (out / "images").iterdir())


def test_images_have_real_world_sizes(built):
    out, _, plan = built
    for row in plan.train + plan.test:
        if row.broken:
            continue
        with Image.open(out / row.url) as im:
            longest = max(ImageOps.exif_transpose(im).size)
        assert 320 <= longest <= 1600, row


def _first(plan, kind):
    return next(r for r in plan.train if r.kind == kind)


def test_formats_and_modes(built):
    out, _, plan = built
    modes = {}
    for kind in ("jpeg", "png", "png_rgba", "gif", "gray", "cmyk"):
        with Image.open(out / _first(plan, kind).url) as im:
            modes[kind] = (im.format, im.mode, getattr(im, "n_frames", 1))
    assert modes["jpeg"] == ("JPEG", "RGB", 1)
    assert modes["png"] == ("PNG", "RGB", 1)
    assert modes["png_rgba"] == ("PNG", "RGBA", 1)
    assert modes["gif"][0] == "GIF" and modes["gif"][2] >= 3
    assert modes["gray"] == ("JPEG", "L", 1)
    assert modes["cmyk"] == ("JPEG", "CMYK", 1)


def test_gif_first_frame_is_the_photo(built):
    out, _, plan = built
    row = _first(plan, "gif")
    upright = upright_image(plan, row)
    with Image.open(out / row.url) as im:
        first = im.convert("RGB")
        im.seek(im.n_frames - 1)
        last = im.convert("RGB")
    assert _mean_abs_diff(first, upright) < 8
    assert _mean_abs_diff(last, upright) > 20


def test_exif_orientation_needs_transpose(built):
    out, _, plan = built
    row = _first(plan, "exif")
    upright = upright_image(plan, row)
    with Image.open(out / row.url) as im:
        assert im.getexif().get(0x0112) in (3, 6, 8)
        raw = im.convert("RGB")
        fixed = ImageOps.exif_transpose(im).convert("RGB")
    assert fixed.size == upright.size
    assert _mean_abs_diff(fixed, upright) < 8
    assert _mean_abs_diff(raw, upright) > _mean_abs_diff(fixed, upright) + 10


def test_broken_rows_fail_to_decode(built):
    out, summary, plan = built
    broken = [r for r in plan.train + plan.test if r.broken]
    reported = {(b["split"], b["id"], b["reason"]) for b in summary["broken"]}
    assert reported == {(r.split, r.id, r.kind) for r in broken}
    for row in broken:
        path = out / row.url
        if row.kind == "missing":
            assert not path.exists()
            continue
        with pytest.raises(OSError):  # UnidentifiedImageError and truncation are OSErrors
            with Image.open(path) as im:
                im.load()
    for row in plan.train + plan.test:
        if not row.broken:
            with Image.open(out / row.url) as im:
                im.load()


# ----------------------------------------------------------------------------- determinism, reuse


def test_same_seed_same_bytes_any_worker_count(built, tmp_path):
    out, _, _ = built
    again = tmp_path / "b"
    make_sample(again, seed=3, progress=False, workers=2, **SMALL)  # 72 files: drawn by a pool
    assert _digest(again) == _digest(out)


def test_other_seed_other_data(built, tmp_path):
    out, _, _ = built
    other = tmp_path / "c"
    make_sample(other, seed=4, progress=False, workers=1, **SMALL)
    assert (other / "train.csv").read_bytes() != (out / "train.csv").read_bytes()
    assert not _image_digests(other) & _image_digests(out)


def test_reuse_and_rewrite(tmp_path):
    out = tmp_path / "s"
    first = make_sample(out, seed=1, progress=False, workers=1, **TINY)
    stamp = (out / "train.csv").stat().st_mtime_ns
    again = make_sample(out, seed=1, progress=False, workers=1, **TINY)
    assert again["reused"] is True and first["reused"] is False
    assert (out / "train.csv").stat().st_mtime_ns == stamp
    old_files = set(p.name for p in (out / "images").iterdir())

    (out / "sample.json").unlink()  # as after a killed run: redone
    assert make_sample(out, seed=1, progress=False, workers=1, **TINY)["reused"] is False
    next((out / "images").iterdir()).unlink()  # an image lost: redone
    assert make_sample(out, seed=1, progress=False, workers=1, **TINY)["reused"] is False
    assert set(p.name for p in (out / "images").iterdir()) == old_files

    changed = make_sample(out, seed=2, progress=False, workers=1, **TINY)
    assert changed["reused"] is False and changed["params"]["seed"] == 2
    new_files = set(p.name for p in (out / "images").iterdir())
    assert not old_files & new_files  # files of the earlier sample are gone
    assert len(new_files) == changed["files"]


def test_killed_run_leaves_no_catalog(tmp_path, monkeypatch):
    out = tmp_path / "k"
    make_sample(out, seed=1, progress=False, workers=1, **TINY)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sample, "_write_images", killed)
    with pytest.raises(KeyboardInterrupt):
        make_sample(out, seed=2, progress=False, workers=1, **TINY)
    assert not (out / "train.csv").exists() and not (out / "sample.json").exists()
    monkeypatch.undo()
    summary = make_sample(out, seed=2, progress=False, workers=1, **TINY)
    assert summary["reused"] is False and (out / "train.csv").is_file()


def test_file_uris(tmp_path):
    out = tmp_path / "u"
    make_sample(out, seed=0, progress=False, workers=1, file_uris=True, **TINY)
    rows = _rows(out / "train.csv")
    assert all(r["url"].startswith("file://") for r in rows)
    present = [Path(unquote(urlparse(r["url"]).path)).is_file() for r in rows]
    assert all(present[i] or row.kind == "missing" for i, row in enumerate(plan_sample(seed=0, **TINY).train))
    assert any(present)


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landmarks")
    sample.add_cli(parser.add_subparsers(dest="command"))
    return parser


def test_cli_sample(tmp_path, capsys):
    args = _parser().parse_args(
        [
            "sample",
            str(tmp_path / "cli"),
            "--landmarks",
            "4",
            "--train",
            "16",
            "--test",
            "4",
            "--seed",
            "3",
            "--quiet",
            "--workers",
            "1",
        ]
    )
    assert args.func(args) == 0
    assert "16 train rows" in capsys.readouterr().out
    assert len(_rows(tmp_path / "cli" / "train.csv")) == 16
    assert args.func(args) == 0
    assert "already complete" in capsys.readouterr().out
    bad = _parser().parse_args(["sample", str(tmp_path / "bad"), "--landmarks", "1", "--quiet"])
    assert bad.func(bad) == 2
    assert "n_landmarks" in capsys.readouterr().err


def test_landmarks_command(tmp_path, capsys):
    from landmarklib import cli

    rc = cli.main(
        [
            "sample",
            str(tmp_path / "main"),
            "--landmarks",
            "4",
            "--train",
            "16",
            "--test",
            "4",
            "--quiet",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    assert "16 train rows (4 landmarks" in capsys.readouterr().out
    assert (tmp_path / "main" / "sample.json").is_file()
    # the same files, byte for byte, as make_sample with the command's arguments (seed 0 by default)
    make_sample(tmp_path / "direct", seed=0, progress=False, workers=1, **TINY)
    written = _digest(tmp_path / "main")
    assert written == _digest(tmp_path / "direct")
    assert {"train.csv", "test.csv", "test_solution.csv", "landmarks.csv"} <= set(written)
    assert len(_rows(tmp_path / "main" / "train.csv")) == 16
