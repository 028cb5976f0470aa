"""Images people already have: GLDv2's TAR shards and Kaggle 2019-2021's folders (``landmarks fetch --images``).

A source is a folder holding either

    TAR shards   ``images_000.tar`` ... (GLDv2: ``train/``, ``index/``, ``test/``), each member
                 ``a/b/c/<id>.jpg``; ``md5.images_000.txt`` beside a shard (GLDv2 publishes them
                 in ``md5sum/``) is checked when present;
    image files  nested ``a/b/c/<id>.<ext>`` (Kaggle 2019-2021) or flat ``<id>.<ext>``.

``locate`` finds each catalog id in the source and gives it a ``url`` the fetch core reads
like any other: ``file://...`` for a file, ``tar://<shard>?offset=<o>&size=<n>#<member>`` for
a TAR member (its bytes read in place, never extracted). An id that is not there, or is in a
shard whose md5 does not match, gets a reason instead (``not in the images``, ``md5 mismatch:
images_012.tar``): the row fails alone with it, as a catalog problem, and the others go on.

Reading a shard's headers (and its md5, when present) is done once per shard and kept in
``<out>/.images-index/`` (keyed by the shard's size and modification time), so a resumed
run does not read 500 GB again. The shards are indexed in parallel threads (``hashlib`` and
file reads release the GIL).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import files
from .core import member_url

INDEX_DIR = ".images-index"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
NOT_FOUND = "not in the images"


class SourceError(ValueError):
    """A source that cannot be used at all (missing, empty, not a folder): ``str`` says why."""


@dataclass(frozen=True)
class ShardIndex:
    """One shard's members: ``members`` (id, offset, size, name), whether its md5 matched
    (None: no md5 file), and whether the shard ends early (truncated)."""

    path: Path
    members: pd.DataFrame
    md5_ok: bool | None
    truncated: bool


def _expected_md5(shard: Path) -> str | None:
    """The md5 published for ``shard`` (``md5.<stem>.txt`` beside it), or None."""
    md5_file = shard.with_name(f"md5.{shard.stem}.txt")
    if not md5_file.is_file():
        return None
    words = md5_file.read_text().split()
    return words[0].lower() if words else ""


def _md5(path: Path, chunk: int = 2**22) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _scan(shard: Path) -> tuple[pd.DataFrame, bool]:
    """The image members of ``shard`` (id, offset, size, name) and whether it is truncated."""
    records, truncated = [], False
    size = shard.stat().st_size
    try:
        with tarfile.open(shard, "r:") as tar:
            for member in tar:
                name = member.name
                suffix = os.path.splitext(name)[1].lower()
                if not member.isfile() or suffix not in IMAGE_SUFFIXES:
                    continue
                if member.offset_data + member.size > size:
                    truncated = True
                    break
                records.append((Path(name).stem, member.offset_data, member.size, name))
    except (tarfile.ReadError, EOFError):  # a header cut short: the members before it stand
        truncated = True
    frame = pd.DataFrame.from_records(records, columns=["id", "offset", "size", "name"])
    return frame.astype({"id": str, "name": str}), truncated


def index_shard(shard: Path, index_dir: Path | None = None) -> ShardIndex:
    """``shard``'s members and md5 check, from ``index_dir``'s copy when the shard is unchanged."""
    stat = shard.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": _expected_md5(shard)}
    meta_file = index_dir / f"{shard.name}.json" if index_dir else None
    members_file = index_dir / f"{shard.name}.csv" if index_dir else None
    if meta_file is not None and meta_file.is_file() and members_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("key") == key:
            members = pd.read_csv(members_file, dtype={"id": str, "name": str}, keep_default_na=False)
            return ShardIndex(shard, members, meta["md5_ok"], meta["truncated"])
    members, truncated = _scan(shard)
    md5_ok = None if key["md5"] is None else _md5(shard) == key["md5"]
    if index_dir is not None:
        files.write_csv(members, members_file)
        files.write_json(meta_file, {"key": key, "md5_ok": md5_ok, "truncated": truncated})
    return ShardIndex(shard, members, md5_ok, truncated)


def _folder_files(root: Path) -> dict[str, Path]:
    """id -> file for the image files of ``root``, flat or nested up to three levels (a/b/c/<id>.jpg)."""
    found: dict[str, Path] = {}
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir() and depth < 3:
                    stack.append((Path(entry.path), depth + 1))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                    found.setdefault(os.path.splitext(entry.name)[0], Path(entry.path))
    return found


def shards_of(root: str | os.PathLike) -> list[Path]:
    """The TAR shards of a source folder (sorted), or [] for a folder of image files."""
    return sorted(p for p in Path(root).glob("*.tar") if p.is_file())


def locate(ids: pd.Series, root: str | os.PathLike, index_dir: str | os.PathLike | None = None, threads: int = 8):
    """Where each id's image is in the source ``root``.

    Args:
        ids: the catalog's image ids.
        root: a folder of TAR shards or of image files (see the module docstring).
        index_dir: where shard indexes are kept between runs (None: not kept).
        threads: shards indexed at once.

    Returns:
        ``(urls, reasons)``: two Series aligned with ``ids``; a row has a url, or ``""`` and its reason.

    Raises:
        SourceError: ``root`` is not a folder, or holds no shard and no image.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise SourceError(f"{root}: the images source must be a folder of TAR shards or of image files")
    urls = pd.Series("", index=ids.index, dtype=object)
    reasons = pd.Series(NOT_FOUND, index=ids.index, dtype=object)
    shards = shards_of(root)
    if not shards:
        found = _folder_files(root)
        if not found:
            raise SourceError(f"{root}: no *.tar shard and no image file (a/b/c/<id>.jpg or <id>.jpg) in it")
        paths = ids.map(found)
        hit = paths.notna()
        urls[hit] = paths[hit].map(lambda p: p.as_uri())
        reasons[hit] = ""
        return urls, reasons
    index_path = Path(index_dir) if index_dir else None
    if index_path is not None:
        index_path.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(shards)))) as pool:
        indexes = list(pool.map(lambda s: index_shard(s, index_path), shards))
    position = pd.Series(range(len(ids)), index=ids.astype(str).to_numpy())
    position = position[~position.index.duplicated()]
    truncated = [ix.path.name for ix in indexes if ix.truncated]
    for ix in indexes:
        members = ix.members[ix.members["id"].isin(position.index)]
        members = members[~members["id"].duplicated()]
        rows = ids.index[position[members["id"]].to_numpy()]
        if ix.md5_ok is False:
            urls[rows], reasons[rows] = "", f"md5 mismatch: {ix.path.name}"
            continue
        fresh = reasons[rows] == NOT_FOUND  # an id in two shards: the first shard's copy
        chosen = members[fresh.to_numpy()]
        rows = rows[fresh.to_numpy()]
        urls[rows] = [member_url(ix.path, o, s, n) for o, s, n in zip(chosen["offset"], chosen["size"], chosen["name"])]
        reasons[rows] = ""
    if truncated:
        missing = reasons == NOT_FOUND
        reasons[missing] = f"{NOT_FOUND} ({', '.join(truncated)} ends early: it may have held it)"
    return urls, reasons
