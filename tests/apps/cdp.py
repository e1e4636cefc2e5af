"""Headless Chromium driven through the DevTools protocol, and a static server for the web app.

Small on purpose: launch /usr/bin/chromium with a DevTools port, attach to its page over a
websocket (websocket-client), send commands and wait for their replies.
"""

from __future__ import annotations

import base64
import functools
import http.server
import itertools
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# A mid-range phone: Pixel 8 CSS viewport; 4x CPU slowdown as Lighthouse's mobile preset.
PHONE = {"width": 412, "height": 915, "deviceScaleFactor": 2.625, "mobile": True}
CPU_SLOWDOWN = 4
USER_AGENT = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/130.0 Mobile Safari/537.36")


class Page:
    """One page target: `call` sends a DevTools command and returns its result."""

    def __init__(self, url: str, timeout: float) -> None:
        import websocket

        self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)
        self.console: list[str] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"]["args"]
                self.console.append(" ".join(str(a.get("value", a.get("description")))
                                             for a in args))
            elif message.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(message["params"]["exceptionDetails"])[:500])
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll `expression` until it is truthy; its value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{expression} still false after {timeout} s; console: "
                           f"{self.console[-5:]}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._ws.close()


@contextmanager
def phone(profile: Path, throttle: float = CPU_SLOWDOWN, timeout: float = 120) -> Iterator[Page]:
    """A headless Chromium page emulating a phone (viewport, touch, user agent, CPU slowed
    `throttle` times); a DevTools command waits `timeout` seconds at most."""
    process = subprocess.Popen(
        [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                                    timeout=30).read())
        page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"],
                    timeout)
        try:
            page.call("Runtime.enable")
            page.call("Page.enable")
            page.call("Emulation.setDeviceMetricsOverride", **PHONE)
            page.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)
            page.call("Emulation.setUserAgentOverride", userAgent=USER_AGENT)
            page.call("Emulation.setCPUThrottlingRate", rate=throttle)
            yield page
        finally:
            page.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _devtools_port(path: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text().split()[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} before DevTools")
        time.sleep(0.1)
    raise TimeoutError(f"chromium wrote no {path} within 60 s")


@contextmanager
def serve(app: Path, bundles: dict[str, Path]) -> Iterator[str]:
    """Serve `app` at / and each bundle folder at /<name>/ on localhost; yields the base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".mjs": "text/javascript", ".wasm": "application/wasm"}

        def translate_path(self, path: str) -> str:
            first = path.lstrip("/").split("/", 1)[0]
            if first in bundles:
                rest = path.lstrip("/")[len(first):]
                return str(bundles[first]) + super().translate_path(rest or "/").removeprefix(
                    str(app))
            return super().translate_path(path)

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    handler = functools.partial(Handler, directory=str(app))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
