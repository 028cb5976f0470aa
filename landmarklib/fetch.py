"""Fetch a catalog's images: URL -> square RGB JPEG, with retries, a manifest and resume.

``landmarks fetch CSV --out DIR`` (or ``fetch_catalog``) reads a Kaggle-layout
catalog and, for each row, reads the image (``http(s)://``, ``file://`` or a path
relative to the CSV's folder), decodes it by content, converts it to RGB, resizes it
to ``size`` x ``size`` and writes

    DIR/<landmark_id>/<id>.jpg     (DIR/<id>.jpg for a catalog without landmark_id)
    DIR/manifest.csv               one row per input row: id,url,landmark_id,status,
                                   error,bytes,width,height,format,seconds

``status`` is ``ok`` or ``failed`` (with a short reason in ``error``, such as
``HTTP 404``); bytes, width, height and format describe the source image.

Robustness: every image is written to a temporary file in its folder and renamed,
so no partial image is ever visible; manifest rows are appended to a journal
(``manifest.journal.csv``) in batches as they complete (flushed at least every
quarter second) and ``manifest.csv`` is written atomically at the end. A rerun
(after a crash or a kill, too) keeps the rows that are ``ok`` with a valid image
and fetches only the others (a kill may cost the few rows not yet journalled).
A bad row (HTTP error, timeout, not an image, truncated, decompression bomb, body
over ``max_bytes``, an id that would write outside DIR) fails alone; memory stays
bounded.

Speed: ``workers`` downloads in flight, spread over one process per core; each
process downloads, decodes and saves in its own threads (Pillow releases the GIL),
so image bytes never cross processes. The processes start while the catalog is
read; rows go to them, and results come back, in chunks. JPEGs decode at a
reduced DCT scale (``images.decode_for_size``). HTTP uses the standard library
with keep-alive connections per host.

The core, ``fetch_rows``, maps a chunk of catalog rows to manifest rows with no
global state, so a distributed engine can map it over partitions.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import email.utils
import functools
import heapq
import http.client
import itertools
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import random
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from PIL import Image

from . import __version__, images
from .images import JPEG_QUALITY

MANIFEST_COLUMNS = ("id", "url", "landmark_id", "status", "error", "bytes", "width", "height", "format", "seconds")
MANIFEST_NAME = "manifest.csv"
JOURNAL_NAME = "manifest.journal.csv"
MAX_BYTES = 20 * 2**20
MAX_REDIRECTS = 5
USER_AGENT = f"landmarklib/{__version__} (landmark-recognition image fetcher)"

_REDIRECT_CODES = (301, 302, 303, 307, 308)
_RETRY_CODES = (408, 425, 429)  # plus every 5xx
_DRAIN_LIMIT = 65536  # an error or redirect body up to this size is read so the connection can be reused
_CONNECTIONS_PER_THREAD = 16
_TEMP_FILE = re.compile(r"^\..+\.\d+-\d+\.tmp$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


class FetchError(Exception):
    """A row that cannot be fetched; ``str(error)`` is the manifest's reason.

    Args:
        reason: short text, e.g. ``"HTTP 404"``.
        retryable: whether trying again may help (connection errors, 5xx, 429).
        retry_after: seconds the server asked to wait, if it did.
    """

    def __init__(self, reason: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after = retry_after


class WorkerError(RuntimeError):
    """A worker process died; the journal keeps what was done, so a rerun resumes."""


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    """How to fetch and store each image.

    Args:
        size: side of the square output JPEGs, in pixels.
        resize: ``stretch`` (the study's), ``crop`` or ``pad`` (see ``images.resize_square``).
        timeout: seconds one attempt may take, connection to last byte.
        retries: further attempts after a connection error, a timeout, 5xx, 408 or 429.
        backoff: seconds before the first retry, doubled for each next one (with jitter);
            a ``Retry-After`` header replaces it.
        max_wait: longest wait between attempts, whatever ``Retry-After`` says.
        max_bytes: largest body (or file) accepted.
        max_pixels: largest source width x height (default ``Image.MAX_IMAGE_PIXELS``).
        quality: JPEG quality of the output.
        labelled: store as ``<landmark_id>/<id>.jpg`` (else ``<id>.jpg``).
        base_dir: folder that relative paths in ``url`` are relative to (the CSV's).
    """

    size: int = 250
    resize: str = "stretch"
    timeout: float = 20.0
    retries: int = 2
    backoff: float = 0.5
    max_wait: float = 60.0
    max_bytes: int = MAX_BYTES
    max_pixels: int | None = None
    quality: int = JPEG_QUALITY
    labelled: bool = True
    base_dir: str = "."


class Task(NamedTuple):
    """One catalog row to fetch. ``previous``: its earlier ``ok`` manifest row, if any."""

    seq: int
    id: str
    url: str
    landmark_id: str
    previous: dict[str, str] | None = None


@dataclasses.dataclass
class FetchSummary:
    """What a fetch did.

    Attributes:
        n_rows: input rows (after ``limit``).
        ok: rows fetched and written by this run.
        failed: rows that failed (see ``failed_by_reason`` and the manifest).
        skipped: rows not fetched because an earlier run had them ``ok`` with a valid image.
        failed_by_reason: failures per reason, most frequent first (details in parentheses dropped).
        seconds: wall time of the run.
        images_per_second: ``ok / seconds``.
        out_dir: the output folder.
        manifest_path: ``out_dir/manifest.csv``.
        empty_folders_removed: landmark folders left empty and removed.
    """

    n_rows: int
    ok: int
    failed: int
    skipped: int
    failed_by_reason: dict[str, int]
    seconds: float
    images_per_second: float
    out_dir: str
    manifest_path: str
    empty_folders_removed: int

    @property
    def images_ok(self) -> int:
        """Rows with an image in place after the run (fetched now or before)."""
        return self.ok + self.skipped

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``images_ok`` included), for tables and metrics files."""
        return {**dataclasses.asdict(self), "images_ok": self.images_ok}

    def report(self) -> str:
        """A few lines for people: counts, throughput, failures by reason."""
        lines = [
            f"{self.n_rows} rows -> {self.out_dir} in {self.seconds:.1f} s: "
            f"ok {self.ok}, failed {self.failed}, skipped {self.skipped} (already done); "
            f"{self.images_per_second:.1f} images/s"
        ]
        if self.failed_by_reason:
            width = max(len(reason) for reason in self.failed_by_reason)
            lines.append("failed by reason:")
            lines += [f"  {reason:<{width}}  {count}" for reason, count in self.failed_by_reason.items()]
        lines.append(f"manifest: {self.manifest_path}; empty folders removed: {self.empty_folders_removed}")
        return "\n".join(lines)


def reason_of(error: str) -> str:
    """The kind of a failure, for counting: ``"decompression bomb (1e10 pixels)"`` -> ``"decompression bomb"``."""
    return re.split(r" \(| '", error, maxsplit=1)[0]


# --------------------------------------------------------------------------- sources


def locate(url: str, base_dir: str | os.PathLike) -> tuple[str, str]:
    """Where a catalog ``url`` points: ``("http", url)`` or ``("file", path)``.

    Args:
        url: ``http(s)://...``, ``file://...``, or a path (relative to ``base_dir`` or absolute).
        base_dir: the folder of the catalog CSV.

    Raises:
        FetchError: empty URL, or a scheme other than http, https and file.
    """
    url = url.strip()
    if not url:
        raise FetchError("empty url")
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "file", os.path.join(base_dir, url)
    name = scheme.group(1).lower()
    if name in ("http", "https"):
        return "http", url
    if name == "file":
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"unsupported file URL host '{parts.netloc}'")
        return "file", os.path.join(base_dir, urllib.request.url2pathname(parts.path))
    raise FetchError(f"unsupported URL scheme '{name}'")


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MB"


def read_file(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a local file, refusing files over ``max_bytes``.

    Raises:
        FetchError: missing, unreadable or too large.
    """
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > max_bytes:
                raise FetchError(f"file larger than {_megabytes(max_bytes)}")
            data = f.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError("file not found") from exc
    except IsADirectoryError as exc:
        raise FetchError("not a file (a folder)") from exc
    except PermissionError as exc:
        raise FetchError("permission denied") from exc
    except OSError as exc:
        raise FetchError(f"cannot read file ({exc.strerror or exc})") from exc
    if len(data) > max_bytes:
        raise FetchError(f"file larger than {_megabytes(max_bytes)}")
    return data


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@functools.lru_cache(maxsize=None)
def _ssl_context() -> ssl.SSLContext:
    """One per process: building it loads the CA store."""
    return ssl.create_default_context()


class HttpClient:
    """Blocking HTTP(S) GETs with keep-alive connections per host; use one per thread.

    Honours ``http_proxy``/``https_proxy``/``no_proxy``; follows up to ``MAX_REDIRECTS``
    redirects to http(s) URLs; retries as ``FetchOptions`` says.

    Args:
        options: timeout, retries, backoff, max_wait and max_bytes are used.
    """

    def __init__(self, options: FetchOptions):
        self.options = options
        self._connections: collections.OrderedDict[tuple, http.client.HTTPConnection] = collections.OrderedDict()
        self._proxies = urllib.request.getproxies()

    def close(self) -> None:
        """Close every kept-alive connection."""
        while self._connections:
            self._connections.popitem()[1].close()

    def get(self, url: str) -> bytes:
        """The body of ``url``, retrying transient failures.

        Raises:
            FetchError: the last attempt's reason.
        """
        attempt = 0
        while True:
            try:
                return self._attempt(url)
            except FetchError as exc:
                if not exc.retryable or attempt >= self.options.retries:
                    raise
                wait = exc.retry_after
                if wait is None:
                    wait = self.options.backoff * 2**attempt * random.uniform(0.75, 1.25)
                time.sleep(min(wait, self.options.max_wait))
                attempt += 1

    def _attempt(self, url: str) -> bytes:
        timeout = self.options.timeout
        try:
            return self._follow(url, time.monotonic() + timeout)
        except FetchError:
            raise
        except TimeoutError as exc:
            raise FetchError(f"timeout after {timeout:g}s", retryable=True) from exc
        except ConnectionRefusedError as exc:
            raise FetchError("connection refused", retryable=True) from exc
        except ssl.SSLCertVerificationError as exc:
            raise FetchError(f"TLS certificate error ({exc.verify_message})") from exc
        except ssl.SSLError as exc:
            raise FetchError(f"TLS error ({exc.reason})", retryable=True) from exc
        except ValueError as exc:  # a port that is not a number, a host name IDNA cannot encode, ...
            raise FetchError(f"bad URL ({exc})") from exc
        except socket.gaierror as exc:  # only a temporary failure is worth another try
            raise FetchError("DNS lookup failed", retryable=exc.errno == socket.EAI_AGAIN) from exc
        except http.client.RemoteDisconnected as exc:
            raise FetchError("connection closed by server", retryable=True) from exc
        except http.client.HTTPException as exc:
            raise FetchError(f"bad HTTP response ({type(exc).__name__})", retryable=True) from exc
        except OSError as exc:
            raise FetchError(f"connection error ({exc.strerror or type(exc).__name__})", retryable=True) from exc

    def _follow(self, url: str, deadline: float) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise FetchError(f"redirect to unsupported URL scheme '{parts.scheme}'")
            if not parts.hostname:
                raise FetchError("bad URL (no host)")
            key = (parts.scheme, parts.hostname, parts.port)
            conn, response, sock = self._request(key, parts, deadline)
            body = None
            try:
                code = response.status
                location = response.getheader("Location") if code in _REDIRECT_CODES else None
                if location or not 200 <= code < 300:
                    reusable = self._drain(response)
                else:
                    body, reusable = self._read_body(response, sock, deadline), True
            except BaseException:
                conn.close()
                raise
            self._release(key, conn, response, reusable)
            if body is not None:
                return body
            if location:
                url = urllib.parse.urljoin(url, location)
                continue
            wait = _retry_after(response.getheader("Retry-After")) if code in (429, 503) else None
            raise FetchError(f"HTTP {code}", retryable=code >= 500 or code in _RETRY_CODES, retry_after=wait)
        raise FetchError("too many redirects")

    def _proxy(self, parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
        proxy = self._proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname):
            return None
        return urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")

    def _request(self, key: tuple, parts: urllib.parse.SplitResult, deadline: float):
        conn = self._connections.pop(key, None)
        if conn is not None:
            try:
                return self._send(conn, parts, deadline)
            except (ConnectionError, http.client.BadStatusLine):
                conn.close()  # the server closed the kept-alive connection: once more on a new one
            except BaseException:
                conn.close()
                raise
        conn = self._connect(parts)
        try:
            return self._send(conn, parts, deadline)
        except BaseException:
            conn.close()
            raise

    def _connect(self, parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        proxy = self._proxy(parts)
        if parts.scheme == "https":
            if proxy:
                conn = http.client.HTTPSConnection(proxy.hostname, proxy.port or 8080, context=_ssl_context())
                conn.set_tunnel(parts.hostname, parts.port)
                return conn
            return http.client.HTTPSConnection(parts.hostname, parts.port, context=_ssl_context())
        if proxy:
            return http.client.HTTPConnection(proxy.hostname, proxy.port or 8080)
        return http.client.HTTPConnection(parts.hostname, parts.port)

    def _send(self, conn: http.client.HTTPConnection, parts: urllib.parse.SplitResult, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if conn.sock is None:
            conn.timeout = remaining
        else:
            conn.sock.settimeout(remaining)
        if parts.scheme == "http" and self._proxy(parts):  # an HTTP proxy wants the absolute URL
            target = urllib.parse.urlunsplit(parts._replace(fragment=""))
        else:
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.8"})
        sock = conn.sock
        return conn, conn.getresponse(), sock

    def _read_body(self, response: http.client.HTTPResponse, sock: socket.socket, deadline: float) -> bytes:
        limit = self.options.max_bytes
        length = response.getheader("Content-Length", "")
        if length.strip().isdigit() and int(length) > limit:
            raise FetchError(f"body larger than {_megabytes(limit)}")
        chunks, total = [], 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = response.read1(262144)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise FetchError(f"body larger than {_megabytes(limit)}")
            chunks.append(chunk)
        if response.length:  # the server closed before the announced length
            raise FetchError("incomplete body", retryable=True)
        return b"".join(chunks)

    @staticmethod
    def _drain(response: http.client.HTTPResponse) -> bool:
        """Read an unwanted (error or redirect) body when small; return whether the connection can be reused."""
        length = response.getheader("Content-Length", "")
        if length.strip().isdigit() and int(length) <= _DRAIN_LIMIT:
            response.read()
            return True
        return False

    def _release(
        self, key: tuple, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, reusable: bool
    ) -> None:
        response.close()
        if not reusable or response.will_close:
            conn.close()
            return
        self._connections[key] = conn
        while len(self._connections) > _CONNECTIONS_PER_THREAD:
            self._connections.popitem(last=False)[1].close()


def read_source(url: str, options: FetchOptions = FetchOptions(), client: HttpClient | None = None) -> bytes:
    """The raw bytes a catalog ``url`` points to (downloaded, or read from a file).

    Args:
        url: ``http(s)://``, ``file://`` or a path relative to ``options.base_dir``.
        options: timeout, retries, size cap and base folder.
        client: an ``HttpClient`` to reuse (one per thread); a new one by default.

    Raises:
        FetchError: why it could not be read.
    """
    kind, where = locate(url, options.base_dir)
    if kind == "file":
        return read_file(where, options.max_bytes)
    if client is not None:
        return client.get(where)
    own = HttpClient(options)
    try:
        return own.get(where)
    finally:
        own.close()


# --------------------------------------------------------------------------- one row


def _check_name(value: str, what: str) -> None:
    """Refuse a file or folder name that is empty, a path, ``.``/``..`` or has control characters."""
    if value in ("", ".", "..") or any(c in "/\\" or c < " " for c in value) or os.path.isabs(value):
        raise FetchError(f"unsafe {what} '{value}'")


def output_path(out_dir: str | os.PathLike, image_id: str, landmark_id: str | None) -> Path:
    """``out_dir/<landmark_id>/<id>.jpg`` (``out_dir/<id>.jpg`` when ``landmark_id`` is None).

    Raises:
        FetchError: an id or landmark id that is empty or would write outside ``out_dir``.
    """
    _check_name(image_id, "id")
    if landmark_id is None:
        return Path(out_dir) / f"{image_id}.jpg"
    if landmark_id == "":
        raise FetchError("missing landmark_id")
    _check_name(landmark_id, "landmark_id")
    return Path(out_dir) / landmark_id / f"{image_id}.jpg"


def is_valid_output(path: Path, size: int) -> bool:
    """Whether ``path`` is a ``size`` x ``size`` JPEG (read from its header)."""
    try:
        with Image.open(path) as img:
            return img.format == "JPEG" and img.size == (size, size)
    except (OSError, ValueError, SyntaxError):
        return False


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader (or a rerun after a kill) sees the old file or the whole new one, never a part.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:  # the first image of its landmark
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path | None) -> None:
    """Delete ``path`` if there is one."""
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def fetch_one(
    task: Task, out_dir: str | os.PathLike, options: FetchOptions, client: HttpClient
) -> tuple[dict[str, str], bool]:
    """Fetch, convert and store one row; never raises.

    Args:
        task: the row.
        out_dir: the output folder.
        options: how to fetch and store.
        client: this thread's HTTP client.

    Returns:
        (manifest row, resumed): ``resumed`` is True when ``task.previous`` was kept
        because its image is in place; a failed row's old image, if any, is removed.
    """
    start = time.monotonic()
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(id=task.id, url=task.url, landmark_id=task.landmark_id, status="failed")
    target = None
    try:
        target = output_path(out_dir, task.id, task.landmark_id if options.labelled else None)
        previous = task.previous
        if previous is not None and previous.get("url") == task.url and is_valid_output(target, options.size):
            return dict(previous), True
        data = read_source(task.url, options, client)
        row["bytes"] = str(len(data))
        img = images.open_image(data, options.max_pixels)
        row.update(width=str(img.width), height=str(img.height), format=img.format or "")
        square = images.resize_square(images.to_rgb(img, options.size), options.size, options.resize)
        encoded = images.encode_jpeg(square, options.quality)
        try:
            write_atomic(target, encoded)
        except OSError as exc:
            raise FetchError(f"write error ({exc.strerror or exc})") from exc
        row["status"] = "ok"
    except (FetchError, images.ImageError) as exc:
        row["error"] = str(exc)
    except Exception as exc:  # a row never stops the run: record the unexpected, too
        row["error"] = f"internal error ({type(exc).__name__}: {exc})"
    if row["status"] == "failed":
        _remove(target)  # as the study did: no image for a row that failed
    row["seconds"] = f"{time.monotonic() - start:.3f}"
    return row, False


# --------------------------------------------------------------------------- many rows


_DONE = object()
_BATCH_ROWS = 32  # results sent (and journalled) together: one message, one flush
_BATCH_SECONDS = 0.25  # ... unless the first of them has waited this long
_CHUNK_ROWS = 8  # tasks sent to a worker process together


def iter_fetch(
    tasks: Iterable[Task], out_dir: str | os.PathLike, options: FetchOptions, threads: int = 32
) -> Iterator[tuple[int, dict[str, str], bool]]:
    """Fetch ``tasks`` on ``threads`` threads; yield ``(seq, manifest row, resumed)`` as rows complete.

    ``tasks`` is read lazily (it may be a stream), so memory holds only the rows in flight.
    """
    for batch in _iter_fetch_batches(tasks, out_dir, options, threads, max_rows=1):
        yield from batch


def _iter_fetch_batches(
    tasks: Iterable[Task],
    out_dir: str | os.PathLike,
    options: FetchOptions,
    threads: int,
    max_rows: int = _BATCH_ROWS,
    max_seconds: float = _BATCH_SECONDS,
) -> Iterator[list[tuple[int, dict[str, str], bool]]]:
    """``iter_fetch`` in batches: up to ``max_rows`` results, the first of them at most ``max_seconds`` old."""
    source = iter(tasks)
    lock = threading.Lock()
    stop = threading.Event()
    results: queue.SimpleQueue = queue.SimpleQueue()

    def next_task() -> Task | None:
        with lock:
            return None if stop.is_set() else next(source, None)

    def work() -> None:
        client = HttpClient(options)
        try:
            while (task := next_task()) is not None:
                row, resumed = fetch_one(task, out_dir, options, client)
                results.put((task.seq, row, resumed))
        except BaseException as exc:  # the task source broke: hand it to the consumer
            results.put(exc)
        finally:
            client.close()
            results.put(_DONE)

    for i in range(threads):
        threading.Thread(target=work, name=f"fetch-{i}", daemon=True).start()
    running, batch, deadline = threads, [], math.inf
    try:
        while running:
            try:
                item = results.get(timeout=max(0.0, deadline - time.monotonic())) if batch else results.get()
            except queue.Empty:
                item = None
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            elif item is not None:
                if not batch:
                    deadline = time.monotonic() + max_seconds
                batch.append(item)
            if batch and (item is None or len(batch) >= max_rows or not running):
                yield batch
                batch = []
    finally:
        stop.set()


def _label(value: Any) -> str:
    """A landmark id as text; missing (None, NaN, pandas NA) -> ``""``."""
    try:
        missing = value is None or bool(value != value)
    except TypeError:  # pandas NA: its comparisons are NA, which has no truth value
        missing = True
    if missing:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def fetch_rows(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    options: FetchOptions = FetchOptions(),
    threads: int = 32,
) -> list[dict[str, str]]:
    """The core: a chunk of catalog rows -> their manifest rows, in the same order.

    No global state: a distributed engine can map this over partitions of a catalog
    (give each the same ``out_dir`` and ``options``) and concatenate the results.

    Args:
        rows: mappings (or a DataFrame) with ``id``, ``url`` and, for ``options.labelled``,
            ``landmark_id``; an optional ``previous`` mapping is an earlier ``ok`` row to keep.
        out_dir: the output folder.
        options: how to fetch and store.
        threads: downloads in flight.
    """
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    tasks = (
        Task(seq, str(row["id"]), str(row["url"]), _label(row.get("landmark_id")), row.get("previous"))
        for seq, row in enumerate(rows)
    )
    done = {seq: row for seq, row, _ in iter_fetch(tasks, out_dir, options, threads)}
    return [done[seq] for seq in sorted(done)]


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _worker_process(setup, task_queue, result_queue, out_dir: str, threads: int) -> None:
    """A worker process: read its ``FetchOptions`` from ``setup``, then fetch chunks of tasks from
    ``task_queue`` until ``None``, putting batches of results on ``result_queue``."""
    parent = multiprocessing.parent_process()
    if parent is not None:  # a killed parent must not leave workers behind
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True).start()
    try:
        options = setup.recv()
    except EOFError:  # the pool was not needed after all
        return
    setup.close()
    tasks = (task for chunk in iter(task_queue.get, None) for task in chunk)
    for batch in _iter_fetch_batches(tasks, out_dir, options, threads):
        result_queue.put(batch)
    result_queue.close()
    result_queue.join_thread()


def _mp_context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _feed(tasks: Iterator[Task], task_queue, n_processes: int, stop: threading.Event, failure: list) -> None:
    """Put the tasks in chunks, then one ``None`` per worker process, on ``task_queue`` (until ``stop``)."""
    try:
        chunks = iter(lambda: list(itertools.islice(tasks, _CHUNK_ROWS)), [])
        for item in itertools.chain(chunks, [None] * n_processes):
            while not stop.is_set():
                try:
                    task_queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            else:
                return
    except BaseException as exc:  # planning the tasks failed: the consumer re-raises it
        failure.append(exc)


def _check_alive(procs: list, received: int, n_tasks: int) -> None:
    """Raise ``WorkerError`` when a worker process died, or all exited before the last row."""
    dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
    if dead or all(p.exitcode is not None for p in procs):
        hint = "" if received else ' (a script must keep its main code under `if __name__ == "__main__":`)'
        raise WorkerError(
            f"a worker process died (exit code {dead[0] if dead else 0}) after {received} of "
            f"{n_tasks} rows; rerun to resume{hint}"
        )


class _ProcessPool:
    """Worker processes of ``threads`` threads each, started in the background at once, so that
    their startup overlaps reading the catalog; ``run`` then spreads the tasks over them.

    Args:
        n_processes: worker processes.
        threads: downloads in flight in each.
        out_dir: the output folder.
    """

    def __init__(self, n_processes: int, threads: int, out_dir: Path):
        ctx = _mp_context()
        self.task_queue = ctx.Queue(maxsize=max(2, math.ceil(2 * threads * n_processes / _CHUNK_ROWS)))
        self.result_queue = ctx.Queue()
        pipes = [ctx.Pipe(duplex=False) for _ in range(n_processes)]
        self.setups = [send for _, send in pipes]
        self.procs = [
            ctx.Process(
                target=_worker_process,
                args=(recv, self.task_queue, self.result_queue, str(out_dir), threads),
                daemon=True,
            )
            for recv, _ in pipes
        ]
        self._receivers = [recv for recv, _ in pipes]
        self._start_error: list[BaseException] = []
        self._starter = threading.Thread(target=self._start, daemon=True)
        self._starter.start()

    def _start(self) -> None:
        try:
            for proc in self.procs:
                proc.start()
        except BaseException as exc:  # e.g. no forkserver: ``run`` re-raises it
            self._start_error.append(exc)

    def _started(self) -> list:
        self._starter.join()
        for recv in self._receivers:  # the workers hold their own copies now
            recv.close()
        self._receivers = []
        if self._start_error:
            raise self._start_error[0]
        return self.procs

    def run(self, tasks: Iterator[Task], n_tasks: int, options: FetchOptions) -> Iterator[list]:
        """Fetch ``tasks`` (``n_tasks`` of them) with ``options``; yield batches of ``(seq, row, resumed)``."""
        procs = self._started()
        for setup in self.setups:
            setup.send(options)
        stop = threading.Event()
        failure: list[BaseException] = []
        feeder = threading.Thread(target=_feed, args=(tasks, self.task_queue, len(procs), stop, failure), daemon=True)
        feeder.start()
        received = 0
        try:
            while received < n_tasks:
                try:
                    batch = self.result_queue.get(timeout=1.0)
                except queue.Empty:
                    if failure:
                        raise failure[0]
                    _check_alive(procs, received, n_tasks)
                    continue
                received += len(batch)
                yield batch
        finally:
            stop.set()

    def close(self, finished: bool = True) -> None:
        """Stop the workers: when ``finished``, let them exit (after their last task, or at once
        when ``run`` never ran), else terminate them."""
        try:
            procs = self._started()
        except BaseException:
            procs = [p for p in self.procs if p.pid is not None]
        for setup in self.setups:
            setup.close()
        for proc in procs:
            proc.join(timeout=5 if finished else 0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


# --------------------------------------------------------------------------- a catalog


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _empty_manifest():
    import pandas as pd

    return pd.DataFrame(columns=list(MANIFEST_COLUMNS), dtype=str)


def _read_manifest_rows(path: Path, only_ok: bool = False):
    """The rows of a manifest or a journal (``seq`` dropped) as a DataFrame of strings, read in chunks.

    Args:
        path: ``manifest.csv`` or the journal.
        only_ok: keep only the ``ok`` rows.

    A line cut short (a journal when the power went) has no ``seconds`` and is dropped.
    """
    import pandas as pd

    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, chunksize=100_000)
        chunks = []
        for chunk in reader:
            missing = [c for c in MANIFEST_COLUMNS if c not in chunk.columns]
            if missing:
                raise ValueError(f"{path}: not a fetch manifest (no column {', '.join(missing)})")
            keep = chunk["seconds"] != ""
            if only_ok:
                keep &= chunk["status"] == "ok"
            chunks.append(chunk.loc[keep, list(MANIFEST_COLUMNS)])
    except pd.errors.EmptyDataError:  # a journal killed before its header
        return _empty_manifest()
    return pd.concat(chunks, ignore_index=True) if chunks else _empty_manifest()


def _remove_temp_files(out_dir: Path) -> None:
    for folder, _, files in os.walk(out_dir):
        for name in files:
            if _TEMP_FILE.match(name):
                _remove(Path(folder) / name)


def _write_manifest(frame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    frame.to_csv(tmp, index=False, columns=list(MANIFEST_COLUMNS))
    os.replace(tmp, path)


def _write_manifest_in_order(journal: Path, path: Path) -> None:
    """Write a finished run's journal to ``path`` (atomically) in input order.

    The journal is in completion order, which differs from input order only by the rows
    in flight at a time, so a heap holds few rows: memory does not grow with the catalog.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    with open(journal, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        next(reader)
        writer.writerow(MANIFEST_COLUMNS)
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


def _previous_rows(out_dir: Path):
    """The ``ok`` rows of earlier runs, the last one per image, as a DataFrame.

    An interrupted run's journal is first folded into ``manifest.csv`` (and its temporary
    files removed), so that the manifest always describes every row fetched so far.
    """
    import pandas as pd

    manifest, journal = out_dir / MANIFEST_NAME, out_dir / JOURNAL_NAME
    if not journal.is_file():
        return _read_manifest_rows(manifest, only_ok=True) if manifest.is_file() else _empty_manifest()
    parts = [_read_manifest_rows(p) for p in (manifest, journal) if p.is_file()]
    rows = pd.concat(parts, ignore_index=True).drop_duplicates(["landmark_id", "id"], keep="last")
    _remove_temp_files(out_dir)
    _write_manifest(rows, manifest)
    journal.unlink()
    return rows[rows["status"] == "ok"]


def _plan(catalog, labelled: bool, previous) -> tuple[Iterator[Task], int]:
    """Tasks for the catalog rows, each with its earlier ``ok`` row (from ``previous``) when there is
    one; and how many have one."""
    import pandas as pd

    labels = catalog["landmark_id"].astype(str) if labelled else pd.Series("", index=catalog.index, dtype=str)
    keys = pd.DataFrame({"id": catalog["id"], "landmark_id": labels})
    merged = keys.merge(previous, on=["landmark_id", "id"], how="left", validate="many_to_one")
    earlier = {c: merged[c].to_numpy() for c in MANIFEST_COLUMNS}
    has_earlier = merged["status"].to_numpy() == "ok"

    def tasks() -> Iterator[Task]:
        for seq, (image_id, url, label) in enumerate(zip(catalog["id"], catalog["url"], labels)):
            row = {c: earlier[c][seq] for c in MANIFEST_COLUMNS} if has_earlier[seq] else None
            yield Task(seq, image_id, url, label, row)

    return tasks(), int(has_earlier.sum())


def _read_input(csv_path: Path):
    """The catalog and whether it has labels; unusable input raises ``CatalogError``."""
    from .catalog import CatalogError, read_catalog

    try:
        catalog = read_catalog(csv_path, require_labels=False)
    except OSError as exc:
        raise CatalogError(csv_path, None, None, f"cannot read ({exc.strerror or exc})") from exc
    return catalog, "landmark_id" in catalog.columns


def remove_empty_folders(out_dir: str | os.PathLike) -> int:
    """Remove the empty folders directly under ``out_dir`` (landmarks with no image); return how many."""
    removed = 0
    for entry in os.scandir(out_dir):
        if entry.is_dir(follow_symlinks=False):
            try:
                os.rmdir(entry.path)
                removed += 1
            except OSError:  # not empty
                pass
    return removed


def fetch_catalog(
    csv_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    size: int = 250,
    resize: str = "stretch",
    limit: int | None = None,
    workers: int = 32,
    timeout: float = 20.0,
    retries: int = 2,
    progress: bool = True,
    processes: int | None = None,
    backoff: float = 0.5,
    max_bytes: int = MAX_BYTES,
) -> FetchSummary:
    """Fetch the images of a catalog CSV into ``out_dir`` (see the module docstring).

    Args:
        csv_path: Kaggle-layout CSV (``id,url[,landmark_id]``); relative paths in ``url``
            are relative to its folder.
        out_dir: output folder (created); a rerun into it resumes.
        size: side of the square JPEGs.
        resize: ``stretch`` (the study's), ``crop`` or ``pad``.
        limit: fetch only the first ``limit`` rows (the study used 5000).
        workers: downloads in flight.
        timeout: seconds per attempt.
        retries: further attempts for transient failures.
        progress: show a progress bar.
        processes: worker processes; default one per core, and none (threads in this
            process) for jobs under 64 rows. Scripts that use processes must guard their
            main code with ``if __name__ == "__main__":`` (workers start by "forkserver").
        backoff: seconds before the first retry (doubling).
        max_bytes: largest image body accepted.

    Returns:
        A ``FetchSummary``.

    Raises:
        CatalogError: the CSV is missing, unreadable or malformed.
        WorkerError: a worker process died (rerun to resume).
    """
    from .catalog import first_n

    if resize not in images.RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(images.RESIZE_MODES)}, not {resize!r}")
    if size < 1 or workers < 1 or timeout <= 0 or retries < 0:
        raise ValueError("size and workers must be >= 1, timeout > 0 and retries >= 0")
    start = time.monotonic()
    csv_path, out = Path(csv_path), Path(out_dir)
    pool = _early_pool(csv_path, out, limit, workers, processes)
    finished = False
    try:
        catalog, labelled = _read_input(csv_path)
        catalog = first_n(catalog, limit)
        out.mkdir(parents=True, exist_ok=True)
        previous = _previous_rows(out)
        options = FetchOptions(
            size=size, resize=resize, timeout=timeout, retries=retries, backoff=backoff, max_bytes=max_bytes,
            labelled=labelled, base_dir=str(csv_path.resolve().parent),
        )
        n_rows = len(catalog)
        tasks, n_done = _plan(catalog, labelled, previous)
        del previous
        n_processes = _n_processes(processes, n_rows - n_done)
        if n_processes > 1:
            pool = pool or _ProcessPool(n_processes, math.ceil(workers / n_processes), out)
            batches = pool.run(tasks, n_rows, options)
        else:
            batches = _iter_fetch_batches(tasks, out, options, workers)
        counts, reasons = _journal(batches, out, n_rows, f"fetch {csv_path.name}", progress)
        finished = True
    finally:
        if pool is not None:
            pool.close(finished)
    removed = remove_empty_folders(out) if labelled else 0
    seconds = time.monotonic() - start
    return FetchSummary(
        n_rows=n_rows,
        ok=counts["ok"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        failed_by_reason=dict(reasons.most_common()),
        seconds=round(seconds, 3),
        images_per_second=round(counts["ok"] / seconds, 2) if seconds > 0 else 0.0,
        out_dir=str(out),
        manifest_path=str(out / MANIFEST_NAME),
        empty_folders_removed=removed,
    )


def _n_processes(processes: int | None, n_tasks: int) -> int:
    """Worker processes for ``n_tasks`` rows to fetch: ``processes``, else one per core, fewer (or
    none) for small jobs."""
    return processes or min(_cores(), max(1, n_tasks // 32))


def _count_lines(path: Path, enough: int) -> int:
    """Lines in ``path``, counted up to ``enough`` or more; 0 when it cannot be read."""
    n = 0
    try:
        with open(path, "rb") as f:
            while n < enough and (block := f.read(2**20)):
                n += block.count(b"\n")
    except OSError:
        return 0
    return n


def _early_pool(
    csv_path: Path, out: Path, limit: int | None, workers: int, processes: int | None
) -> _ProcessPool | None:
    """Worker processes started before the catalog is read, when a fresh run will need them.

    A resumed run (a manifest or journal in ``out``) decides after planning, since the rows
    already done need no processes; so does a catalog too small for more than one.
    """
    if processes == 1 or (out / MANIFEST_NAME).exists() or (out / JOURNAL_NAME).exists():
        return None
    enough = 32 * (processes or _cores()) + 2
    n_rows = max(0, _count_lines(csv_path, enough) - 1)  # less the header
    n_processes = _n_processes(processes, n_rows if limit is None else min(limit, n_rows))
    if n_processes < 2:
        return None
    return _ProcessPool(n_processes, math.ceil(workers / n_processes), out)


def _journal(
    batches: Iterator[list], out: Path, n_rows: int, desc: str, progress: bool
) -> tuple[collections.Counter, collections.Counter]:
    """Append each batch of results to the journal (flushed per batch), then write ``manifest.csv``
    in input order and remove the journal; return the counts by status and failure reason."""
    from tqdm import tqdm

    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    journal_path = out / JOURNAL_NAME
    with contextlib.closing(batches), open(journal_path, "w", newline="", encoding="utf-8") as journal, tqdm(
        total=n_rows, desc=desc, unit="img", disable=not progress
    ) as bar:
        writer = csv.writer(journal)
        writer.writerow(["seq", *MANIFEST_COLUMNS])
        journal.flush()
        for batch in batches:
            writer.writerows([seq, *(row[c] for c in MANIFEST_COLUMNS)] for seq, row, _ in batch)
            journal.flush()
            for _, row, resumed in batch:
                if resumed:
                    counts["skipped"] += 1
                else:
                    counts[row["status"]] += 1
                    if row["status"] == "failed":
                        reasons[reason_of(row["error"])] += 1
            bar.update(len(batch))
            bar.set_postfix(ok=counts["ok"], failed=counts["failed"], refresh=False)
    _write_manifest_in_order(journal_path, out / MANIFEST_NAME)
    journal_path.unlink()
    return counts, reasons


# --------------------------------------------------------------------------- command line


def _number(kind: type, low: float, strict: bool):
    """An argparse type: ``kind`` values >= ``low`` (> ``low`` when ``strict``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, not {text}")
        return value

    return parse


_positive_int, _count, _seconds = _number(int, 1, False), _number(int, 0, False), _number(float, 0, True)


def add_cli(subparsers) -> None:
    """Register ``landmarks fetch CSV --out DIR [...]``."""
    parser = subparsers.add_parser(
        "fetch",
        help="download, convert and resize a catalog's images",
        description="Fetch every row of a catalog CSV (id,url[,landmark_id]) into OUT/<landmark_id>/<id>.jpg "
        "(OUT/<id>.jpg without labels) with OUT/manifest.csv; a rerun resumes.",
    )
    parser.add_argument("csv", help="catalog CSV; relative paths in url are relative to its folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--size", type=_positive_int, default=250, help="side of the square JPEGs (default 250)")
    parser.add_argument(
        "--resize", choices=images.RESIZE_MODES, default="stretch", help="default stretch (the study's)"
    )
    parser.add_argument("--limit", type=_count, default=None, help="only the first N rows")
    parser.add_argument("--workers", type=_positive_int, default=32, help="downloads in flight (default 32)")
    parser.add_argument("--timeout", type=_seconds, default=20.0, help="seconds per attempt (default 20)")
    parser.add_argument("--retries", type=_count, default=2, help="further attempts on transient errors (default 2)")
    parser.add_argument(
        "--processes", type=_positive_int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    try:
        summary = fetch_catalog(
            args.csv, args.out, size=args.size, resize=args.resize, limit=args.limit, workers=args.workers,
            timeout=args.timeout, retries=args.retries, progress=not args.quiet, processes=args.processes,
        )
    except ValueError as exc:  # CatalogError, or a manifest.csv in OUT that is not a fetch manifest
        print(f"landmarks fetch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output folder cannot be created or written
        print(f"landmarks fetch: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except WorkerError as exc:
        print(f"landmarks fetch: {exc}", file=sys.stderr)
        return 1
    print(summary.report())
    return 0
