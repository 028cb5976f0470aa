"""The fetch manifest: ``DIR/manifest.csv``, one row per catalog row, and its journal.

The one reader and writer of the file that ``landmarks fetch`` leaves next to its images
and that training, prediction and the figures read:

    id,url,landmark_id,status,error,bytes,width,height,format,seconds

``status`` is ``ok`` or ``failed``; ``error`` holds the reason of a failure (``HTTP 404``,
``host unreachable (DNS lookup failed)``, ``no url``, ...; ``reason_of`` gives its kind);
bytes, width, height and format describe the source image; every value is text. An image
lives at ``DIR/<landmark_id>/<id>.jpg`` (``DIR/<id>.jpg`` without a landmark id).

While a fetch runs, rows are appended to ``DIR/manifest.journal.csv`` (``seq`` first: the
row's place in the catalog) in completion order; ``Journal.finish`` writes ``manifest.csv``
in catalog order, and ``fold`` merges the journal a killed run left into ``manifest.csv``.

Readers: ``read`` (a frame of strings), ``one_per_id``, ``image_path``, and for a reader
who found no images, ``describe_failures`` / ``no_images_reason``.
"""

from __future__ import annotations

import collections
import csv
import heapq
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

NAME = "manifest.csv"
JOURNAL_NAME = "manifest.journal.csv"
COLUMNS = ("id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds")
REQUIRED = ("id", "landmark_id", "status")  # what a reader needs; other columns default to ""
_INTEGER = r"\d{1,18}"
_TEMP_FILE = re.compile(r"^\..+\.\d+-\d+\.tmp$")


def path_of(where: str | os.PathLike) -> Path:
    """``where/manifest.csv`` for a folder, ``where`` itself for a file."""
    where = Path(where)
    return where / NAME if where.is_dir() else where


def image_path(out_dir: str | os.PathLike, image_id: str, landmark_id: str | None) -> Path:
    """Where a row's image lives: ``out_dir/<landmark_id>/<id>.jpg``, or ``out_dir/<id>.jpg`` without a label."""
    if landmark_id:
        return Path(out_dir) / str(landmark_id) / f"{image_id}.jpg"
    return Path(out_dir) / f"{image_id}.jpg"


def reason_of(error: str) -> str:
    """The kind of a failure, for counting: ``"decompression bomb (1e10 pixels)"`` -> ``"decompression bomb"``,
    ``"HTTP 404: Not Found"`` -> ``"HTTP 404"``."""
    return re.split(r" \(| '|: ", error, maxsplit=1)[0]


def empty() -> pd.DataFrame:
    """A manifest with no rows."""
    import pandas as pd  # pandas when a frame is read: fetch's worker processes import this module and never do

    return pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})


def _error(path: Path, line: int | None, column: str | None, problem: str) -> Exception:
    from .catalog import CatalogError  # catalog imports pandas: see above

    return CatalogError(path, line, column, problem)


def read(where: str | os.PathLike, only_ok: bool = False, required: Iterable[str] = REQUIRED) -> pd.DataFrame:
    """A manifest as a frame of stripped strings with every column of ``COLUMNS``, in file order.

    Args:
        where: the fetched folder or the manifest file.
        only_ok: keep only the ``ok`` rows.
        required: columns the file must have (the others are filled with ``""``).

    Raises:
        catalog.CatalogError: unreadable, a required column missing, or an ``ok`` row whose
            landmark_id is not an integer (naming file, line and column).
    """
    import numpy as np  # pandas when a frame is read: fetch's worker processes import this module and never do
    import pandas as pd  # pandas when a frame is read: fetch's worker processes import this module and never do

    path = path_of(where)
    try:
        chunks = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", chunksize=200_000
        )
        parts = []
        for chunk in chunks:
            chunk.columns = [name.strip() for name in chunk.columns]
            missing = [name for name in required if name not in chunk.columns]
            if missing:
                found = ", ".join(chunk.columns)
                raise _error(path, 1, missing[0], f"missing column(s) {', '.join(missing)} (found: {found})")
            for name in COLUMNS:
                if name not in chunk.columns:
                    chunk[name] = ""
            parts.append(chunk[list(COLUMNS)])
    except pd.errors.EmptyDataError:
        return empty()
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise _error(path, None, None, f"not a readable manifest ({err})") from err
    if not parts:
        return empty()
    frame = pd.concat(parts, ignore_index=True).astype(object)
    frame = frame.apply(lambda col: col.str.strip())
    ok = frame["status"] == "ok"
    labels = frame["landmark_id"]
    bad = np.flatnonzero((ok & (labels != "") & ~labels.str.fullmatch(_INTEGER)).to_numpy())
    if bad.size:
        raise _error(path, int(bad[0]) + 2, "landmark_id", f"{labels.iat[bad[0]]!r} is not an integer landmark id")
    return frame[ok].reset_index(drop=True) if only_ok else frame


