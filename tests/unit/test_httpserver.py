"""The test server's parts that keep the kill-and-resume tests free of timing: ``Gate`` and ``forget_clients``."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request

from landmarklib.httpserver import Gate, HttpTestServer, image


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def test_a_gate_serves_the_first_requests_and_holds_the_rest_until_opened():
    gate = Gate(free=2)
    with HttpTestServer() as server:
        url = server.route("/a", gate(image(b"body")))
        assert get(url) == get(url) == b"body"
        held: list[bytes] = []
        waiting = threading.Thread(target=lambda: held.append(get(url)))
        waiting.start()
        deadline = time.monotonic() + 60
        while server.hits["/a"] < 3 and time.monotonic() < deadline:  # the third request has arrived...
            time.sleep(0.01)
        assert server.hits["/a"] == 3 and waiting.is_alive() and not held  # ...and is held
        gate.open()
        waiting.join(30)
        assert held == [b"body"] and gate.served == 3
        assert get(url) == b"body" and gate.served == 4  # open: served at once


def test_forget_clients_neither_counts_nor_serves_an_older_connection():
    with HttpTestServer() as server:
        server.route("/a", image(b"body"))
        old = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        old.request("GET", "/a")
        assert old.getresponse().read() == b"body" and server.hits["/a"] == 1  # a keep-alive connection
        server.forget_clients()
        assert server.hits == {}
        old.request("GET", "/a")  # on the connection made before: the server closes it unanswered
        try:
            answered = old.getresponse().read()
        except (http.client.RemoteDisconnected, ConnectionError):
            answered = None
        assert answered is None and server.hits == {}
        assert get(server.url("/a")) == b"body" and server.hits["/a"] == 1  # a new client, on the same port
