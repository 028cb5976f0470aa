"""Landmark catalogs: read and validate the Kaggle CSVs, then count, filter and split them.

Files (Kaggle 2018 and Google Landmarks v2 layout; quoted or not, a UTF-8 BOM is
tolerated, extra columns are ignored, blank lines are skipped):

    train.csv           id,url,landmark_id
    test.csv            id,url
    test_solution.csv   id,landmark_id        (empty landmark_id: not a landmark)
                        id,landmarks[,Usage]  (GLDv2: space-separated landmark ids)

Ids are kept as strings (``'00012e'`` stays ``'00012e'``). A file that cannot be read
(no header, a missing column, not text) raises one ``CatalogError`` naming the file,
the line as an editor shows it (header = line 1) and the column. A bad row (no id, an id
that is not a safe file name, a repeated id, no url, a landmark_id that is not an
integer) is a *row problem*: ``read_rows`` returns every row with its problem (``""``
when fine) so that a fetch fails it alone; ``read_catalog(strict=True)`` refuses the file
at its first bad row, ``strict=False`` leaves the bad rows out and counts them.
Validation is vectorised; only the first bad row is located.

The study's operations: ``first_n`` (it used the first 5000 rows), ``frequencies``,
``top_k``, ``single_image_landmarks``, ``long_tail_stats``, ``coverage_curve``, the
improvement it proposed (``filter_min_images``) and a deterministic
``stratified_split`` for validation.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

TRAIN_COLUMNS = ("id", "url", "landmark_id")
TEST_COLUMNS = ("id", "url")
ROW_PROBLEMS = ("no id", "unsafe id", "duplicate id", "no url", "bad landmark_id")
_INTEGER = r"\d{1,18}"
_CHUNK_ROWS = 20_000  # rows parsed at a time
_NO_URL = ("", "None", "none", "nan", "NaN", "null", "NULL")  # "None": how a missing url is often written
_UNSAFE_ID = r"^\.{1,2}$|[/\\\x00-\x1f]"  # ".", "..", a path or a control character: not a file name


class CatalogError(ValueError):
    """A catalog CSV that cannot be used, with where the problem is.

    Attributes:
        path: the file.
        line: 1-based line in the file (header = line 1), or None.
        column: the column name, or None.
        problem: what is wrong there.
    """

    def __init__(self, path: str | os.PathLike, line: int | None, column: str | None, problem: str):
        self.path = str(path)
        self.line = line
        self.column = column
        self.problem = problem
        where = [self.path]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {problem}")


# --------------------------------------------------------------------------- reading


def _header(path: Path) -> list[str]:
    """Column names of the first line (BOM and surrounding spaces removed)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            names = next(csv.reader(f), None)
    except UnicodeDecodeError as err:
        line, problem = _undecodable_line(path)
        raise CatalogError(path, line, None, problem) from err
    if not names:
        raise CatalogError(path, 1, None, "no header line (expected column names such as id,url,landmark_id)")
    return [name.strip() for name in names]


def _undecodable_line(path: Path) -> tuple[int, str]:
    """The first line that is not UTF-8 and why."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at character {err.start + 1})"
    return 1, "not UTF-8 text"


def _line_of(path: Path, row: int) -> int:
    """1-based line where data row ``row`` (0-based, blank lines counted) starts."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        start = reader.line_num + 1
        for index, _ in enumerate(reader):
            if index == row:
                return start
            start = reader.line_num + 1
    return start