def one_per_id(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per id: its last ``ok`` row, else its last row (a ``duplicate id`` failure never
    hides the row fetched for that id); in file order."""
    import numpy as np  # pandas when a frame is read: fetch's worker processes import this module and never do
    import pandas as pd  # pandas when a frame is read: fetch's worker processes import this module and never do

    if not len(frame):
        return frame
    position = np.arange(len(frame))
    order = np.lexsort((position, (frame["status"] == "ok").to_numpy()))
    last = ~pd.Series(frame["id"].to_numpy()[order]).duplicated(keep="last").to_numpy()
    return frame.iloc[np.sort(order[last])]


def write(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` (its ``COLUMNS``) to ``path`` atomically: a reader sees the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        frame.to_csv(tmp, index=False, columns=list(COLUMNS))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- failures, for readers


def failure_counts(frame: pd.DataFrame) -> collections.Counter:
    """Failed rows per reason (``reason_of``), most frequent first via ``most_common``."""
    errors = frame.loc[frame["status"] != "ok", "error"]
    return collections.Counter(reason_of(e or "failed") for e in errors)


def describe_failures(where: str | os.PathLike, top: int = 3) -> str:
    """One line on what failed in a fetched folder, e.g.
    ``"5000 of 5000 rows failed: host unreachable (5000)"``.

    Args:
        where: the fetched folder (or its manifest file).
        top: how many reasons to name (the others are summed as ``other``).
    """
    path = path_of(where)
    if not path.is_file():
        return f"no {NAME} in {path.parent} (was it fetched?)"
    frame = one_per_id(read(path))
    counts = failure_counts(frame)
    n_failed = sum(counts.values())
    text = f"{n_failed} of {len(frame)} rows failed"
    if counts:
        common = counts.most_common()
        parts = [f"{reason} ({n})" for reason, n in common[:top]]
        rest = sum(n for _, n in common[top:])
        if rest:
            parts.append(f"other ({rest})")
        text += ": " + ", ".join(parts)
    return text


def no_images_reason(where: str | os.PathLike, shown_as: str | None = None) -> str:
    """The line a notebook or the report prints when a fetched folder has no image, e.g.
    ``"no images in data/processed/default/train: 5000 of 5000 rows failed: host unreachable (5000)"``.

    Args:
        where: the fetched folder.
        shown_as: the folder as the reader should see it (default: ``where`` as given).
    """
    shown = shown_as if shown_as is not None else str(where)
    path = path_of(where)
    if not path.is_file():
        return f"no images in {shown}: no {NAME} (run notebook 02 / `landmarks fetch` first)"
    frame = one_per_id(read(path))
    if not len(frame):
        return f"no images in {shown}: the catalog had no rows"
    ok = frame[frame["status"] == "ok"]
    if len(ok):
        present = sum(image_path(path.parent, i, lab).is_file() for i, lab in zip(ok["id"], ok["landmark_id"]))
        if not present:
            return f"no images in {shown}: {len(ok)} rows fetched ok but their files are missing"
    return f"no images in {shown}: {describe_failures(path)}"


# --------------------------------------------------------------------------- the journal of a running fetch


def _journal_rows(path: Path) -> pd.DataFrame:
    """A journal's rows (``seq`` dropped); a line cut short (no ``seconds``) is dropped."""
    frame = read(path, required=COLUMNS)
    return frame[frame["seconds"] != ""]


def remove_temp_files(out_dir: str | os.PathLike) -> int:
    """Delete the temporary files a killed run left (``.<name>.<pid>-<thread>.tmp``); return how many."""
    removed = 0
    for folder, _, files in os.walk(out_dir):
        for name in files:
            if _TEMP_FILE.match(name):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed


def fold(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The ``ok`` rows of earlier runs, the last one per (landmark_id, id).

    An interrupted run's journal is first folded into ``manifest.csv`` (and its temporary
    files removed), so that the manifest always describes every row fetched so far.
    """
    import pandas as pd  # pandas when a frame is read: fetch's worker processes import this module and never do

    out_dir = Path(out_dir)
    manifest, journal = out_dir / NAME, out_dir / JOURNAL_NAME
    if not journal.is_file():
        return read(manifest, only_ok=True, required=COLUMNS) if manifest.is_file() else empty()
    parts = []
    if manifest.is_file():
        parts.append(read(manifest, required=COLUMNS))
    parts.append(_journal_rows(journal))
    rows = pd.concat(parts, ignore_index=True).drop_duplicates(["landmark_id", "id"], keep="last")
    remove_temp_files(out_dir)
    write(rows, manifest)
    journal.unlink()
    return rows[rows["status"] == "ok"].reset_index(drop=True)


class Journal:
    """Append-only record of a running fetch: ``add`` rows as they complete, ``finish`` to write
    ``manifest.csv`` in catalog order.

    Args:
        out_dir: the fetched folder.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / JOURNAL_NAME
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(["seq", *COLUMNS])
        self._file.flush()

    def add(self, rows: Iterable[tuple[int, Mapping[str, str]]]) -> None:
        """Append ``(seq, manifest row)`` pairs and flush them to disk."""
        self._writer.writerows([seq, *(row[c] for c in COLUMNS)] for seq, row in rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def finish(self) -> Path:
        """Close the journal, write ``manifest.csv`` from it in ``seq`` order, remove it; return the manifest's path.

        The journal is in completion order, which differs from catalog order by the rows in
        flight at a time, so the heap holds few rows: memory does not grow with the catalog.
        """
        self.close()
        path = self.out_dir / NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        with open(self.path, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            next(reader)
            writer.writerow(COLUMNS)
            pending: list[tuple[int, list[str]]] = []
            expected = 0
            for fields in reader:
                heapq.heappush(pending, (int(fields[0]), fields[1:]))
                while pending and pending[0][0] == expected:
                    writer.writerow(heapq.heappop(pending)[1])
                    expected += 1
            while pending:
                writer.writerow(heapq.heappop(pending)[1])
        os.replace(tmp, path)
        self.path.unlink()
        return path
