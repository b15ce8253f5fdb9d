"""A small Superset REST API client: login (JWT) and CSRF token on first use, JSON calls, clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests


class SupersetError(RuntimeError):
    """Superset answered a request with an error; the message names the request and Superset's answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SupersetUnavailable(SupersetError):
    """Superset did not answer at all (not running, wrong address, network)."""


@dataclass
class SupersetClient:
    """Talks to one Superset as one user. Nothing happens on construction; the first call logs in.

    :param base_url: e.g. http://127.0.0.1:8088
    :param username: a Superset user allowed to import assets (an Admin).
    :param password: that user's password.
    :param timeout: seconds per HTTP request (chart queries included).
    """

    base_url: str
    username: str
    password: str
    timeout: float = 300.0

    @classmethod
    def from_connection(cls, conn: Any) -> SupersetClient:
        """From an Airflow connection: schema = http|https, host, port, login, password."""
        scheme = conn.schema or "http"
        port = f":{conn.port}" if conn.port else ""
        return cls(f"{scheme}://{conn.host}{port}", conn.login, conn.password)

    def __repr__(self) -> str:  # keeps the password out of logs
        return f"SupersetClient({self.base_url!r}, user={self.username!r})"

    # Session ------------------------------------------------------------------------------------------------
    @cached_property
    def session(self) -> requests.Session:
        """A logged-in session: bearer token for the API, CSRF token (bound to the session cookie) for writes."""
        import requests

        session = requests.Session()
        session.trust_env = False  # loopback or cluster-internal: no proxy from the environment
        login = self._send(
            session,
            "POST",
            "/api/v1/security/login",
            json={"username": self.username, "password": self.password, "provider": "db", "refresh": False},
        )
        session.headers["Authorization"] = f"Bearer {login['access_token']}"
        csrf = self._send(session, "GET", "/api/v1/security/csrf_token/")
        session.headers["X-CSRFToken"] = csrf["result"]
        session.headers["Referer"] = self.base_url
        return session

    def check_health(self) -> None:
        """Superset's /health answers OK, or SupersetUnavailable says what happened."""
        import requests

        url = f"{self.base_url}/health"
        probe = requests.Session()
        probe.trust_env = False
        try:
            response = probe.get(url, timeout=10)
        except requests.RequestException as exc:
            raise SupersetUnavailable(f"Superset at {self.base_url} is not reachable: {exc}") from exc
        if response.status_code != 200 or response.text.strip() != "OK":
            raise SupersetUnavailable(
                f"Superset at {url} is unhealthy: HTTP {response.status_code} {response.text[:200]}"
            )

    # Calls --------------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call as the logged-in user; returns the JSON answer or raises SupersetError."""
        return self._send(self.session, method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.call("DELETE", path, **kwargs)

    def dashboard(self, slug: str) -> dict[str, Any] | None:
        """A dashboard (GET /api/v1/dashboard/<slug>), or None if there is none with that slug."""
        try:
            return self.get(f"/api/v1/dashboard/{slug}")["result"]
        except SupersetError as exc:
            if exc.status == 404:
                return None
            raise

    def download(self, path: str, **kwargs: Any) -> bytes:
        """A call answering with a file (e.g. an export zip)."""
        response = self._raw(self.session, "GET", path, **kwargs)
        return response.content

    # Plumbing -----------------------------------------------------------------------------------------------
    def _raw(self, session: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response:
        import requests

        url = f"{self.base_url}{path}"
        try:
            response = session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise SupersetUnavailable(f"Superset at {self.base_url} did not answer {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            message = f"{method} {path} failed: HTTP {response.status_code} {_message(response)}"
            raise SupersetError(message, status=response.status_code)
        return response

    def _send(self, session: requests.Session, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._raw(session, method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise SupersetError(f"{method} {path}: expected JSON, got {response.text[:200]!r}") from exc


def _message(response: requests.Response) -> str:
    """Superset's error text (its JSON `message`/`errors` if any), shortened."""
    try:
        body = response.json()
    except ValueError:
        if "html" in response.headers.get("Content-Type", ""):
            return "(an HTML error page: the cause is in Superset's log)"
        return response.text[:500]
    if isinstance(body, dict):
        for key in ("message", "errors", "msg"):
            if key in body:
                return json.dumps(body[key])[:1000]
    return json.dumps(body)[:1000]