def _read_text_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    """The named columns as stripped strings, one row per data line (blank lines included).

    Read in chunks, each stripped before the next is parsed: the parser's buffers and the
    unstripped copy stay the size of a chunk, so memory grows with the catalog by little more
    than its strings (benchmarks/catalog_scale.py).
    """
    parts = []
    try:
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            chunksize=_CHUNK_ROWS,
        )
        for chunk in reader:
            chunk.columns = [name.strip() for name in chunk.columns]
            chunk = chunk[columns].apply(lambda col: col.str.strip())
            if "landmark_id" in chunk:  # one string object per landmark, not one per row
                codes, uniques = pd.factorize(chunk["landmark_id"])
                chunk["landmark_id"] = pd.Series(
                    uniques.take(codes), index=chunk.index, dtype=chunk["landmark_id"].dtype
                )
            parts.append(chunk)
    except pd.errors.ParserError as err:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if match:
            expected, line, saw = match.groups()
            raise CatalogError(
                path, int(line), None, f"{saw} fields where the header has {expected} (an unquoted comma?)"
            ) from err
        raise CatalogError(path, None, None, f"not a readable CSV file ({err})") from err
    except UnicodeDecodeError as err:
        line, problem = _undecodable_line(path)
        raise CatalogError(path, line, None, problem) from err
    if not parts:
        return pd.DataFrame({name: pd.Series([], dtype=str) for name in columns})
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _check_header(path: Path, names: list[str], required: tuple[str, ...]) -> None:
    """Raise a CatalogError on line 1 when a required column is missing."""
    missing = [name for name in required if name not in names]
    if missing:
        raise CatalogError(
            path,
            1,
            missing[0],
            f"missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'nothing'})",
        )


def _raise_first(path: Path, problems: list[tuple[str, pd.Series, object]]) -> None:
    """Raise a CatalogError for the earliest row flagged by any check.

    Args:
        path: the file, for the message.
        problems: (column, boolean mask over the rows as read, blank lines included,
            function(row position) -> message).
    """
    first = None
    for column, mask, describe in problems:
        hits = np.flatnonzero(mask.to_numpy())
        if hits.size and (first is None or hits[0] < first[0]):
            first = (int(hits[0]), column, describe)
    if first is not None:
        row, column, describe = first
        raise CatalogError(path, _line_of(path, row), column, describe(row))


def _id_problems(path: Path, frame: pd.DataFrame, filled: pd.Series) -> list:
    """Checks for empty and conflicting duplicate ids among the non-blank rows (see ``_raise_first``).

    A row repeating an earlier row exactly (real catalogs have some) is not a problem:
    ``read_catalog`` drops it. A repeated id with another url or label is.
    """
    ids = frame["id"]
    duplicated = ids.duplicated() & ~frame.duplicated() & filled & (ids != "")

    def duplicate(row: int) -> str:
        first = int(np.flatnonzero((ids == ids.iat[row]).to_numpy())[0])
        return f"duplicate id {ids.iat[row]!r} (first on line {_line_of(path, first)})"

    return [
        ("id", filled & (ids == ""), lambda row: "empty id"),
        ("id", duplicated, duplicate),
    ]


def _integer_problem(values: pd.Series, column: str, mask: pd.Series) -> tuple:
    """A check flagging ``mask`` rows of ``values`` as bad landmark ids (see ``_raise_first``)."""

    def describe(row: int) -> str:
        value = values.iat[row]
        if value == "":
            return f"empty {column}"
        if re.fullmatch(r"-?\d+", value):
            return f"{value!r} is out of range (landmark ids are 0 .. 10^18)"
        return f"{value!r} is not an integer"

    return (column, mask, describe)


def _read_table(path: str | os.PathLike, require_labels: bool) -> tuple[Path, pd.DataFrame]:
    """The catalog's columns as stripped text, one row per data line (blank lines included)."""
    path = Path(path)
    try:
        names = _header(path)
    except OSError as exc:
        raise CatalogError(path, None, None, f"cannot read ({exc.strerror or exc})") from exc
    required = TRAIN_COLUMNS if require_labels else TEST_COLUMNS
    _check_header(path, names, required)
    wanted = [name for name in TRAIN_COLUMNS if name in names]
    return path, _read_text_columns(path, wanted)


