"""Throttle failed logins on Airflow's REST token endpoints (POST /auth/token, /auth/token/cli).

FAB's own limiter (`[fab] auth_rate_limit`) guards only its HTML login form; a script guessing passwords would use
the token endpoint, which nothing limits. This ASGI middleware, registered by plugins/tap_airflow_plugin.py,
counts the 401 answers per user name: after `max_failures` within `window_s` seconds that user gets 429 (with
Retry-After) until the oldest failure leaves the window. A good login clears the user's count. The counts live in
the API server process (one per pod on Kubernetes, so a limit per replica).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_PATHS = frozenset({"/auth/token", "/auth/token/cli"})
MAX_BODY = 64 * 1024  # a login body is a few dozen bytes; anything bigger is not counted as a user name


class FailedLogins:
    """Failure times per user name, thread-safe; `clock` is injectable for tests."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError(f"login throttle needs max_failures >= 1 and window_s > 0, got {max_failures}, {window_s}")
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, user: str) -> float:
        """Seconds until `user` may try again (0 if not throttled)."""
        with self._lock:
            times = self._recent(user)
            if len(times) < self.max_failures:
                return 0.0
            return max(times[0] + self.window_s - self.clock(), 0.001)

    def failed(self, user: str) -> None:
        with self._lock:
            self._recent(user).append(self.clock())

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(user, None)

    def _recent(self, user: str) -> deque[float]:
        times = self._failures.setdefault(user, deque())
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times


class LoginThrottle:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.app = app
        self.failures = FailedLogins(max_failures, window_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") not in TOKEN_PATHS:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        user = _user_name(body)
        wait = self.failures.retry_after(user)
        if wait:
            await _too_many(send, user, wait)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 401:
                    self.failures.failed(user)
                elif 200 <= message["status"] < 300:
                    self.failures.succeeded(user)
            await send(message)

        await self.app(scope, replay, watch)


def _user_name(body: bytes) -> str:
    """The `username` of a JSON login body, case-folded; '' when there is none (all such attempts share a count)."""
    if len(body) > MAX_BODY:
        return ""
    try:
        name = json.loads(body).get("username", "")
    except (ValueError, AttributeError):
        return ""
    return name.strip().casefold() if isinstance(name, str) else ""


async def _too_many(send: Send, user: str, wait: float) -> None:
    seconds = int(wait) + 1
    detail = f"too many failed logins for user {user!r}: try again in {seconds} s"
    payload = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"retry-after", str(seconds).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
