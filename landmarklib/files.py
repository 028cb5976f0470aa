"""Writing files so that a kill never leaves half of one, and showing paths to a reader.

atomic_path              a temporary name beside a file, renamed onto it when the block succeeds
write_text, write_json   text and JSON files, atomically
write_csv                a DataFrame as CSV, atomically
one_writer               a folder or file written by one run at a time (a second is refused, naming the first)
display_path             a path relative to the project root when it lies inside it
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
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


class FolderBusy(RuntimeError):
    """Another run is writing the same output: ``str(error)`` names it and the other process."""


@contextlib.contextmanager
def one_writer(target: str | os.PathLike, what: str = "") -> Iterator[Path]:
    """Hold ``target``'s writer lock for the block, or refuse at once when another run holds it.

    ``target`` is a folder or a single output file (its lock lies beside it: ``lock_path``). The lock
    is an OS file lock (``flock``,
    through ``filelock``): the kernel drops it when its process ends, however it ends, so a
    killed run never leaves it stuck. Beside it, ``<lock>.json`` says who holds it (pid, host,
    command, start), for the message another run gets.

    Args:
        target: the folder (or, for a single output file, the file) the run writes.
        what: the command, for the other run's message (e.g. ``"landmarks fetch train.csv"``).

    Raises:
        FolderBusy: another run (any process, this one included) holds the lock.
    """
    import filelock  # only for a writer lock: fetch's worker processes import this module

    lock_file = lock_path(target)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_file, timeout=0, thread_local=False, is_singleton=False)
    owner_file = lock_file.with_name(lock_file.name + ".json")
    try:
        lock.acquire()
    except filelock.Timeout:
        raise FolderBusy(
            f"{display_path(target)} is being written by another run ({_owner(owner_file)}); "
            "wait for it to end, or write elsewhere"
        ) from None
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": what or " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_json(owner_file, owner)
        yield lock_file
    finally:
        owner_file.unlink(missing_ok=True)
        lock.release()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output (a folder or a file): ``.<name>.lock`` beside it, so that the
    output itself holds only what the run wrote; it stays, empty, when the run ends."""
    target = Path(target).absolute()
    return target.with_name(f".{target.name}.lock")


def _owner(owner_file: Path) -> str:
    """Who holds a lock, from its ``.json`` (written just after the lock is taken: may be absent yet)."""
    try:
        o = json.loads(owner_file.read_text())
        return f"{o['command']}, pid {o['pid']} on {o['host']}, since {o['started']}"
    except (OSError, ValueError, KeyError):
        return "its process is starting"
