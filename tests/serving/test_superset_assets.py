"""The Superset assets kept as code: their consistency, and import / refresh / warm-up against the real Superset."""

from __future__ import annotations

import json
import socket
from collections import Counter
from dataclasses import replace

import pytest

from taxi_anomaly.serving.compare import differences
from taxi_anomaly.serving.refresh import (
    AssetsImportError,
    ChartQueryError,
    import_assets,
    refresh_dashboards,
    warm_up_charts,
)
from taxi_anomaly.serving.superset_client import SupersetClient, SupersetUnavailable
from taxi_anomaly.serving.trino_client import TrinoSettings

SLUG = "taxi-anomalies"


# The files themselves (no service needed) ---------------------------------------------------------------------------
def _chart_metas(dashboard: dict) -> list[dict]:
    return [c["meta"] for c in dashboard["position"].values() if isinstance(c, dict) and c.get("type") == "CHART"]


def test_assets_reference_each_other_consistently(assets):
    uuids = Counter(str(config["uuid"]) for path, config in assets.files.items() if path != "metadata.yaml")
    assert [u for u, n in uuids.items() if n > 1] == [], "uuids must be unique"
    databases = {str(c["uuid"]) for c in assets.of_kind("databases").values()}
    datasets = {str(c["uuid"]): c for c in assets.of_kind("datasets").values()}
    charts = {str(c["uuid"]): c for c in assets.of_kind("charts").values()}
    assert all(str(d["database_uuid"]) in databases for d in datasets.values())

    for path, chart in assets.of_kind("charts").items():
        dataset = datasets[str(chart["dataset_uuid"])]
        metrics = {m["metric_name"] for m in dataset["metrics"]}
        columns = {c["column_name"] for c in dataset["columns"]}
        for query in chart["query_context"]["queries"]:
            for metric in query.get("metrics", []):
                assert metric in metrics, f"{path}: metric {metric!r} is not a metric of {dataset['table_name']}"
            for column in query["columns"]:
                name = column if isinstance(column, str) else column["sqlExpression"]
                assert name in columns, f"{path}: column {name!r} is not a column of {dataset['table_name']}"

    for path, dashboard in assets.of_kind("dashboards").items():
        metas = _chart_metas(dashboard)
        assert sorted(str(m["uuid"]) for m in metas) == sorted(charts), f"{path} must place every chart once"
        local_ids = {m["chartId"] for m in metas}
        assert len(local_ids) == len(metas)
        for native_filter in dashboard["metadata"]["native_filter_configuration"]:
            for target in native_filter["targets"]:
                dataset = datasets[str(target["datasetUuid"])]
                assert target["column"]["name"] in {c["column_name"] for c in dataset["columns"]}
            assert set(native_filter["scope"]["excluded"]) <= local_ids
        assert set(dashboard["metadata"]["timed_refresh_immune_slices"]) <= local_ids


def test_the_database_uri_comes_from_the_connection_and_the_bundle_holds_no_password(assets):
    trino = TrinoSettings("trino.example", 8443, "analyst", "s3cret-pa55word", catalog="iceberg")
    rendered = assets.with_trino(trino)
    (database,) = rendered.of_kind("databases").values()
    assert database["sqlalchemy_uri"] == "trino://analyst:XXXXXXXXXX@trino.example:8443/iceberg"
    assert b"s3cret-pa55word" not in rendered.to_zip()


# Against the running Superset -------------------------------------------------------------------------------------
def _inventory(superset: SupersetClient, assets) -> dict[str, list[int]]:
    """Ids of every Superset object carrying one of our assets' names (a duplicate shows up as two ids)."""
    names = {
        "database": {c["database_name"] for c in assets.of_kind("databases").values()},
        "dataset": {c["table_name"] for c in assets.of_kind("datasets").values()},
        "chart": {c["slice_name"] for c in assets.of_kind("charts").values()},
        "dashboard": {c["slug"] for c in assets.of_kind("dashboards").values()},
    }
    label = {"database": "database_name", "dataset": "table_name", "chart": "slice_name", "dashboard": "slug"}
    found: dict[str, list[int]] = {}
    for kind, wanted in names.items():
        for item in superset.get(f"/api/v1/{kind}/?q=(page_size:100)")["result"]:
            if item[label[kind]] in wanted:
                found.setdefault(f"{kind} {item[label[kind]]}", []).append(item["id"])
    return found


@pytest.mark.platform
def test_importing_twice_creates_no_duplicates(superset, assets, trino_analyst):
    rendered = assets.with_trino(trino_analyst)
    import_assets(superset, rendered, trino_analyst)
    first = _inventory(superset, assets)
    import_assets(superset, rendered, trino_analyst)
    second = _inventory(superset, assets)

    assert second == first, "the second import must update the same objects"
    assert len(first) == len(assets.files) - 1  # every asset but metadata.yaml, found by name
    assert all(len(ids) == 1 for ids in first.values()), first
    assert differences(superset, rendered) == []