def row_problems(frame: pd.DataFrame, require_url: bool = True) -> pd.Series:
    """What is wrong with each catalog row, ``""`` when nothing: ``no id``, ``unsafe id '<id>'``,
    ``duplicate id '<id>'`` (every occurrence after the first), ``no url``, ``bad landmark_id '<value>'``
    (the first that applies, in this order).

    Args:
        frame: text columns ``id``, ``url`` (with ``require_url``) and optionally ``landmark_id``
            (blank rows and exact repeats already dropped).
        require_url: whether a row needs a url (not when its image comes from a source, ``--images``).
    """
    ids = frame["id"]
    problem = pd.Series("", index=frame.index, dtype=object)

    def mark(mask: pd.Series, text) -> None:
        if mask.any():
            problem[mask] = text if isinstance(text, str) else text(mask)

    if "landmark_id" in frame:
        labels = frame["landmark_id"]
        # 1-18 ASCII digits (as _INTEGER), without a regex per row: 1.2M rows in a fraction of a second
        integer = labels.str.isdigit() & labels.str.isascii() & (labels.str.len() <= 18)
        mark(~integer.fillna(False).astype(bool), lambda m: "bad landmark_id " + labels[m].map(repr))
    if require_url:
        mark(frame["url"].isin(_NO_URL), "no url")
    mark(ids.duplicated() & (ids != ""), lambda m: "duplicate id " + ids[m].map(repr))
    maybe_unsafe = ~ids.str.isalnum().fillna(False).astype(bool)  # letters and digits only: a safe name
    unsafe = pd.Series(False, index=frame.index)
    unsafe[maybe_unsafe] = ids[maybe_unsafe].str.contains(_UNSAFE_ID, regex=True)
    mark(unsafe, lambda m: "unsafe id " + ids[m].map(repr))
    mark(ids == "", "no id")
    return problem


def read_rows(path: str | os.PathLike, require_labels: bool = True, require_url: bool = True) -> pd.DataFrame:
    """Every row of a catalog with its problem, for a fetch that fails bad rows alone.

    Args:
        path: the CSV file.
        require_labels: whether ``landmark_id`` must be present (it is read when present).
        require_url: whether the rows need urls; without, every form of ``IMAGE_CATALOG_FORMS`` is
            read (``read_image_rows``: the images come from a source, ``train_images``/``--images``).

    Returns:
        DataFrame of text columns ``id``, ``url``, ``landmark_id`` (when present) and
        ``problem`` (see ``row_problems``; ``""`` for a good row), in file order; blank lines
        and rows repeating an earlier row exactly dropped (their count in
        ``attrs["repeated_rows_dropped"]``).

    Raises:
        CatalogError: a file that cannot be used at all: unreadable, not UTF-8 text, no
            header, a missing column, a line with too many fields.
    """
    if not require_url:
        frame = read_image_rows(path)
        if require_labels and "landmark_id" not in frame:
            raise CatalogError(Path(path), 1, None, "a landmark_id column expected (this catalog lists only ids)")
        frame["problem"] = row_problems(frame, require_url=False)
        return frame
    path, frame = _read_table(path, require_labels)
    filled = (frame != "").any(axis=1)
    shared_id = frame["id"].duplicated(keep=False)  # only these rows can repeat an earlier row exactly
    repeated = pd.Series(False, index=frame.index)
    repeated[shared_id] = frame[shared_id].duplicated()
    repeated &= filled
    frame = frame[filled & ~repeated].reset_index(drop=True)
    frame["problem"] = row_problems(frame)
    frame.attrs["repeated_rows_dropped"] = int(repeated.sum())
    return frame


IMAGE_CATALOG_FORMS = ("id,landmark_id", "id,url,landmark_id", "landmark_id,images", "id")
"""The catalogs ``landmarks fetch --images`` reads, told apart by their header (a url column is ignored)."""


