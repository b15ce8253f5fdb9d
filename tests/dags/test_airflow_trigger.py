"""Triggering through the running Airflow (REST API -> scheduler -> LocalExecutor), as `make demo` and the UI do.

A wrong trigger parameter is refused by Airflow itself before any run exists, with a message naming it; a good
trigger of the platform_health DAG is executed by the scheduler and followed to success task by task.
"""

from __future__ import annotations

import uuid

import pytest

from taxi_anomaly.orchestration.airflow_api import AirflowApiError, AirflowClient

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def client(platform) -> AirflowClient:
    return AirflowClient(
        platform.cfg.airflow_url, platform.creds.airflow_admin_user, platform.creds.airflow_admin_password
    )


def test_wrong_trigger_params_are_refused_naming_the_param(client):
    client.wait_for_dag("tap_backfill")
    run_id = f"t_bad_{uuid.uuid4().hex[:8]}"
    with pytest.raises(AirflowApiError) as refused:
        client.trigger("tap_backfill", {"trip_types": ["taxi"], "first_month": "2024-01"}, run_id=run_id)
    assert refused.value.status == 400
    assert "trip_types" in str(refused.value) and "'taxi' is not one of" in str(refused.value)
    with pytest.raises(AirflowApiError) as missing:
        client.run("tap_backfill", run_id)
    assert missing.value.status == 404  # nothing was created


def test_wrong_credentials_get_no_token(platform):
    stranger = AirflowClient(platform.cfg.airflow_url, platform.creds.airflow_admin_user, "admin")
    with pytest.raises(AirflowApiError) as refused:
        stranger.token()
    assert refused.value.status == 401


def test_a_triggered_run_is_executed_by_the_scheduler(client):
    dag = client.wait_for_dag("platform_health")
    client.set_paused("platform_health", False)
    try:
        run = client.trigger("platform_health", {}, run_id=f"t_trigger_{uuid.uuid4().hex[:8]}")
        lines: list[str] = []
        finished = client.follow("platform_health", run["dag_run_id"], report=lines.append, poll_s=2, timeout_s=600)
    finally:
        client.set_paused("platform_health", dag["is_paused"])
    assert finished["state"] == "success", "\n".join(lines)
    states = {ti["task_id"]: ti["state"] for ti in client.task_instances("platform_health", run["dag_run_id"])}
    assert states and set(states.values()) == {"success"}, states
    assert any(line.rstrip().endswith("success") for line in lines)  # progress was reported per task
