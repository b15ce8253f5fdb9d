"""A headless Chromium driven through chromedriver's W3C WebDriver HTTP API (Debian's chromium + chromium-driver).

Only what the dashboard test needs: open pages, type, click, run JavaScript, take a screenshot, and send Chrome
DevTools commands (to record the dashboard's chart-data responses from the first page load on).
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C name of the element id in WebDriver answers


def find_executable(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One chromedriver process and one headless Chromium session; use as a context manager."""

    def __init__(self, chromedriver: str, chromium: str, log_file: Path, width: int = 1600, height: int = 2000):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log_file, "w")  # noqa: SIM115 - closed in close()
        self._driver = subprocess.Popen(
            [chromedriver, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._http = requests.Session()
        self._http.trust_env = False
        self._wait_ready()
        options = {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",  # tests may run as root (CI containers)
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--disable-extensions",
                f"--window-size={width},{height}",
            ],
        }
        answer = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})
        self.session = f"/session/{answer['sessionId']}"

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._driver.poll() is not None:
                raise WebDriverError(f"chromedriver exited with code {self._driver.returncode}")
            try:
                if self._http.get(f"{self.base}/status", timeout=2).json()["value"]["ready"]:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise WebDriverError(f"chromedriver not ready after {timeout:.0f} s")

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self._http.request(method, f"{self.base}{path}", json=body, timeout=120)
        value = response.json().get("value")
        if response.status_code >= 400:
            message = value.get("message", value) if isinstance(value, dict) else value
            raise WebDriverError(f"{method} {path}: {message}")
        return value

    # Page ---------------------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def run_js(self, script: str, *args: Any) -> Any:
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self._call("POST", f"{self.session}/element", {"using": "css selector", "value": css})[ELEMENT_KEY]

    def type_into(self, css: str, text: str) -> None:
        """Replace the field's content with `text` (WebDriver's Element Clear, then keystrokes)."""
        element = self.find(css)
        self._call("POST", f"{self.session}/element/{element}/clear", {})
        self._call("POST", f"{self.session}/element/{element}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"{self.session}/element/{self.find(css)}/click", {})

    def wait_for(self, script: str, timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll a JavaScript expression (a `return ...` body) until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.run_js(script)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"{what}: not true after {timeout:.0f} s (last value {value!r})")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", f"{self.session}/screenshot")))
        return path

    def devtools(self, command: str, params: dict | None = None) -> Any:
        """A Chrome DevTools Protocol command through chromedriver."""
        return self._call("POST", f"{self.session}/goog/cdp/execute", {"cmd": command, "params": params or {}})

    # Lifecycle ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        except (WebDriverError, requests.RequestException, AttributeError):
            pass
        self._driver.terminate()
        try:
            self._driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._driver.kill()
            self._driver.wait()
        self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
