"""Writing files so that a kill never leaves half of one, and showing paths to a reader.

atomic_path              a temporary name beside a file, renamed onto it when the block succeeds
write_text, write_json   text and JSON files, atomically
write_csv                a DataFrame as CSV, atomically
display_path             a path relative to the project root when it lies inside it
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import paths

if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto ``path`` when the block ends without error.

    The temporary name (``.<name>.<pid>-<thread>.tmp``) is unique to the writer, so two
    processes or threads writing the same file never mix their bytes; the last rename wins.
    On an error the temporary file is removed and the old ``path`` (if any) is left as it was.
    The parent folder is created when missing. ``keep_suffix`` appends ``path``'s suffix to the
    temporary name, for writers that choose the format by it (``keras.Model.save``: ``.keras``).

    Example:
        with atomic_path(out) as tmp:
            image.save(tmp, "JPEG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    if keep_suffix:
        tmp = tmp.with_name(tmp.name + path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (with a final newline) to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(data, indent=indent) + "\n")


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` without its index to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def display_path(path: str | os.PathLike) -> str:
    """``path`` as a reader sees it: relative to the project root when inside it, else absolute."""
    path = Path(path).resolve()
    root = paths.project_root()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