def read_image_rows(path: str | os.PathLike) -> pd.DataFrame:
    """The rows of a catalog whose images come from a source (``--images``), not from URLs.

    Reads the forms of ``IMAGE_CATALOG_FORMS`` by their header: ``id,landmark_id`` (Kaggle
    2019-2021's ``train.csv``), ``id,url,landmark_id`` (the url is not used), ``landmark_id,images``
    (GLDv2's ``train_clean.csv``: the ids of a landmark, space-separated) and ``id`` (a test set).

    Returns:
        DataFrame of text columns ``id`` and (labelled forms) ``landmark_id``, in file order,
        blank lines and exact repeats dropped (``attrs["repeated_rows_dropped"]``).

    Raises:
        CatalogError: unreadable, or a header of none of these forms (naming them).
    """
    path = Path(path)
    try:
        names = _header(path)
    except OSError as exc:
        raise CatalogError(path, None, None, f"cannot read ({exc.strerror or exc})") from exc
    if "id" in names:
        frame = _read_text_columns(path, ["id", *(["landmark_id"] if "landmark_id" in names else [])])
    elif "landmark_id" in names and "images" in names:
        clean = _read_text_columns(path, ["landmark_id", "images"])
        ids = clean["images"].str.split()
        frame = pd.DataFrame(
            {"id": ids.explode().fillna(""), "landmark_id": clean["landmark_id"].reindex(ids.explode().index)}
        )
        frame = frame[frame["id"] != ""].reset_index(drop=True)
    else:
        raise CatalogError(
            path, 1, None, f"a header of {' or '.join(IMAGE_CATALOG_FORMS)} expected (found: {', '.join(names)})"
        )
    filled = (frame != "").any(axis=1)
    repeated = frame.duplicated() & filled
    frame = frame[filled & ~repeated].reset_index(drop=True)
    frame.attrs["repeated_rows_dropped"] = int(repeated.sum())
    return frame


def good_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``read_rows`` without a problem, as ``read_catalog`` returns them (``landmark_id``
    int64), with ``attrs["bad_rows"]``, the number left out."""
    good = rows["problem"] == ""
    frame = rows.loc[good, [c for c in TRAIN_COLUMNS if c in rows]].reset_index(drop=True)
    if "landmark_id" in frame:
        frame["landmark_id"] = frame["landmark_id"].astype("int64")
    frame.attrs["repeated_rows_dropped"] = rows.attrs.get("repeated_rows_dropped", 0)
    frame.attrs["bad_rows"] = int((~good).sum())
    return frame


def bad_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``read_rows`` that have a problem, with a ``reason`` column (the problem's kind)."""
    bad = rows[rows["problem"] != ""]
    return bad.assign(reason=bad["problem"].str.replace(r" '.*$", "", regex=True))


def read_catalog(path: str | os.PathLike, require_labels: bool = True, strict: bool = True) -> pd.DataFrame:
    """Read and validate a train.csv (or, with ``require_labels=False``, a test.csv).

    Args:
        path: the CSV file.
        require_labels: whether ``landmark_id`` must be present. Without it, a
            ``landmark_id`` column is still read and validated when the file has one.
        strict: refuse the file at its first bad row (see ``row_problems``); else leave the
            bad rows out, their count in ``attrs["bad_rows"]`` (``read_rows`` tells which).

    Returns:
        DataFrame with columns ``id`` (str), ``url`` (str) and, when present,
        ``landmark_id`` (int64), in file order; other columns, blank lines and rows
        repeating an earlier row exactly dropped (their count in
        ``frame.attrs["repeated_rows_dropped"]``).

    Raises:
        CatalogError: a file that cannot be used (as ``read_rows``); with ``strict``, also an
            empty id or url, an id that is not a safe file name or is repeated with another url or
            label, or a landmark_id that is not an integer; the message names file, line and column.
    """
    if not strict:
        return good_rows(read_rows(path, require_labels))
    path, frame = _read_table(path, require_labels)

    filled = (frame != "").any(axis=1)
    problems = _id_problems(path, frame, filled)
    unsafe = filled & frame["id"].str.contains(_UNSAFE_ID, regex=True)
    problems.append(("id", unsafe, lambda row: f"unsafe id {frame['id'].iat[row]!r} (not a file name)"))
    problems.append(("url", filled & frame["url"].isin(_NO_URL), lambda row: "empty url"))
    if "landmark_id" in frame:
        labels = frame["landmark_id"]
        bad = filled & ~labels.str.fullmatch(_INTEGER)
        problems.append(_integer_problem(labels, "landmark_id", bad))
    _raise_first(path, problems)

    repeated = filled & frame.duplicated()
    frame = frame[filled & ~repeated].reset_index(drop=True)
    if "landmark_id" in frame:
        frame["landmark_id"] = frame["landmark_id"].astype("int64")
    frame.attrs["repeated_rows_dropped"] = int(repeated.sum())
    frame.attrs["bad_rows"] = 0
    return frame


