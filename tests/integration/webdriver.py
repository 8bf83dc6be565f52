"""A page as a person sees it, through Debian's chromedriver and Chromium (W3C WebDriver over HTTP,
no client library): which sections are displayed, and every request the page itself made (the
browser's own update and time checks are not the page's, and are not counted)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from aiaudit.pipeline.report.browser import QUIET, chromium

# Not the network: the browser's own pages, and data: URLs (inline bytes, nothing leaves the machine).
BROWSER_OWN = ("chrome://", "chrome-untrusted://", "chrome-extension://", "devtools://", "data:")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    def __init__(self, http: httpx.Client, session: str) -> None:
        self.http, self.session = http, session

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.request(method, f"/session/{self.session}{path}", json=body)
        value = r.json()["value"]
        if r.status_code != 200:
            raise AssertionError(f"webdriver {path}: {value}")
        return value

    def open(self, page: Path) -> None:
        self._call("POST", "/url", {"url": page.resolve().as_uri()})

    def go(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return str(self._call("GET", "/url"))

    def find(self, css: str) -> str:
        found = self._call("POST", "/element", {"using": "css selector", "value": css})
        return str(next(iter(found.values())))

    def type(self, css: str, text: str) -> None:
        ref = self.find(css)
        self._call("POST", f"/element/{ref}/clear", {})
        self._call("POST", f"/element/{ref}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css: str = "body") -> str:
        """The rendered text of the first element `css` selects ("" when none): read in one script, so a
        page that navigates meanwhile gives its old or its new text, never a stale element."""
        return str(self.script("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css))

    def script(self, js: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": js, "args": list(args)})

    def script_async(self, js: str, *args: Any) -> Any:
        """Run `js`, which calls its last argument (a callback) with the answer."""
        return self._call("POST", "/execute/async", {"script": js, "args": list(args)})

    def displayed(self, css: str) -> bool:
        found = self._call("POST", "/element", {"using": "css selector", "value": css})
        ref = next(iter(found.values()))  # {"element-6066-…": id}: the one member is the reference
        return bool(self._call("GET", f"/element/{ref}/displayed"))

    def requests(self) -> list[str]:
        """URLs of every request the pages opened since the last call made, from the browser's network
        log (the browser's own pages, chrome:// and the like, are not the network and not counted)."""
        urls = []
        for entry in self._call("POST", "/se/log", {"type": "performance"}):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if not url.startswith(BROWSER_OWN):
                    urls.append(url)
        return urls

    def screenshot(self, png: Path) -> None:
        import base64

        png.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))


@contextmanager
def browser(width: int = 1200, height: int = 2400, downloads: Path | None = None) -> Iterator[Page]:
    driver = shutil.which("chromedriver")
    if driver is None:
        raise AssertionError("chromedriver is not installed: apt-get install chromium-driver")
    port = _free_port()
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory(prefix="aiaudit-webdriver-") as profile, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    http.get("/status")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:loggingPrefs": {"performance": "ALL"},
                "goog:chromeOptions": {"binary": chromium(), "args": [*QUIET, f"--user-data-dir={profile}",
                                                                      f"--window-size={width},{height}"],
                                       **({"prefs": {"download.default_directory": str(downloads),
                                                     "download.prompt_for_download": False}} if downloads else {})}}}}
            r = http.post("/session", json=caps)
            session = r.json()["value"].get("sessionId")
            if session is None:
                raise AssertionError(f"chromedriver gave no session: {r.text[:500]}")
            try:
                yield Page(http, session)
            finally:
                http.delete(f"/session/{session}")
    finally:
        proc.terminate()
        proc.wait(10)
