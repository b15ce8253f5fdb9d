"""Keep Superset equal to the assets in include/: import when they differ, refresh datasets, warm chart caches.

`refresh_dashboards` is what the Airflow task runs after each pipeline run:

1. Superset must answer /health, else SupersetUnavailable.
2. The assets are compared with Superset's objects (taxi_anomaly.serving.compare); the bundle is imported
   (overwriting by uuid) only if something differs or is missing.
3. Each dataset of the dashboards re-reads its columns from Trino (PUT /api/v1/dataset/<id>/refresh).
4. Each chart runs once with its dashboard's default filter values (PUT /api/v1/chart/warm_up_cache): the
   result is cached under the key the dashboard asks for, so the first viewer does not wait. Charts whose
   query fails raise ChartQueryError naming them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from taxi_anomaly.serving.compare import differences
from taxi_anomaly.serving.superset_client import SupersetError, SupersetUnavailable

if TYPE_CHECKING:
    from taxi_anomaly.serving.assets import Assets
    from taxi_anomaly.serving.superset_client import SupersetClient
    from taxi_anomaly.serving.trino_client import TrinoSettings

log = logging.getLogger(__name__)


class AssetsImportError(SupersetError):
    """Superset rejected the assets bundle."""


class DatasetRefreshError(SupersetError):
    """Superset could not re-read a dataset's columns from its database."""


class ChartQueryError(SupersetError):
    """One or more charts' queries failed; the message names each chart and its error."""


@dataclass(frozen=True)
class ChartResult:
    """A chart after the warm-up: rows its queries return, and whether they now come from the cache."""

    dashboard: str
    chart_id: int
    name: str
    rows: int
    cached: bool


@dataclass
class RefreshReport:
    imported: bool
    differences: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    charts: list[ChartResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def refresh_dashboards(
    client: SupersetClient, assets: Assets, trino: TrinoSettings, force_import: bool = False
) -> RefreshReport:
    """Import if needed, refresh the datasets, warm the caches; see the module docstring."""
    client.check_health()
    assets = assets.with_trino(trino)
    found = ["import forced"] if force_import else differences(client, assets)
    if found:
        log.info("importing the assets; Superset differs from them in: %s", "; ".join(found[:20]))
        import_assets(client, assets, trino)
    else:
        log.info("Superset already matches the assets; nothing imported")
    report = RefreshReport(imported=bool(found), differences=found)
    for slug in assets.dashboard_slugs():
        dashboard = client.dashboard(slug)
        if dashboard is None:
            raise SupersetError(f"dashboard {slug!r} is missing after the import")
        report.datasets += refresh_datasets(client, dashboard)
        report.charts += warm_up_charts(client, dashboard)
    return report


# Import --------------------------------------------------------------------------------------------------------
def import_assets(client: SupersetClient, assets: Assets, trino: TrinoSettings) -> None:
    """POST the bundle to /api/v1/assets/import/ (overwrites every object with the same uuid).

    No password goes with it: Superset logs the import's form fields in its action log, so the database must
    already be registered with its password (include/superset/register_database.py, run by the platform), and
    Superset keeps the stored password of the database with the asset's uuid.
    """
    try:
        client.post(
            "/api/v1/assets/import/",
            files={"bundle": ("taxi_anomaly_assets.zip", assets.to_zip(), "application/zip")},
        )
    except SupersetUnavailable:
        raise
    except SupersetError as exc:
        raise AssetsImportError(
            f"importing the assets into Superset failed: {exc}. While importing its database Superset logs in to "
            f"Trino at {trino.url} as {trino.user!r} with the password registered for it "
            "(include/superset/register_database.py): check that login and Superset's log."
        ) from exc


# Datasets and charts ---------------------------------------------------------------------------------------------
def refresh_datasets(client: SupersetClient, dashboard: dict[str, Any]) -> list[str]:
    """Re-read the columns of every dataset the dashboard uses from the database (Trino)."""
    names = []
    for dataset in client.get(f"/api/v1/dashboard/{dashboard['id']}/datasets")["result"]:
        name = f"{dataset['schema']}.{dataset['table_name']}"
        try:
            client.put(f"/api/v1/dataset/{dataset['id']}/refresh")
        except SupersetError as exc:
            raise DatasetRefreshError(f"refreshing dataset {name} (id {dataset['id']}) failed: {exc}") from exc
        names.append(name)
    return names


def default_filters(metadata: dict[str, Any], chart_id: int) -> list[dict[str, Any]]:
    """The filter clauses the dashboard applies to a chart before anyone touches a filter (its defaults)."""
    clauses: list[dict[str, Any]] = []
    for native_filter in metadata.get("native_filter_configuration", []):
        in_scope = native_filter.get("chartsInScope")
        if in_scope is not None and chart_id not in in_scope:
            continue
        if chart_id in native_filter.get("scope", {}).get("excluded", []):
            continue
        clauses += native_filter.get("defaultDataMask", {}).get("extraFormData", {}).get("filters", [])
    return clauses


def warm_up_charts(client: SupersetClient, dashboard: dict[str, Any]) -> list[ChartResult]:
    """Run every chart of the dashboard with its default filters into the cache; fail naming broken charts."""
    metadata = json.loads(dashboard.get("json_metadata") or "{}")
    failures, results = [], []
    for chart in client.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]:
        outcome = _warm_up_chart(client, dashboard, chart, default_filters(metadata, chart["id"]))
        if isinstance(outcome, str):
            failures.append(
                f"chart {chart['slice_name']!r} (id {chart['id']}) of {dashboard['dashboard_title']!r}: {outcome}"
            )
        else:
            results.append(outcome)
    if failures:
        raise ChartQueryError("; ".join(failures))
    return results


def _warm_up_chart(
    client: SupersetClient, dashboard: dict[str, Any], chart: dict[str, Any], filters: list[dict[str, Any]]
) -> ChartResult | str:
    """Warm one chart's cache and read its rows back from it; returns the result or the error text."""
    body = {"chart_id": chart["id"], "dashboard_id": dashboard["id"], "extra_filters": json.dumps(filters)}
    for outcome in client.put("/api/v1/chart/warm_up_cache", json=body)["result"]:
        if outcome.get("viz_error"):
            return str(outcome["viz_error"])
    try:
        answers = chart_data(client, chart["id"], filters)
    except SupersetUnavailable:
        raise
    except SupersetError as exc:
        return str(exc)
    errors = [answer["error"] for answer in answers if answer.get("error")]
    if errors:
        return str(errors[0])
    rows = sum(answer.get("rowcount") or 0 for answer in answers)
    if rows == 0:
        log.warning("chart %r (id %s) has no rows: is there pipeline output yet?", chart["slice_name"], chart["id"])
    cached = all(answer.get("is_cached") for answer in answers)
    return ChartResult(dashboard["dashboard_title"], chart["id"], chart["slice_name"], rows, cached)


def chart_data(client: SupersetClient, chart_id: int, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chart's saved queries with extra filter clauses, answered by Superset (from its cache when warm)."""
    query_context = json.loads(client.get(f"/api/v1/chart/{chart_id}")["result"]["query_context"] or "null")
    if query_context is None:
        raise ChartQueryError(f"chart {chart_id} has no saved query_context; add one to its asset file")
    for query in query_context["queries"]:
        query["filters"] = [*query.get("filters", []), *filters]
    query_context["force"] = False
    return client.post("/api/v1/chart/data", json=query_context)["result"]