@pytest.mark.platform
def test_refresh_imports_only_when_superset_differs_from_the_assets(superset, assets, trino_analyst, pipeline_run):
    refresh_dashboards(superset, assets, trino_analyst)
    unchanged = refresh_dashboards(superset, assets, trino_analyst)
    assert (unchanged.imported, unchanged.differences) == (False, [])

    chart = next(
        c for c in superset.get("/api/v1/chart/?q=(page_size:100)")["result"] if c["slice_name"] == "Top anomalies"
    )
    superset.put(f"/api/v1/chart/{chart['id']}", json={"slice_name": "Edited by hand"})
    edited = refresh_dashboards(superset, assets, trino_analyst)
    assert edited.imported
    assert "charts/top_anomalies.yaml.slice_name: 'Edited by hand' != 'Top anomalies'" in edited.differences
    assert superset.get(f"/api/v1/chart/{chart['id']}")["result"]["slice_name"] == "Top anomalies"


@pytest.mark.platform
def test_after_a_pipeline_run_every_chart_returns_rows_from_the_warm_cache(
    superset, assets, trino_analyst, pipeline_run
):
    report = refresh_dashboards(superset, assets, trino_analyst)

    assert sorted(report.datasets) == ["taxi.anomaly_scores", "taxi.model_evaluations", "taxi.stream_alerts"]
    assert sorted(c.name for c in report.charts) == sorted(c["slice_name"] for c in assets.of_kind("charts").values())
    empty = [c.name for c in report.charts if c.rows == 0]
    assert empty == [], f"charts without rows after a pipeline run: {empty}"
    cold = [c.name for c in report.charts if not c.cached]
    assert cold == [], f"charts not served from the cache after the warm-up: {cold}"


@pytest.mark.platform
def test_refresh_fails_clearly_when_superset_is_down(assets, trino_analyst):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    down = SupersetClient(f"http://127.0.0.1:{port}", "platform-admin", "unused")
    with pytest.raises(SupersetUnavailable, match=f"Superset at http://127.0.0.1:{port} is not reachable"):
        refresh_dashboards(down, assets, trino_analyst)


@pytest.mark.platform
def test_warm_up_names_the_chart_whose_query_fails(superset, assets, trino_analyst, unique_name):
    """A chart whose SQL Trino rejects makes the warm-up fail with the chart's name and Trino's message."""
    import_assets(superset, assets.with_trino(trino_analyst), trino_analyst)
    dataset_id = superset.get(f"/api/v1/dashboard/{SLUG}/datasets")["result"][0]["id"]
    dashboard_id = superset.post("/api/v1/dashboard/", json={"dashboard_title": unique_name, "slug": unique_name})["id"]
    broken_metric = {"expressionType": "SQL", "sqlExpression": "SUM(no_such_column)", "label": "broken"}
    query_context = {
        "datasource": {"id": dataset_id, "type": "table"},
        "queries": [{"columns": [], "metrics": [broken_metric], "row_limit": 10}],
        "result_format": "json",
        "result_type": "full",
    }
    chart_id = superset.post(
        "/api/v1/chart/",
        json={
            "slice_name": f"broken chart {unique_name}",
            "viz_type": "big_number_total",
            "datasource_id": dataset_id,
            "datasource_type": "table",
            "params": json.dumps({"metric": broken_metric, "viz_type": "big_number_total"}),
            "query_context": json.dumps(query_context),
            "dashboards": [dashboard_id],
        },
    )["id"]
    try:
        with pytest.raises(ChartQueryError) as failed:
            warm_up_charts(superset, superset.dashboard(unique_name))
        assert f"chart 'broken chart {unique_name}' (id {chart_id})" in str(failed.value)
        assert "no_such_column" in str(failed.value)
    finally:
        superset.delete(f"/api/v1/chart/{chart_id}")
        superset.delete(f"/api/v1/dashboard/{dashboard_id}")


@pytest.mark.platform
def test_a_trino_login_superset_cannot_use_fails_the_refresh_clearly(superset, assets, trino_analyst):
    """A Trino user in the Airflow connection that the registered password is not for: the refresh fails naming the
    login; the right one repairs."""
    wrong = replace(trino_analyst, user="platform_admin")
    try:
        named = r"logs in to Trino at https://127\.0\.0\.1:\d+ as 'platform_admin'"
        with pytest.raises(AssetsImportError, match=named):
            refresh_dashboards(superset, assets, wrong, force_import=True)
    finally:
        repaired = refresh_dashboards(superset, assets, trino_analyst, force_import=True)
    assert sorted(repaired.datasets) == ["taxi.anomaly_scores", "taxi.model_evaluations", "taxi.stream_alerts"]


@pytest.mark.platform
def test_no_password_reaches_supersets_action_log_or_its_database(platform, superset, assets, trino_analyst):
    """An import (forced) leaves the Trino password neither in GET /api/v1/log/ nor anywhere in superset.db."""
    refresh_dashboards(superset, assets, trino_analyst, force_import=True)
    logs = superset.get("/api/v1/log/?q=(order_column:dttm,order_direction:desc,page_size:100)")["result"]
    assert any("assets" in json.dumps(row) for row in logs), "the import should be in the action log"
    secret = trino_analyst.password
    assert secret and not [row for row in logs if secret in json.dumps(row)]
    assert not [row for row in logs if '"passwords"' in (row.get("json") or "")]
    metadata_db = platform.cfg.data_dir / "superset" / "superset.db"
    assert secret.encode() not in metadata_db.read_bytes(), f"{metadata_db} holds the Trino password in clear"
