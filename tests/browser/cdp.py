"""A small synchronous Chrome DevTools Protocol client over the `websockets` package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from websockets.sync.client import connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--ignore-certificate-errors", "--window-size=1280,900", "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium with a fresh profile, driven through one page target."""

    def __init__(self, executable: str, profile: Path, log: Path, extra_flags: tuple[str, ...] | list[str] = (),
                 verify_certificates: bool = False):
        """``verify_certificates``: drop --ignore-certificate-errors (the test trusts its CA by other means)."""
        self.log_path = log
        self._log = open(log, "wb")
        flags = [f for f in CHROMIUM_FLAGS if not (verify_certificates and f == "--ignore-certificate-errors")]
        self.proc = subprocess.Popen([executable, *flags, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page_ws = None
        while page_ws is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                targets = json.loads(resp.read())
            page_ws = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            if page_ws is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium has no page target")
                time.sleep(0.1)
        # entered as a context manager (websockets >= 17 warns otherwise); closed in close()
        self.ws = connect(page_ws, max_size=None, open_timeout=30).__enter__()
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._id += 1
        ident = self._id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                   since: int = 0) -> dict[str, Any]:
        """The first event (from index ``since``) matching ``predicate``, reading more as needed."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for a DevTools event")
            try:
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                continue
            if "method" in message:
                self.events.append(message)

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        start = len(self.events)
        self.send("Page.navigate", url=url)
        self.wait_event(lambda e: e["method"] == "Page.loadEventFired", timeout, since=start)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def poll(self, expression: str, done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if done(value):
                return value
            time.sleep(0.1)
        return value

    def responses(self) -> list[dict[str, Any]]:
        return [e["params"]["response"] for e in self.events if e["method"] == "Network.responseReceived"]

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        self._log.close()
