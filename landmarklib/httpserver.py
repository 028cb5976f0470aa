"""A real HTTP server on 127.0.0.1 for tests and benchmarks, with configurable routes.

    with HttpTestServer(latency=0.05) as server:
        server.route("/a.jpg", image(jpeg_bytes(800, 600)))
        server.route("/flaky.jpg", sequence(status(500), image(body)))
        server.serve_directory("/data/images", prefix="/images/")
        fetch(server.url("/a.jpg"))
        assert server.hits["/a.jpg"] == 1

A route is a callable ``(handler, hit_number) -> None`` that writes the whole response;
the helpers below build the usual ones: a 200 image, a status code, a redirect, 429 with
Retry-After, a slow response, an oversized body, a sequence of responses for successive
hits. The server speaks HTTP/1.1 with keep-alive, answers each request in its own thread
after ``latency`` seconds, and counts hits (and their times) per path.

Tests that kill a client mid-run use two more parts, so that nothing depends on timing:
``Gate`` holds every request after the first few until the test opens it (the run cannot
finish before it is killed), and ``forget_clients`` drops every connection made so far
(a killed client's requests still queued in the kernel can no longer be counted later).
"""

from __future__ import annotations

import collections
import io
import mimetypes
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Route = Callable[[BaseHTTPRequestHandler, int], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # many concurrent connects, none refused

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # clients hanging up are normal
            super().handle_error(request, client_address)


class HttpTestServer:
    """An HTTP server on 127.0.0.1 in a background thread.

    Args:
        latency: seconds every response waits before it starts (simulates a remote server).
        keep_alive: speak HTTP/1.1 with persistent connections (else HTTP/1.0, one per request).
        port: the port to listen on (0: any free one).
    """

    def __init__(self, latency: float = 0.0, keep_alive: bool = True, port: int = 0):
        self.latency = latency
        self.routes: dict[str, Route] = {}
        self.directories: list[tuple[str, Path]] = []
        self.hits: collections.Counter[str] = collections.Counter()
        self.hit_times: dict[str, list[float]] = collections.defaultdict(list)
        self.connections = 0  # TCP connections accepted (keep-alive reuses them)
        self._lock = threading.Lock()
        self._generation = 0  # forget_clients() starts a new one; older connections are not served
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner.connections += 1
                    self.generation = owner._generation

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                with owner._lock:
                    if self.generation != owner._generation:  # a client forgotten: neither counted nor served
                        self.close_connection = True
                        return
                    owner.hits[path] += 1
                    owner.hit_times[path].append(time.monotonic())
                    hit = owner.hits[path]
                if owner.latency:
                    time.sleep(owner.latency)
                try:
                    owner._find(path)(self, hit)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args) -> None:  # quiet
                pass

        self._handler = Handler
        self._server = _Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = self._serving_thread()

    def _serving_thread(self) -> threading.Thread:
        return threading.Thread(target=self._server.serve_forever, args=(0.05,), name="http-test-server", daemon=True)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, route: Route) -> str:
        """Serve ``route`` at ``path``; return its URL."""
        self.routes[path] = route
        return self.url(path)

    def serve_directory(self, root: str | Path, prefix: str = "/") -> None:
        """Serve the files under ``root`` at ``prefix<relative path>`` (content type from the name)."""
        self.directories.append((prefix, Path(root)))

    def total_hits(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def reset_hits(self) -> None:
        with self._lock:
            self.hits.clear()
            self.hit_times.clear()

    def forget_clients(self) -> None:
        """Drop every client so far, then listen again on the same port with the hit counts cleared.

        The listening socket is closed (connections still queued in the kernel are reset) and
        requests on connections accepted before are neither counted nor served. A test that has
        killed a client calls this before it counts the next run's requests: the dead client's
        last requests cannot turn up among them, however late the server would have read them.
        """
        with self._lock:
            self._generation += 1
            self.hits.clear()
            self.hit_times.clear()
        self._server.shutdown()
        self._server.server_close()
        self._server = _Server(("127.0.0.1", self.port), self._handler)
        self._thread = self._serving_thread()
        self._thread.start()

    def _find(self, path: str) -> Route:
        if path in self.routes:
            return self.routes[path]
        for prefix, root in self.directories:
            if path.startswith(prefix):
                file = (root / path[len(prefix) :]).resolve()
                if root.resolve() in file.parents and file.is_file():
                    return image(file.read_bytes(), mimetypes.guess_type(file.name)[0] or "application/octet-stream")
        return status(404)

    def start(self) -> HttpTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- routes


def _send(
    handler: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str, headers: dict | None = None
) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def image(body: bytes, content_type: str = "image/jpeg") -> Route:
    """200 with ``body``."""
    return lambda handler, hit: _send(handler, 200, body, content_type)


def status(code: int, body: bytes = b"error\n", headers: dict | None = None) -> Route:
    """``code`` with a short text body and optional headers."""
    return lambda handler, hit: _send(handler, code, body, "text/plain", headers)


def text(body: bytes = b"<html><body>not an image</body></html>") -> Route:
    """200 with an HTML page."""
    return lambda handler, hit: _send(handler, 200, body, "text/html")


def redirect(location: str, code: int = 302) -> Route:
    """A redirect to ``location``."""
    return status(code, b"", {"Location": location})


def retry_after(seconds: int, code: int = 429) -> Route:
    """429 (or 503) asking the client to wait ``seconds``."""
    return status(code, b"slow down\n", {"Retry-After": str(seconds)})


def sequence(*routes: Route) -> Route:
    """Successive hits get successive routes; the last one repeats."""
    return lambda handler, hit: routes[min(hit, len(routes)) - 1](handler, hit)


def slow(delay: float, route: Route) -> Route:
    """``route`` after ``delay`` more seconds."""

    def serve(handler: BaseHTTPRequestHandler, hit: int) -> None:
        time.sleep(delay)
        route(handler, hit)

    return serve


def oversized(n_bytes: int, declare_length: bool = True) -> Route:
    """A body of ``n_bytes`` zeros, streamed; with or without a Content-Length header."""

    def serve(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        if declare_length:
            handler.send_header("Content-Length", str(n_bytes))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        chunk = b"\0" * 65536
        sent = 0
        while sent < n_bytes:
            part = chunk[: min(len(chunk), n_bytes - sent)]
            handler.wfile.write(part)
            sent += len(part)

    return serve


def trickle(body: bytes, chunk: int, pause: float) -> Route:
    """200 with ``body`` sent ``chunk`` bytes at a time, ``pause`` seconds apart (a stalling server)."""

    def serve(handler: BaseHTTPRequestHandler, hit: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for start in range(0, len(body), chunk):
            handler.wfile.write(body[start : start + chunk])
            handler.wfile.flush()
            time.sleep(pause)

    return serve


class Gate:
    """Serves the first ``free`` requests through it at once and holds the others until ``open()``.

    A test that kills a run mid-way wraps the run's routes in one gate: the run cannot finish
    before the test kills it, however slowly the test's own process gets the CPU. A held request
    is served anyway after ``deadline`` seconds, so that a test that fails before ``open()``
    does not hang.

        gate = Gate(free=10)
        server.route("/a.jpg", gate(image(body)))
        ...  # wait for the run to finish 10 rows, kill it
        gate.open()
    """

    def __init__(self, free: int, deadline: float = 120.0):
        self.free, self.deadline = free, deadline
        self.served = 0  # requests let through, held ones included once released
        self._lock = threading.Lock()
        self._open = threading.Event()

    def __call__(self, route: Route) -> Route:
        def serve(handler: BaseHTTPRequestHandler, hit: int) -> None:
            with self._lock:
                free = self.served < self.free
                self.served += free
            if not free:
                self._open.wait(self.deadline)
                with self._lock:
                    self.served += 1
            route(handler, hit)

        return serve

    def open(self) -> None:
        """Let every held and later request through."""
        self._open.set()


# --- bodies


def jpeg_bytes(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    """A JPEG with smooth gradients and a few shapes (compresses like a photo, not like noise)."""
    import numpy as np  # test images only: the server itself needs neither
    from PIL import Image, ImageDraw  # as numpy

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, size=3)
    freq = rng.uniform(2, 9, size=3)
    channels = [127 + 120 * np.sin(freq[c] * (x / width + y / height) + phase[c]) for c in range(3)]
    img = Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(8, max(9, min(width, height) // 4)))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
