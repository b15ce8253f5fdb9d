"""Airflow operator that keeps Superset's dashboards equal to include/superset/assets and warms their caches."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator

from taxi_anomaly.serving.assets import DEFAULT_ASSETS_DIR

if TYPE_CHECKING:
    from airflow.sdk import Context

    from taxi_anomaly.serving.superset_hook import SupersetHook


class SupersetDashboardsOperator(BaseOperator):
    """Refresh the dashboards after a pipeline run (taxi_anomaly.serving.refresh.refresh_dashboards).

    Imports the assets if Superset differs from them, re-reads the datasets' columns from Trino and runs every
    chart once so its data is cached. Fails, naming the cause, if Superset is down, a dataset cannot be read
    or a chart query errors. Returns the report (imported?, differences, datasets, rows per chart) as XCom.

    :param assets_dir: directory with Superset's import layout (metadata.yaml, databases/, datasets/, ...).
    :param superset_conn_id: Airflow connection of a Superset admin (REST API login).
    :param trino_conn_id: Airflow connection of the Trino user Superset's database logs in as (read-only).
    :param force_import: import even if Superset already matches the assets.
    """

    template_fields: Sequence[str] = ("assets_dir", "superset_conn_id", "trino_conn_id")

    def __init__(
        self,
        *,
        assets_dir: str = str(DEFAULT_ASSETS_DIR),
        superset_conn_id: str = "tap_superset",
        trino_conn_id: str = "tap_trino_analyst",
        force_import: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.assets_dir = assets_dir
        self.superset_conn_id = superset_conn_id
        self.trino_conn_id = trino_conn_id
        self.force_import = force_import

    @cached_property
    def hook(self) -> SupersetHook:
        from taxi_anomaly.serving.superset_hook import SupersetHook

        return SupersetHook(self.superset_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from taxi_anomaly.serving.assets import Assets
        from taxi_anomaly.serving.refresh import refresh_dashboards
        from taxi_anomaly.serving.trino_client import TrinoSettings

        trino = TrinoSettings.from_connection(BaseHook.get_connection(self.trino_conn_id))
        report = refresh_dashboards(self.hook.client, Assets.load(Path(self.assets_dir)), trino, self.force_import)
        self.log.info("assets imported: %s %s", report.imported, "; ".join(report.differences[:10]))
        self.log.info("datasets refreshed: %s", ", ".join(report.datasets))
        for chart in report.charts:
            self.log.info("chart %r: %d rows, cached=%s", chart.name, chart.rows, chart.cached)
        return report.as_dict()
