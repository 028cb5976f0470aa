"""Acceptance: the rendered report opens in headless Chromium with no network, every image drawn, no errors.

Chromium is driven over the DevTools protocol (``websocket-client``); the test is skipped, with the
reason, where no Chromium is installed (Debian: ``apt-get install -y chromium``; CI installs it).
The pages come from the end-to-end run of ``test_end_to_end`` (all six notebooks on a tiny sample, run
once per session). A full-page screenshot of the report is taken (into the test's temporary folder).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import E2E_METRICS as METRICS
from conftest import NOTEBOOKS as NOTEBOOK_PATHS
from conftest import read_metrics as metrics

NOTEBOOKS = [p.stem for p in NOTEBOOK_PATHS]

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-port=0",
]


class DevTools:
    """A minimal DevTools-protocol client for one page: commands, and the events seen meanwhile."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.events: list[dict] = []
        self._id = 0

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile; yields a function that opens a page and reports on it."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        yield lambda path, screenshot=None: open_page(tools, path, screenshot)
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def open_page(tools: DevTools, path: Path, screenshot: Path | None = None) -> dict:
    """Load ``path``; return its images, errors and network requests; optionally save a full-page screenshot."""
    tools.events.clear()
    tools.call("Page.navigate", url=path.resolve().as_uri())
    tools.wait_for("Page.loadEventFired")
    images = tools.call(
        "Runtime.evaluate",
        returnByValue=True,
        expression="""
        Array.from(document.images).map(i => ({src: i.src.slice(0, 40), complete: i.complete,
                                                width: i.naturalWidth, height: i.naturalHeight}))""",
    )["result"]["value"]
    title = tools.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
    errors = []
    for e in tools.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(f"{details.get('text', '')} {details.get('exception', {}).get('description', '')}".strip())
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    requests = [e["params"]["request"]["url"] for e in tools.events if e.get("method") == "Network.requestWillBeSent"]
    if screenshot is not None:
        size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = tools.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": min(size["height"], 30000), "scale": 0.5},
        )
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return {"images": images, "errors": errors, "requests": requests, "title": title}


@pytest.fixture(scope="module")
def run(end_to_end):
    base, proc = end_to_end
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base


def _offline(requests: list[str]) -> list[str]:
    return [u for u in requests if not u.startswith(("file:", "data:"))]


def test_report_page_renders_every_image_offline_without_errors(browser, run, tmp_path):
    screenshot = tmp_path / "report-screenshot.png"
    result = browser(run / "reports" / "html" / "report.html", screenshot)
    assert result["errors"] == []
    assert _offline(result["requests"]) == []
    assert len(result["images"]) == sum(len(metrics(run, m)["figures"]) for m in METRICS)  # every notebook's
    for img in result["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    from PIL import Image

    with Image.open(screenshot) as shot:
        assert shot.width == 640 and shot.height > 1000
        # the page is not blank: many distinct colours (text, tables, figures)
        assert len(shot.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100


def test_index_and_notebook_pages_render_without_errors(browser, run):
    pages = run / "reports" / "html"
    for name in ["index.html", *(f"{n}.html" for n in NOTEBOOKS)]:
        result = browser(pages / name)
        assert result["errors"] == [], name
        assert _offline(result["requests"]) == [], name
        assert all(i["complete"] and i["width"] > 0 for i in result["images"]), name
    assert browser(pages / "index.html")["title"].startswith("Landmark recognition: run e2e")
