"""The Airflow operator that refreshes the dashboards: no I/O when built, a real refresh through Airflow connections."""

from __future__ import annotations

import pytest

from taxi_anomaly.operators.superset import SupersetDashboardsOperator


def test_building_the_operator_touches_no_connection_file_or_network():
    operator = SupersetDashboardsOperator(
        task_id="refresh_dashboards",
        assets_dir="/nonexistent/assets",
        superset_conn_id="no_such_connection",
        trino_conn_id="no_such_connection_either",
    )
    assert "hook" not in operator.__dict__  # the hook (and its client) are created on first use only
    assert set(operator.template_fields) == {"assets_dir", "superset_conn_id", "trino_conn_id"}


@pytest.mark.platform
def test_operator_refreshes_the_dashboards_with_credentials_from_airflow_connections(
    airflow_connections, pipeline_run, assets
):
    operator = SupersetDashboardsOperator(task_id="refresh_dashboards")
    report = operator.execute(context={})

    assert operator.hook.client.username == "platform-admin"  # read from AIRFLOW_CONN_TAP_SUPERSET
    assert sorted(report["datasets"]) == ["taxi.anomaly_scores", "taxi.model_evaluations", "taxi.stream_alerts"]
    charts = {chart["name"]: chart for chart in report["charts"]}
    assert sorted(charts) == sorted(c["slice_name"] for c in assets.of_kind("charts").values())
    assert all(chart["rows"] > 0 and chart["cached"] for chart in charts.values()), charts