def read_solution(path: str | os.PathLike) -> pd.DataFrame:
    """Read the ground truth of a test set.

    Accepts ``id,landmark_id`` (Kaggle 2018 layout; empty landmark_id = not a
    landmark) and ``id,landmarks[,Usage]`` (Kaggle 2019-2021 and GLDv2's
    ``recognition_solution_v2.1.csv``; space-separated landmark ids, empty = not a
    landmark; ``Usage`` is ``Public``, ``Private`` or ``Ignored``). Other columns are ignored.

    Args:
        path: the CSV file.

    Returns:
        DataFrame with ``id`` (str), ``landmark_id`` (Int64: the first true landmark,
        <NA> for a non-landmark image), ``landmarks`` (list of int: every true
        landmark, empty for a non-landmark image) and ``usage`` (one of ``USAGES``,
        ``""`` when the file has no Usage column).

    Raises:
        CatalogError: as ``read_catalog``, naming file, line and column.
    """
    path = Path(path)
    names = _header(path)
    _check_header(path, names, ("id",))
    column = "landmark_id" if "landmark_id" in names else "landmarks"
    if column not in names:
        raise CatalogError(
            path, 1, "landmark_id", f"missing column landmark_id (or landmarks) (found: {', '.join(names)})"
        )
    with_usage = "Usage" in names
    frame = _read_text_columns(path, ["id", column, *(["Usage"] if with_usage else [])])

    values = frame[column]
    filled = (frame != "").any(axis=1)
    pattern = _INTEGER if column == "landmark_id" else rf"{_INTEGER}(\s+{_INTEGER})*"
    problems = _id_problems(path, frame, filled)
    problems.append(_integer_problem(values, column, filled & (values != "") & ~values.str.fullmatch(pattern)))
    if with_usage:
        usage = frame["Usage"]
        problems.append(
            ("Usage", filled & ~usage.isin(USAGES), lambda row: f"{usage.iat[row]!r} is not one of {', '.join(USAGES)}")
        )
    _raise_first(path, problems)

    frame = frame[filled & ~frame.duplicated()].reset_index(drop=True)
    landmarks = frame[column].str.split().map(lambda ids: [int(v) for v in ids])
    first = pd.array([ids[0] if ids else pd.NA for ids in landmarks], dtype="Int64")
    usage = frame["Usage"] if with_usage else pd.Series("", index=frame.index, dtype=object)
    return pd.DataFrame({"id": frame["id"], "landmark_id": first, "landmarks": landmarks, "usage": usage})


USAGES = ("Public", "Private", "Ignored")
"""A Kaggle solution's ``Usage``: the public and the private leaderboard's images, and images scored by neither."""
SUBMISSION_COLUMNS = ("id", "landmarks")
"""A Kaggle recognition submission: ``landmarks`` holds ``"<landmark_id> <confidence>"``, or nothing."""


