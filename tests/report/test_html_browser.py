"""The rendered reports in a real browser: headless Chromium driven over the DevTools protocol.

Each report is opened from disk with the Network, Runtime, Log and Page domains enabled. The test
fails on any request that leaves the file (anything but the page itself and ``data:`` URIs), any
failed load, any console error or warning, any uncaught exception and any Content-Security-Policy
violation; it checks that every figure decoded, and keeps a full-page screenshot in
``tests/artifacts/``. Skipped only when no Chromium is installed (CI installs Debian's
``chromium``).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from test_render import ARTIFACTS, rendered_demo

from rehabstats.report import REPORTS

websocket = pytest.importorskip("websocket", reason="websocket-client (a Jupyter dependency)")

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
]


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page target."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        call_id = self.next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        self.ws.settimeout(60)  # wait_for/drain shorten it; a screenshot takes a while
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))

    def drain(self, seconds: float) -> None:
        """Collect events for a while (late requests, late console messages)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                break

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser():
    profile = Path(tempfile.mkdtemp(prefix="rehabstats-chromium-"))
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(port: int) -> DevTools:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        target = json.loads(response.read())
    return DevTools(target["webSocketDebuggerUrl"])


@pytest.mark.parametrize("report", list(REPORTS))
def test_report_renders_offline_without_errors(browser, report):
    html_path = rendered_demo()[report].resolve()
    url = html_path.as_uri()
    page = open_page(browser)
    try:
        for domain in ("Network", "Runtime", "Log", "Page"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        page.send("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        page.drain(1.0)

        events = page.events
        requested = [e["params"]["request"]["url"] for e in events
                     if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip
        outside = [u for u in requested if u != url and not u.startswith("data:")]
        assert outside == [], f"the report requested {outside[:5]}"
        failed = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
        assert failed == []
        exceptions = [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
        assert exceptions == []
        console = [
            e["params"] for e in events
            if e.get("method") == "Runtime.consoleAPICalled"
            and e["params"]["type"] in ("error", "warning", "assert")
        ]  # fmt: skip
        assert console == []
        logged = [
            e["params"]["entry"] for e in events
            if e.get("method") == "Log.entryAdded"
            and e["params"]["entry"]["level"] in ("error", "warning")
        ]  # fmt: skip
        assert logged == [], logged

        state = page.send(
            "Runtime.evaluate",
            expression="""JSON.stringify({
                title: document.title,
                h1: [...document.querySelectorAll('h1')].map(e => e.textContent.trim()),
                h2: document.querySelectorAll('h2').length,
                images: document.images.length,
                broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
                tables: document.querySelectorAll('table.rs-table').length,
                scripts: document.scripts.length,
                width: document.documentElement.scrollWidth,
                height: document.documentElement.scrollHeight,
            })""",
            returnByValue=True,
        )["result"]["value"]
        state = json.loads(state)
        assert state["title"] == REPORTS[report].title
        assert state["h1"] == [REPORTS[report].title]
        assert state["h2"] >= 5
        assert state["images"] >= 6 and state["broken"] == 0
        assert state["tables"] >= 5
        assert state["scripts"] == 0
        assert state["width"] <= 1280, "the page overflows a 1280 px window horizontally"

        height = min(int(state["height"]), 30000)
        page.send("Emulation.setDeviceMetricsOverride", width=1280, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / f"{report}.png"
        target.write_bytes(base64.b64decode(shot["data"]))
        assert target.stat().st_size > 50_000
    finally:
        page.close()


def _evaluate(page: DevTools, expression: str) -> dict:
    value = page.send("Runtime.evaluate", expression=expression, returnByValue=True)
    return json.loads(value["result"]["value"])


def _open(browser, report: str) -> DevTools:
    page = open_page(browser)
    for domain in ("Network", "Runtime", "Page"):
        page.send(f"{domain}.enable")
    page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900,
              deviceScaleFactor=1, mobile=False)  # fmt: skip
    page.send("Page.navigate", url=rendered_demo()[report].resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    page.drain(0.5)
    return page


def test_cohort_report_shows_the_return_to_running(browser):
    page = _open(browser, "cohort_report")
    try:
        state = _evaluate(
            page,
            """JSON.stringify((() => {
            const heading = [...document.querySelectorAll('h2')]
                .find(e => e.textContent.trim().startsWith('Return to running'));
            const block = document.querySelector('[data-rs-section="return_to_running"]');
            const images = block ? [...block.querySelectorAll('img')] : [];
            const fidelity = document.querySelector('[data-rs-section="checkpoint_fidelity"]');
            return {
                heading: !!heading,
                after_heading: !!(heading && block
                    && heading.compareDocumentPosition(block) & Node.DOCUMENT_POSITION_FOLLOWING),
                images: images.length,
                drawn: images.filter(i => i.complete && i.naturalWidth > 300
                                          && i.naturalHeight > 150).length,
                alts: images.map(i => i.alt),
                tables: block ? block.querySelectorAll('table.rs-table').length : 0,
                text: block ? block.textContent : '',
                fidelity: fidelity ? fidelity.textContent : '',
            };
        })())""",
        )
        assert state["heading"] and state["after_heading"]
        # the demo cohort runs: the weekly volume and the ACWR distribution are drawn
        assert state["images"] == 2 and state["drawn"] == 2
        assert state["alts"] == [
            "Weekly running minutes by week since the first run",
            "Distribution of the daily acute:chronic workload ratio",
        ]
        # return to running and readiness; relapse after spikes: the rates, then the rate ratio
        assert state["tables"] == 3
        assert "Returned before meeting the criteria" in state["text"]
        assert "not validated injury cut-offs" in state["text"]
        assert "Rate ratio" in state["text"] or "rate ratio" in state["text"]
        assert "Exercise quality: lowering under 3 s" in state["fidelity"]
        assert "back-to-back heavy days" in state["fidelity"]
    finally:
        page.close()


def test_clinic_audit_shows_the_running_review_reasons_and_readiness(browser):
    page = _open(browser, "clinic_audit")
    try:
        state = _evaluate(
            page,
            """JSON.stringify({
            tiles: [...document.querySelectorAll('.rs-kpi-label')].map(e => e.textContent),
            reasons: document.querySelector('[data-rs-section="review_list"]').textContent,
            settings: document.querySelector('[data-rs-section="audit_settings"]').textContent,
        })""",
        )
        assert "Return-to-sport criteria met before the return" in state["tiles"]
        for reason in ("ACWR spike in the last 7 days",
                       "Returned to running before meeting the criteria",
                       "Rushed lowering in recent sessions"):  # fmt: skip
            assert reason in state["reasons"]
        assert (
            "Return-to-sport criteria met before the return to running or sport"
            in (state["settings"])
        )
    finally:
        page.close()
