"""The failed-login throttle of Airflow's token endpoint, on its own (the REST behaviour: test_airflow_roles.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from taxi_anomaly.orchestration.login_throttle import FailedLogins, LoginThrottle


def test_failures_lock_a_user_for_the_rest_of_the_window_and_a_success_clears_them():
    now = [0.0]
    failures = FailedLogins(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert failures.retry_after("ann") == 0
        failures.failed("ann")
        now[0] += 10
    assert failures.retry_after("ann") == pytest.approx(30)  # the oldest failure (t=0) leaves at t=60
    assert failures.retry_after("bob") == 0
    now[0] = 60.5
    assert failures.retry_after("ann") == 0
    failures.failed("ann")
    failures.succeeded("ann")
    assert failures.retry_after("ann") == 0


def test_the_middleware_counts_401s_per_user_and_answers_429_with_retry_after():
    async def app(scope, receive, send):
        body = json.loads((await receive())["body"])
        status = 201 if body["password"] == "right" else 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    throttle = LoginThrottle(app, max_failures=2, window_s=60)

    def post(user: str, password: str) -> tuple[int, dict]:
        sent: list[dict] = []
        body = json.dumps({"username": user, "password": password}).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/auth/token"}
        asyncio.run(throttle(scope, receive, send))
        return sent[0]["status"], dict(sent[0]["headers"])

    assert [post("Ann", "x")[0], post("ann ", "y")[0]] == [401, 401]  # one user, whatever the case and spaces
    status, headers = post("ann", "right")
    assert status == 429 and int(headers[b"retry-after"]) > 0  # locked even with the right password
    assert post("bob", "right")[0] == 201
