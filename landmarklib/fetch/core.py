"""The per-row fetch core: catalog rows -> square RGB JPEGs + manifest rows, with no global state.

``fetch_chunk(rows, out_dir, options, hosts=None)`` is what every engine maps over a
catalog (the local engine in ``fetch.local``, a distributed one over shards): for each
row it reads the image (``http(s)://``, ``file://`` or a path relative to
``options.base_dir``), decodes it by content, converts it to RGB, resizes it to
``options.size`` and writes ``out_dir/<landmark_id>/<id>.jpg`` through a temporary file
and a rename (no partial image is ever visible). It returns one manifest row per input
row (``manifest.COLUMNS``), in input order; a row that cannot be fetched fails alone,
with its reason in ``error``; the function never raises for a row.

HTTP is urllib3: one ``PoolManager`` per process and options (keep-alive connections per
host), a ``ProxyManager`` when ``http_proxy``/``https_proxy`` are set (``no_proxy``
honoured), ``Retry`` with exponential backoff and ``Retry-After`` for connection errors,
timeouts, 5xx, 408, 425 and 429. Redirects (at most ``MAX_REDIRECTS``, http(s) only) are
followed here, so that a redirect to ``file://`` fails by name. A body is streamed and
refused past ``max_bytes``; an attempt may not last past ``timeout`` from the first byte
asked to the last received.

Dead hosts fail fast: ``HostHealth`` counts consecutive connection-level failures (DNS,
refused, unreachable, connect timeout, TLS) per host; after ``options.fail_fast_after`` of
them, the host's rows not yet tried fail at once as ``host unreachable (<first error>)``
without a request, and rows in flight stop retrying with that error too. Only a row that
used up its own retries keeps its connection error. So when a process gives a host up while
it has another of its rows to do, one of them says ``host unreachable`` however its threads
interleave, and the run's ``FetchSummary.unreachable_hosts`` lists the host. The state lives
for one run in one process; a later run tries the host again.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3
from PIL import Image
from urllib3 import exceptions as u3

from .. import __version__, images, manifest
from ..config import FetchConfig
from ..images import JPEG_QUALITY

_DEFAULTS = FetchConfig()  # the settings' defaults live in config.FetchConfig, and only there
MAX_BYTES = _DEFAULTS.max_bytes
MAX_REDIRECTS = 5
USER_AGENT = f"landmarklib/{__version__} (landmark-recognition image fetcher)"
RETRY_STATUSES = frozenset({408, 425, 429, *range(500, 600)})
HOST_UNREACHABLE = "host unreachable"
TAR_SCHEME = "tar"  # tar://<shard>?offset=<o>&size=<n>#<member>: a member of a TAR shard, read in place

_REDIRECT_CODES = (301, 302, 303, 307, 308)
_DRAIN_LIMIT = 65536  # an error or redirect body up to this size is read so the connection can be reused
_READ_CHUNK = 262144
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")

# urllib3 logs each retry and each connection it drops as a warning; here every row's outcome is
# in the manifest, and a notebook's output must not fill with framework lines.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


class FetchError(Exception):
    """A row that cannot be fetched; ``str(error)`` is the manifest's reason.

    Args:
        reason: short text, e.g. ``"HTTP 404"``.
        retryable: whether trying again may help.
    """

    def __init__(self, reason: str, retryable: bool = False):
        super().__init__(reason)
        self.retryable = retryable


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    """How to fetch and store each image.

    Args:
        size: side of the square output JPEGs, in pixels.
        resize: ``stretch`` (the study's), ``crop`` or ``pad`` (see ``images.resize_square``).
        timeout: seconds one attempt may take, connection to last byte.
        retries: further attempts after a connection error, a timeout, 5xx, 408, 425 or 429.
        backoff: urllib3's backoff factor: no wait before the first retry, then
            ``backoff * 2**(n-1)`` seconds (jittered); a ``Retry-After`` header replaces it.
        max_wait: longest wait between attempts, whatever ``Retry-After`` says.
        max_bytes: largest body (or file) accepted.
        max_pixels: largest source width x height (default ``Image.MAX_IMAGE_PIXELS``).
        quality: JPEG quality of the output.
        labelled: store as ``<landmark_id>/<id>.jpg`` (else ``<id>.jpg``).
        base_dir: folder that relative paths in ``url`` are relative to (the CSV's).
        threads: downloads in flight within one ``fetch_chunk`` call.
        fail_fast_after: consecutive connection-level failures after which a host's
            remaining rows fail at once as ``host unreachable`` (0: never).
        max_per_host: HTTP requests in flight per host from this process (0: no limit);
            urllib3 pools of that size that block when full. The Dask engine gives each
            worker its share of the cluster-wide ``--max-per-host``.
    """

    size: int = _DEFAULTS.image_size
    resize: str = _DEFAULTS.resize
    timeout: float = _DEFAULTS.timeout
    retries: int = _DEFAULTS.retries
    backoff: float = _DEFAULTS.backoff
    max_wait: float = 60.0
    max_bytes: int = _DEFAULTS.max_bytes
    max_pixels: int | None = None
    quality: int = JPEG_QUALITY
    labelled: bool = True
    base_dir: str = "."
    threads: int = 16
    fail_fast_after: int = _DEFAULTS.fail_fast_after
    max_per_host: int = _DEFAULTS.max_per_host

    @classmethod
    def from_config(
        cls, config: FetchConfig, *, labelled: bool, base_dir: str, threads: int, max_per_host: int = 0
    ) -> FetchOptions:
        """An engine's options for one run: the image and download settings of ``config``, and what
        the engine decides (``labelled`` and ``base_dir`` from the catalog, ``threads`` and
        ``max_per_host`` per process)."""
        return cls(
            size=config.image_size,
            resize=config.resize,
            timeout=config.timeout,
            retries=config.retries,
            backoff=config.backoff,
            max_bytes=config.max_bytes,
            labelled=labelled,
            base_dir=base_dir,
            threads=threads,
            fail_fast_after=config.fail_fast_after,
            max_per_host=max_per_host,
        )


# --------------------------------------------------------------------------- hosts


class HostHealth:
    """Per-host fail-fast state, shared by the threads of one process for one run. A host is a
    ``host:port`` (``host_of``): two servers on one machine are two hosts.

    Args:
        fail_after: consecutive connection-level failures that make a host unreachable (0: never).
    """

    def __init__(self, fail_after: int = 3):
        self.fail_after = fail_after
        self._lock = threading.Lock()
        self._streak: dict[str, tuple[int, str]] = {}
        self.dead: dict[str, str] = {}  # host -> the first error of its streak

    def check(self, host: str) -> None:
        """Raise ``FetchError("host unreachable (...)")`` for a host given up on."""
        first = self.dead.get(host)
        if first is not None:
            raise FetchError(f"{HOST_UNREACHABLE} ({first})")

    def failed(self, host: str, reason: str) -> None:
        """Count a connection-level failure on ``host`` (the host is given up on after ``fail_after``)."""
        if self.fail_after <= 0:
            return
        with self._lock:
            count, first = self._streak.get(host, (0, reason))
            self._streak[host] = (count + 1, first)
            if count + 1 >= self.fail_after:
                self.dead.setdefault(host, first)

    def succeeded(self, host: str) -> None:
        """The host answered (with any status): its streak starts again."""
        if host in self._streak:
            with self._lock:
                self._streak.pop(host, None)

    def __getstate__(self):  # picklable (a distributed engine may ship one), lock left behind
        return {"fail_after": self.fail_after, "_streak": dict(self._streak), "dead": dict(self.dead)}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def host_of(url: str | urllib.parse.SplitResult) -> str:
    """The server a URL names, as fail-fast counts it: ``host:port`` (``lh3.ggpht.com:80``)."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else url
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:  # a port that is not a number
        port = 0
    return f"{parts.hostname or ''}:{port}"


def connection_failure(error: BaseException) -> str | None:
    """The manifest reason of a connection-level failure (the host could not be reached at
    all), or None for any other error."""
    if isinstance(error, u3.ProxyError):
        error = error.original_error
    if isinstance(error, u3.NameResolutionError):
        return "DNS lookup failed"
    if isinstance(error, u3.NewConnectionError):
        cause = error.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return f"connection error ({cause.strerror})"
        return "connection error"
    if isinstance(error, u3.ConnectTimeoutError):
        return "connect timeout"
    if isinstance(error, u3.SSLError):
        cause = error.args[0] if error.args else None
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate error ({cause.verify_message})"
        return f"TLS error ({getattr(cause, 'reason', None) or cause})"
    return None


def _dns_is_permanent(error: BaseException) -> bool:
    """A name that does not exist (as opposed to a resolver that did not answer)."""
    cause = error.__cause__
    return isinstance(cause, socket.gaierror) and cause.errno != socket.EAI_AGAIN


class _Retry(urllib3.Retry):
    """urllib3's ``Retry`` that reports connection-level failures to ``HostHealth`` and stops
    retrying a host given up on (by this row or another), a name that does not exist, or a
    certificate that is not trusted."""

    def __init__(self, *args, hosts: HostHealth | None = None, host: str = "", max_wait: float = 60.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts, self.host, self.max_wait = hosts, host, max_wait

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.hosts, retry.host, retry.max_wait = self.hosts, self.host, self.max_wait
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.max_wait)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        reason = connection_failure(error) if error is not None else None
        if reason is not None:
            if self.hosts is not None:
                self.hosts.failed(self.host, reason)
            if isinstance(error, u3.NameResolutionError) and _dns_is_permanent(error):
                raise u3.MaxRetryError(_pool, url, error)
            if reason.startswith("TLS certificate"):
                raise u3.MaxRetryError(_pool, url, error)
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        retry.reason = reason
        return retry

    def sleep(self, response=None) -> None:
        super().sleep(response)
        if getattr(self, "reason", None) is not None and self.hosts is not None:
            self.hosts.check(self.host)  # given up meanwhile: no more tries, ``host unreachable (...)``


# --------------------------------------------------------------------------- sources


def locate(url: str, base_dir: str | os.PathLike) -> tuple[str, str]:
    """Where a catalog ``url`` points: ``("http", url)``, ``("file", path)`` or ``("tar", url)`` (a shard's member).

    Args:
        url: ``http(s)://...``, ``file://...``, or a path (relative to ``base_dir`` or absolute).
        base_dir: the folder of the catalog CSV.

    Raises:
        FetchError: empty URL, or a scheme other than http, https and file.
    """
    url = url.strip()
    if not url:
        raise FetchError("no url")
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "file", os.path.join(base_dir, url)
    name = scheme.group(1).lower()
    if name in ("http", "https"):
        return "http", url
    if name == TAR_SCHEME:  # a member of a TAR shard (``member_url``)
        return "tar", url
    if name == "file":
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"unsupported file URL host '{parts.netloc}'")
        return "file", os.path.join(base_dir, urllib.request.url2pathname(parts.path))
    raise FetchError(f"unsupported URL scheme '{name}'")


def member_url(shard: str | os.PathLike, offset: int, size: int, name: str) -> str:
    """The ``tar://`` URL of the member ``name`` whose bytes are ``size`` bytes at ``offset`` in ``shard``."""
    query = urllib.parse.urlencode({"offset": offset, "size": size})
    return f"{TAR_SCHEME}://{urllib.parse.quote(str(shard))}?{query}#{urllib.parse.quote(name)}"


def read_member(url: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a ``tar://`` member (``member_url``), read in place from its shard.

    Raises:
        OSError, ValueError: the shard cannot be read, or ends before the member does.
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    path = urllib.parse.unquote(parts.netloc + parts.path)
    offset, size = int(query["offset"][0]), int(query["size"][0])
    if size > max_bytes:
        raise ValueError(f"larger than {_megabytes(max_bytes)}")
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ValueError(f"{len(data)} of {size} bytes: the shard ends early")
    return data


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


class HttpClient:
    """Blocking HTTP(S) GETs over urllib3 pools; thread-safe, one per process and options.

    Args:
        options: timeout, retries, backoff, max_wait and max_bytes are used.
        maxsize: connections kept per host (the threads that share the client).
    """

    def __init__(self, options: FetchOptions, maxsize: int | None = None):
        self.options = options
        per_host = options.max_per_host  # block=True: a thread waits for one of the host's connections
        self._pool_args = dict(
            num_pools=64,
            maxsize=per_host or maxsize or options.threads,
            block=bool(per_host),
            headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.8"},
        )
        self._direct = urllib3.PoolManager(**self._pool_args)
        self._proxies = urllib.request.getproxies()
        self._proxy_managers: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every kept-alive connection."""
        self._direct.clear()
        for pm in self._proxy_managers.values():
            pm.clear()

    def _manager(self, parts: urllib.parse.SplitResult) -> urllib3.PoolManager:
        """The proxy manager for ``parts`` when the environment names a proxy for it, else the direct one."""
        proxy = self._proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._direct
        proxy = proxy if "://" in proxy else f"http://{proxy}"
        with self._lock:
            if proxy not in self._proxy_managers:
                self._proxy_managers[proxy] = urllib3.ProxyManager(proxy, **self._pool_args)
            return self._proxy_managers[proxy]

    def _retry(self, hosts: HostHealth | None, host: str) -> _Retry:
        o = self.options
        return _Retry(
            total=None,
            connect=o.retries,
            read=o.retries,
            status=o.retries,
            other=o.retries,
            redirect=0,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=o.backoff,
            backoff_jitter=o.backoff / 4,
            backoff_max=o.max_wait,
            raise_on_status=False,
            raise_on_redirect=False,
            hosts=hosts,
            host=host,
            max_wait=o.max_wait,
        )

    def get(self, url: str, hosts: HostHealth | None = None) -> bytes:
        """The body of ``url``, retrying transient failures and following redirects.

        Args:
            url: an http(s) URL.
            hosts: the run's fail-fast state (None: no fail-fast).

        Raises:
            FetchError: the reason it could not be fetched.
        """
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise FetchError(f"redirect to unsupported URL scheme '{parts.scheme}'")
            if not parts.hostname:
                raise FetchError("bad URL (no host)")
            host = host_of(parts)
            if hosts is not None:
                hosts.check(host)
            response = self._open(url, parts, hosts, host)
            if hosts is not None:
                hosts.succeeded(host)
            code = response.status
            location = response.headers.get("Location") if code in _REDIRECT_CODES else None
            if location or not 200 <= code < 300:
                _drain(response)
                if location:
                    url = urllib.parse.urljoin(url, location)
                    continue
                raise FetchError(f"HTTP {code}")
            return self._read_body(response)
        raise FetchError("too many redirects")

    def _open(self, url: str, parts, hosts: HostHealth | None, host: str):
        timeout = self.options.timeout
        try:
            return self._manager(parts).urlopen(
                "GET",
                url,
                redirect=False,
                retries=self._retry(hosts, host),
                preload_content=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
            )
        except u3.MaxRetryError as exc:
            raise _reason(exc.reason, timeout) from exc
        except u3.LocationValueError as exc:  # a port that is not a number, an empty host, ...
            raise FetchError(f"bad URL ({exc})") from exc
        except (u3.HTTPError, OSError) as exc:
            raise _reason(exc, timeout) from exc
        except (ValueError, UnicodeError) as exc:  # a host name IDNA cannot encode, ...
            raise FetchError(f"bad URL ({exc})") from exc

    def _read_body(self, response) -> bytes:
        """The body, streamed under the size cap and the attempt's time limit."""
        limit, timeout = self.options.max_bytes, self.options.timeout
        deadline = time.monotonic() + timeout
        length = response.headers.get("Content-Length", "")
        try:
            if length.strip().isdigit() and int(length) > limit:
                raise FetchError(f"body larger than {_megabytes(limit)}")
            chunks, total = [], 0
            for chunk in response.stream(_READ_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise FetchError(f"body larger than {_megabytes(limit)}")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise FetchError(f"timeout after {timeout:g}s")
        except FetchError:
            response.close()
            response.release_conn()
            raise
        except (u3.HTTPError, OSError) as exc:
            response.close()
            response.release_conn()
            raise _reason(exc, timeout) from exc
        response.release_conn()
        return b"".join(chunks)


def _drain(response) -> None:
    """Read an unwanted (error or redirect) body when small, so the connection is reused; else drop it."""
    length = response.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) <= _DRAIN_LIMIT:
        response.drain_conn()
    else:
        response.close()
    response.release_conn()


def _reason(error: BaseException, timeout: float) -> FetchError:
    """The manifest reason of a urllib3 or socket error."""
    if isinstance(error, FetchError):
        return error
    connection = connection_failure(error)
    if connection == "connect timeout":
        return FetchError(f"connect timeout ({timeout:g}s)")
    if connection is not None:
        return FetchError(connection)
    if isinstance(error, (u3.ReadTimeoutError, TimeoutError, socket.timeout)):
        return FetchError(f"timeout after {timeout:g}s")
    if isinstance(error, u3.ProtocolError):
        cause = error.args[1] if len(error.args) > 1 else None
        if isinstance(cause, u3.IncompleteRead) or "IncompleteRead" in str(error):
            return FetchError("incomplete body")
        if isinstance(cause, (ConnectionResetError, ConnectionAbortedError)) or "RemoteDisconnected" in str(error):
            return FetchError("connection closed by server")
        return FetchError(f"bad HTTP response ({type(cause).__name__ if cause else 'protocol error'})")
    if isinstance(error, u3.ResponseError):
        return FetchError(f"bad HTTP response ({error})")
    if isinstance(error, OSError):
        return FetchError(f"connection error ({error.strerror or type(error).__name__})")
    return FetchError(f"connection error ({type(error).__name__})")


@functools.lru_cache(maxsize=8)
def client_for(options: FetchOptions) -> HttpClient:
    """This process's ``HttpClient`` for ``options`` (connections are kept alive across calls)."""
    return HttpClient(options)


def read_source(url: str, options: FetchOptions = FetchOptions(), hosts: HostHealth | None = None) -> bytes:
    """The raw bytes a catalog ``url`` points to (downloaded, or read from a file).

    Args:
        url: ``http(s)://``, ``file://`` or a path relative to ``options.base_dir``.
        options: timeout, retries, size cap and base folder.
        hosts: the run's fail-fast state (None: none).

    Raises:
        FetchError: why it could not be read.
    """
    kind, where = locate(url, options.base_dir)
    if kind == "file":
        return read_file(where, options.max_bytes)
    if kind == "tar":
        try:
            return read_member(where, options.max_bytes)
        except (OSError, ValueError, KeyError) as exc:
            raise FetchError(f"unreadable member ({exc})") from exc
    return client_for(options).get(where, hosts)


# --------------------------------------------------------------------------- one row


def check_name(value: str, what: str) -> None:
    """Refuse a file or folder name that is empty, a path, ``.``/``..`` or has control characters."""
    if value in ("", ".", "..") or any(c in "/\\" or c < " " for c in value) or os.path.isabs(value):
        raise FetchError(f"unsafe {what} '{value}'")


def output_path(out_dir: str | os.PathLike, image_id: str, landmark_id: str | None) -> Path:
    """``out_dir/<landmark_id>/<id>.jpg`` (``out_dir/<id>.jpg`` when ``landmark_id`` is None).

    Raises:
        FetchError: an id or landmark id that is empty or would write outside ``out_dir``.
    """
    check_name(image_id, "id")
    if landmark_id is None:
        return Path(out_dir) / f"{image_id}.jpg"
    if landmark_id == "":
        raise FetchError("bad landmark_id (empty)")
    check_name(landmark_id, "landmark_id")
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
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def _text(value: Any) -> str:
    """A catalog value as text; missing (None, NaN, pandas NA) -> ``""``; 7.0 -> ``"7"``."""
    try:
        missing = value is None or bool(value != value)
    except TypeError:  # pandas NA: its comparisons are NA, which has no truth value
        missing = True
    if missing:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def fetch_row(
    row: Mapping[str, Any], out_dir: str | os.PathLike, options: FetchOptions, hosts: HostHealth | None = None
) -> tuple[dict[str, str], bool]:
    """Fetch, convert and store one row; never raises.

    Args:
        row: ``id``, ``url``, ``landmark_id`` (for ``options.labelled``); optional ``problem``
            (a catalog problem such as ``no url``: the row fails with it, nothing is fetched)
            and ``previous`` (an earlier ``ok`` manifest row: kept when its image is in place).
        out_dir: the output folder.
        options: how to fetch and store.
        hosts: the run's fail-fast state.

    Returns:
        (manifest row, resumed): ``resumed`` is True when ``row["previous"]`` was kept; a
        failed row's old image, if any, is removed.
    """
    start = time.monotonic()
    image_id, url, label = _text(row.get("id")), _text(row.get("url")), _text(row.get("landmark_id"))
    out = dict.fromkeys(manifest.COLUMNS, "")
    out.update(id=image_id, url=url, landmark_id=label, status="failed")
    target = None
    try:
        problem = _text(row.get("problem"))
        if problem:  # found in the catalog: nothing to fetch, and no file of this row's to touch
            raise FetchError(problem)
        target = output_path(out_dir, image_id, label if options.labelled else None)
        previous = row.get("previous")
        if isinstance(previous, Mapping) and previous.get("url") == url and is_valid_output(target, options.size):
            return {c: str(previous.get(c, "")) for c in manifest.COLUMNS}, True
        data = read_source(url, options, hosts)
        out["bytes"] = str(len(data))
        img = images.open_image(data, options.max_pixels)
        out.update(width=str(img.width), height=str(img.height), format=img.format or "")
        square = images.resize_square(images.to_rgb(img, options.size), options.size, options.resize)
        encoded = images.encode_jpeg(square, options.quality)
        try:
            write_atomic(target, encoded)
        except OSError as exc:
            raise FetchError(f"write error ({exc.strerror or exc})") from exc
        out["status"] = "ok"
    except images.ImageError as exc:  # a shard's member that is not an image: the member is what is broken
        out["error"] = f"unreadable member ({exc})" if url.startswith(f"{TAR_SCHEME}://") else str(exc)
    except FetchError as exc:
        out["error"] = str(exc)
    except Exception as exc:  # a row never stops the run: record the unexpected, too
        out["error"] = f"internal error ({type(exc).__name__}: {exc})"
    if out["status"] == "failed":
        _remove(target)  # as the study did: no image for a row that failed
    out["seconds"] = f"{time.monotonic() - start:.3f}"
    return out, False


@functools.lru_cache(maxsize=4)
def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """This process's download threads (kept across calls)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch")


def iter_fetch(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    options: FetchOptions,
    hosts: HostHealth | None = None,
) -> Iterator[tuple[int, dict[str, str], bool]]:
    """``fetch_row`` over ``rows`` on ``options.threads`` threads; yield ``(position, manifest row,
    resumed)`` as rows complete. ``rows`` is read lazily: memory holds the rows in flight."""
    import queue

    source = enumerate(rows)
    lock = threading.Lock()
    stop = threading.Event()
    results: queue.SimpleQueue = queue.SimpleQueue()
    done = object()

    def next_row():
        with lock:
            return None if stop.is_set() else next(source, None)

    def work() -> None:
        try:
            while (item := next_row()) is not None:
                position, row = item
                results.put((position, *fetch_row(row, out_dir, options, hosts)))
        except BaseException as exc:  # the row source broke: hand it to the consumer
            results.put(exc)
        finally:
            results.put(done)

    pool = _thread_pool(options.threads)
    for _ in range(options.threads):
        pool.submit(work)
    running = options.threads
    try:
        while running:
            item = results.get()
            if item is done:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()


def fetch_rows(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    options: FetchOptions = FetchOptions(),
    hosts: HostHealth | None = None,
) -> list[tuple[dict[str, str], bool]]:
    """``(manifest row, resumed)`` for each of ``rows``, in input order (see ``fetch_row``)."""
    done = {position: (row, resumed) for position, row, resumed in iter_fetch(rows, out_dir, options, hosts)}
    return [done[i] for i in range(len(done))]


def fetch_chunk(
    rows, out_dir: str | os.PathLike, options: FetchOptions = FetchOptions(), hosts: HostHealth | None = None
):
    """The core: a chunk of catalog rows -> their manifest rows, in the same order.

    No global state beyond this process's connection pools and threads: a distributed
    engine maps this over shards of a catalog (the same ``out_dir`` and ``options`` for
    all) and concatenates the results.

    Args:
        rows: a DataFrame (or mappings) with ``id``, ``url`` and, for ``options.labelled``,
            ``landmark_id``; optional ``problem`` (the row fails with it, unfetched) and
            ``previous`` (an earlier ``ok`` manifest row, as a dict, kept when its image is valid).
        out_dir: the output folder.
        options: how to fetch and store (``options.threads`` downloads in flight).
        hosts: fail-fast state to share between calls of one run in this process; None
            gives this call its own.

    Returns:
        pandas.DataFrame of ``manifest.COLUMNS`` (all text), one row per input row.
    """
    import pandas as pd

    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    hosts = hosts if hosts is not None else HostHealth(options.fail_fast_after)
    done = [row for row, _ in fetch_rows(rows, out_dir, options, hosts)]
    return pd.DataFrame(done, columns=list(manifest.COLUMNS), dtype=object)
