"""A small client of Airflow 3's public REST API (/api/v2): trigger a DAG run and follow it task by task.

`make demo` triggers the pipeline through the running Airflow (scheduler + LocalExecutor) with it, exactly as a
person would from the UI's trigger form. Standard library only; a JWT comes from /auth/token on first use.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FINISHED_RUN_STATES = frozenset({"success", "failed"})


class AirflowApiError(RuntimeError):
    """Airflow answered with an error; the message carries the status and Airflow's own detail."""

    def __init__(self, method: str, path: str, status: int, detail: Any) -> None:
        self.status, self.detail = status, detail
        super().__init__(f"Airflow {method} {path} -> HTTP {status}: {detail}")


@dataclass
class AirflowClient:
    """Base URL (e.g. http://127.0.0.1:8080) and a user of the auth manager. Constructing it does no I/O."""

    base_url: str
    username: str
    password: str = field(repr=False)
    timeout_s: float = 30.0
    _token: str | None = field(default=None, repr=False)

    def _send(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - configured URL
                raw = response.read()
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                detail = json.loads(text).get("detail", text)
            except (ValueError, AttributeError):
                detail = text
            raise AirflowApiError(method, path, err.code, detail) from None
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            answer = self._send("POST", "/auth/token", {"username": self.username, "password": self.password}, False)
            self._token = answer["access_token"]
        return self._token

    def _object(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """An answer that must be a JSON object."""
        answer = self._send(method, path, body)
        if not isinstance(answer, dict):
            raise AirflowApiError(method, path, 200, f"expected a JSON object, got {answer!r}")
        return answer

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self._object("GET", f"/api/v2/dags/{_quote(dag_id)}")

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180.0, poll_s: float = 3.0) -> dict[str, Any]:
        """The DAG once the dag-processor has parsed it (a fresh platform needs one refresh interval)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.dag(dag_id)
            except AirflowApiError as err:
                if err.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(poll_s)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._send("PATCH", f"/api/v2/dags/{_quote(dag_id)}", {"is_paused": paused})

    def trigger(
        self, dag_id: str, conf: dict[str, Any], run_id: str | None = None, logical_date: str | None = None
    ) -> dict[str, Any]:
        """A manual run with `conf` as its params; Airflow validates them against the DAG's Param schemas and
        answers 400 naming the parameter when one is wrong."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return self._object("POST", f"/api/v2/dags/{_quote(dag_id)}/dagRuns", body)

    def trigger_in_due_slot(self, dag_id: str, conf: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """A manual run of a paused, scheduled DAG that takes the schedule slot due now (its logical date).

        Unpausing a DAG makes the scheduler create the run of the latest due interval, with the DAG's default
        params; a run already holding that logical date stops it. So: this, then unpause, runs `conf` alone.
        """
        due = self.dag(dag_id).get("next_dagrun_logical_date")
        now = datetime.now(UTC)
        if due and _instant(due) > now:
            due = None  # nothing due yet: unpausing creates nothing before that date
        if due and any(
            r.get("logical_date") and _instant(r["logical_date"]) == _instant(due) for r in self.runs(dag_id)
        ):
            due = None  # an earlier run holds the slot (a second retraining this week): unpausing creates nothing
        return self.trigger(dag_id, conf, run_id, logical_date=due)

    def runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        """The DAG's runs (newest first, at most 100), optionally of one run type (manual, scheduled, ...)."""
        query = "?limit=100&order_by=-run_after" + (f"&run_type={_quote(run_type)}" if run_type else "")
        found: list[dict[str, Any]] = self._send("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns{query}")["dag_runs"]
        return found

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        """Mark a run success, failed or queued (unfinished task instances follow)."""
        self._send("PATCH", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}", {"state": state})

    def delete_run(self, dag_id: str, run_id: str) -> None:
        self._send("DELETE", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}")

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._object("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self._send(
                "GET",
                f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances"
                f"?limit=100&offset={len(found)}&order_by=start_date",
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        """The task's return value (deserialised), or None if it returned nothing."""
        path = (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
            f"/xcomEntries/return_value?map_index={map_index}&deserialize=true"
        )
        try:
            return self._send("GET", path)["value"]
        except AirflowApiError as err:
            if err.status == 404:
                return None
            raise

    def follow(
        self,
        dag_id: str,
        run_id: str,
        report: Callable[[str], None] = print,
        poll_s: float = 5.0,
        timeout_s: float = 3600.0,
    ) -> dict[str, Any]:
        """Poll the run until it finishes, reporting every task state change as one line; returns the run."""
        seen: dict[tuple[str, int], str | None] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(dag_id, run_id)
            for ti in self.task_instances(dag_id, run_id):
                key = (ti["task_id"], ti["map_index"])
                if seen.get(key, "unseen") != ti["state"]:
                    seen[key] = ti["state"]
                    report(f"{task_label(ti):55s} {ti['state'] or 'waiting'}")
            if run["state"] in FINISHED_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout_s:.0f} s")
            time.sleep(poll_s)


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def task_label(ti: dict[str, Any]) -> str:
    """'month.download [green 2024-01]' for a mapped task instance, the task id otherwise."""
    if ti["map_index"] < 0:
        return str(ti["task_id"])
    return f"{ti['task_id']} [{ti.get('rendered_map_index') or ti['map_index']}]"


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")