def read_submission(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Kaggle recognition submission (``id,landmarks``; written by ``predict.core.write_submission``).

    Args:
        path: the CSV file.

    Returns:
        DataFrame with ``id`` (str), ``landmark_id`` (Int64, <NA> where the image is not
        answered) and ``confidence`` (float, NaN where not answered), in file order.

    Raises:
        CatalogError: a missing column, an id given twice (both lines named), or a
            ``landmarks`` cell that is not one landmark id and one finite confidence.
    """
    path = Path(path)
    try:
        names = _header(path)
    except OSError as exc:
        raise CatalogError(path, None, None, f"cannot read ({exc.strerror or exc})") from exc
    _check_header(path, names, SUBMISSION_COLUMNS)
    frame = _read_text_columns(path, list(SUBMISSION_COLUMNS))
    filled = (frame != "").any(axis=1)
    ids, cells = frame["id"], frame["landmarks"]
    parts = cells.str.split(expand=True).reindex(columns=range(3))
    confidence = pd.to_numeric(parts[1], errors="coerce")
    malformed = (
        (cells != "")
        & (~parts[0].fillna("").str.fullmatch(_INTEGER) | ~np.isfinite(confidence.fillna(np.nan)) | parts[2].notna())
        & filled
    )
    repeated = ids.duplicated() & filled & (ids != "")

    def twice(row: int) -> str:
        first = int(np.flatnonzero((ids == ids.iat[row]).to_numpy())[0])
        return f"id {ids.iat[row]!r} is given twice (first on line {_line_of(path, first)}): one answer per image"

    _raise_first(
        path,
        [
            ("id", filled & (ids == ""), lambda row: "empty id"),
            ("id", repeated, twice),
            ("landmarks", malformed, lambda row: f"{cells.iat[row]!r} is not '<landmark_id> <confidence>'"),
        ],
    )
    frame, parts, confidence = frame[filled], parts[filled], confidence[filled]
    answered = frame["landmarks"] != ""
    return pd.DataFrame(
        {
            "id": frame["id"].to_numpy(),
            "landmark_id": pd.array([int(v) if ok else pd.NA for v, ok in zip(parts[0], answered)], dtype="Int64"),
            "confidence": np.where(answered, confidence, np.nan).astype(np.float64),
        }
    )


DATA_SOURCE_KINDS = ("sample", "kaggle-2018", "gldv2", "folder", "ids", "other")
_KAGGLE_2018_HOSTS = re.compile(r"(?:^|\.)(?:ggpht\.com|googleusercontent\.com|panoramio\.com|google\.com)$")
_GLDV2_HOSTS = re.compile(r"(?:^|\.)(?:wikimedia\.org|wikipedia\.org)$")


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(2**22):
            digest.update(block)
    return digest.hexdigest()


def data_source(path: str | os.PathLike, frame: pd.DataFrame | None = None, n_rows: int | None = None) -> dict:
    """Which data a catalog is, for the metrics (notebook 01 writes it as ``"data_source"``).

    ``kind`` is ``sample`` (the embedded sample: ``sample.json`` beside the CSV),
    ``kaggle-2018`` (most urls on the 2018 competition's hosts: ggpht, googleusercontent,
    panoramio), ``gldv2`` (most on Wikimedia), ``folder`` (most urls are local paths), ``ids``
    (no url column: the images come from a source, ``train_images``) or ``other``; ``name`` is a
    short human name.

    Args:
        path: the catalog CSV.
        frame: the catalog as read (default: read it, bad rows left out).
        n_rows: rows in the catalog, bad ones included (default: ``len(frame)`` plus
            ``frame.attrs["bad_rows"]``).

    Returns:
        ``{"name", "kind", "path", "rows", "landmarks", "sha256"}`` (sha256 of the file's bytes).
    """
    path = Path(path)
    if frame is None:
        frame = read_catalog(path, require_labels=False, strict=False)
    if n_rows is None:
        n_rows = len(frame) + int(frame.attrs.get("bad_rows", 0))
    urls = frame["url"].head(10_000) if "url" in frame else pd.Series([], dtype=object)
    hosts = urls.str.extract(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]*)", expand=False).fillna("").str.lower()
    local = hosts == ""  # a path, or a file:// URL

    def most(mask: pd.Series) -> bool:
        return len(urls) > 0 and float(mask.mean()) > 0.5

    if (path.parent / "sample.json").is_file():
        kind, name = "sample", "embedded synthetic sample"
    elif most(hosts.str.contains(_KAGGLE_2018_HOSTS)):
        kind, name = "kaggle-2018", "Google Landmark Recognition 2018 (Kaggle)"
    elif most(hosts.str.contains(_GLDV2_HOSTS)):
        kind, name = "gldv2", "Google Landmarks Dataset v2"
    elif most(local):
        kind, name = "folder", path.parent.name
    elif "url" not in frame:
        kind, name = "ids", f"{path.parent.name}/{path.name}"
    else:
        kind, name = "other", path.name
    return {
        "name": name,
        "kind": kind,
        "path": str(path),
        "rows": int(n_rows),
        "landmarks": int(frame["landmark_id"].nunique()) if "landmark_id" in frame else 0,
        "sha256": _sha256(path),
    }


# --------------------------------------------------------------------------- the study's operations


def first_n(df: pd.DataFrame, n: int | None) -> pd.DataFrame:
    """The first ``n`` rows in file order (all rows when ``n`` is None), as the study took 5000.

    Args:
        df: a catalog.
        n: how many rows; must not be negative.
    """
    if n is None:
        return df
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return df.head(n)


def _counts(df: pd.DataFrame) -> np.ndarray:
    """Images per landmark, largest first."""
    return np.sort(df["landmark_id"].value_counts().to_numpy())[::-1]


def frequencies(df: pd.DataFrame) -> pd.DataFrame:
    """Images per landmark: columns ``landmark_id``, ``count``; most frequent first (ties by id).

    Args:
        df: a catalog with ``landmark_id``.
    """
    freq = df["landmark_id"].value_counts().rename_axis("landmark_id").reset_index(name="count")
    freq = freq.sort_values(["count", "landmark_id"], ascending=[False, True], kind="stable")
    return freq.reset_index(drop=True)


def top_k(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` most frequent landmarks (``landmark_id``, ``count``).

    Args:
        df: a catalog with ``landmark_id``.
        k: how many landmarks.
    """
    return frequencies(df).head(k)


def single_image_landmarks(df: pd.DataFrame) -> list[int]:
    """Landmark ids with exactly one image, ascending.

    Args:
        df: a catalog with ``landmark_id``.
    """
    counts = df["landmark_id"].value_counts()
    return sorted(int(v) for v in counts.index[counts.to_numpy() == 1])


def coverage_curve(df: pd.DataFrame) -> pd.DataFrame:
    """How many images the most frequent landmarks hold together.

    Args:
        df: a catalog with ``landmark_id``.

    Returns:
        DataFrame with ``landmarks`` (1 .. number of landmarks), ``images`` (images of
        the ``landmarks`` most frequent landmarks) and ``share`` (of all images).
    """
    cumulative = np.cumsum(_counts(df))
    total = cumulative[-1] if cumulative.size else 0
    return pd.DataFrame(
        {
            "landmarks": np.arange(1, cumulative.size + 1),
            "images": cumulative,
            "share": cumulative / total if total else cumulative.astype(float),
        }
    )


def landmarks_covering(df: pd.DataFrame, share: float) -> int:
    """The fewest landmarks (most frequent first) that hold at least ``share`` of the images.

    Args:
        df: a catalog with ``landmark_id``.
        share: a fraction in (0, 1].
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    cumulative = np.cumsum(_counts(df))
    if not cumulative.size:
        return 0
    target = share * cumulative[-1] * (1 - 1e-12)
    return int(np.searchsorted(cumulative, target, side="left")) + 1


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of images per landmark: 0 = all landmarks equal, towards 1 = a few hold all.

    Args:
        counts: images per landmark.
    """
    x = np.sort(np.asarray(counts, dtype=float))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(2 * np.sum(ranks * x) / (n * x.sum()) - (n + 1) / n)


def long_tail_stats(df: pd.DataFrame) -> dict:
    """How unevenly the images spread over the landmarks.

    Args:
        df: a catalog with ``landmark_id``.

    Returns:
        dict with n_images, n_landmarks, mean/median/max images per landmark,
        single_image_landmarks (how many), share_single_image and share_under_5 (of
        landmarks), gini, landmarks_covering_50pct and landmarks_covering_90pct.
    """
    counts = _counts(df)
    n_landmarks = int(counts.size)
    return {
        "n_images": int(len(df)),
        "n_landmarks": n_landmarks,
        "mean_images_per_landmark": float(counts.mean()) if n_landmarks else None,
        "median_images_per_landmark": float(np.median(counts)) if n_landmarks else None,
        "max_images_per_landmark": int(counts.max()) if n_landmarks else 0,
        "single_image_landmarks": int((counts == 1).sum()),
        "share_single_image": float((counts == 1).mean()) if n_landmarks else None,
        "share_under_5": float((counts < 5).mean()) if n_landmarks else None,
        "gini": gini(counts),
        "landmarks_covering_50pct": landmarks_covering(df, 0.5),
        "landmarks_covering_90pct": landmarks_covering(df, 0.9),
    }


def filter_min_images(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Drop the landmarks with fewer than ``k`` images (the study's proposed improvement).

    Args:
        df: a catalog with ``landmark_id``.
        k: the fewest images a landmark must have to stay.
    """
    sizes = df.groupby("landmark_id")["landmark_id"].transform("size")
    return df[sizes >= k]


def min_images_effect(df: pd.DataFrame, thresholds=range(1, 11)) -> pd.DataFrame:
    """What ``filter_min_images`` keeps for each threshold.

    Args:
        df: a catalog with ``landmark_id``.
        thresholds: the values of ``k`` to try.

    Returns:
        DataFrame with ``min_images``, ``landmarks_kept``, ``images_kept``,
        ``share_landmarks_kept`` and ``share_images_kept``.
    """
    counts = _counts(df)
    ks = np.asarray(list(thresholds), dtype=int)
    keep = counts[None, :] >= ks[:, None]
    landmarks_kept = keep.sum(axis=1)
    images_kept = (keep * counts[None, :]).sum(axis=1)
    return pd.DataFrame(
        {
            "min_images": ks,
            "landmarks_kept": landmarks_kept,
            "images_kept": images_kept,
            "share_landmarks_kept": landmarks_kept / max(counts.size, 1),
            "share_images_kept": images_kept / max(counts.sum(), 1),
        }
    )


def stratified_split(
    df: pd.DataFrame, val_fraction: float = 0.2, seed: int = 42, label: str = "landmark_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into train and validation, class by class.

    A class with ``n >= 2`` rows sends ``round(n * val_fraction)`` of them to
    validation, but at least one and never all; a single-row class stays in train.
    The same ``df`` and ``seed`` always give the same split.

    Args:
        df: the rows to split.
        val_fraction: share of each class for validation, in (0, 1).
        seed: seed of the shuffle within each class.
        label: the class column.

    Returns:
        (train, val): the rows in their original order, original index kept.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(df))
    shuffled = pd.Series(df[label].to_numpy()[order])
    rank = shuffled.groupby(shuffled, sort=False).cumcount().to_numpy()
    size = shuffled.groupby(shuffled, sort=False).transform("size").to_numpy()
    n_val = np.clip(np.floor(size * val_fraction + 0.5), 1, size - 1)
    is_val = np.zeros(len(df), dtype=bool)
    is_val[order] = rank < n_val
    return df[~is_val], df[is_val]
