"""Fixtures for the serving tests: Trino logins, the Superset client, the job's tables and one pipeline run."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from taxi_anomaly.serving.assets import Assets
from taxi_anomaly.serving.superset_client import SupersetClient
from taxi_anomaly.serving.trino_client import TrinoSettings
from tests.serving.pipeline_rows import PipelineRun

TRINO_ANALYST_CONN_ID = "tap_trino_analyst"


def _trino(platform, user: str, password: str) -> TrinoSettings:
    return TrinoSettings(
        host="127.0.0.1",
        port=platform.cfg.trino_port,
        user=user,
        password=password,
        verify=str(platform.service("trino").ca_file),
    )


@pytest.fixture(scope="session")
def trino_admin(platform) -> TrinoSettings:
    return _trino(platform, platform.creds.trino_admin_user, platform.creds.trino_admin_password)


@pytest.fixture(scope="session")
def trino_analyst(platform) -> TrinoSettings:
    return _trino(platform, platform.creds.trino_analyst_user, platform.creds.trino_analyst_password)


@pytest.fixture(scope="session")
def superset(platform) -> SupersetClient:
    creds = platform.creds
    return SupersetClient(platform.cfg.superset_url, creds.superset_admin_user, creds.superset_admin_password)


@pytest.fixture(scope="session")
def assets() -> Assets:
    return Assets.load()


def query(settings: TrinoSettings, sql: str) -> list[list]:
    cursor = settings.connect().cursor()
    cursor.execute(sql)
    return cursor.fetchall()


@pytest.fixture(scope="session")
def anomaly_tables(request: pytest.FixtureRequest, trino_admin: TrinoSettings) -> Iterator[None]:
    """iceberg.taxi.* as the batch job creates them (its DDL, through Spark) and the readers' views as the pipeline's
    Trino step creates them; what this fixture created it drops."""
    from anomaly_detection.tables import SERVED_TABLE_DDL, ensure_tables
    from taxi_anomaly.serving.views import ensure_reader_views

    schemas = {row[0] for row in query(trino_admin, "SHOW SCHEMAS FROM iceberg")}
    before = {row[0] for row in query(trino_admin, "SHOW TABLES FROM iceberg.taxi")} if "taxi" in schemas else set()
    if not set(SERVED_TABLE_DDL) <= before:
        ensure_tables(request.getfixturevalue("spark"), "taxi", SERVED_TABLE_DDL)
    views = set(ensure_reader_views(trino_admin.connect(), "taxi"))
    yield
    for view in sorted(views - before):
        query(trino_admin, f"DROP VIEW IF EXISTS iceberg.taxi.{view}")
    for table in sorted(set(SERVED_TABLE_DDL) - before):
        query(trino_admin, f"DROP TABLE IF EXISTS iceberg.taxi.{table}")
    if "taxi" not in schemas and not query(trino_admin, "SHOW TABLES FROM iceberg.taxi"):
        query(trino_admin, "DROP SCHEMA iceberg.taxi")


@pytest.fixture(scope="session")
def pipeline_run(anomaly_tables, trino_admin: TrinoSettings) -> Iterator[PipelineRun]:
    """The rows of one job run (see pipeline_rows.py), removed at the end of the session."""
    run = PipelineRun(trino_admin)
    run.write()
    yield run
    run.remove()


def analyst_connection(platform) -> dict:
    """The Airflow connection the serving code reads Trino's analyst login from (JSON of AIRFLOW_CONN_*)."""
    return {
        "conn_type": "generic",
        "description": "Trino as the read-only analyst (Superset's database, top-anomalies CLI)",
        "host": "127.0.0.1",
        "port": platform.cfg.trino_port,
        "schema": "iceberg",
        "login": platform.creds.trino_analyst_user,
        "password": platform.creds.trino_analyst_password,
        "extra": {"http_scheme": "https", "catalog": "iceberg", "verify": str(platform.service("trino").ca_file)},
    }


@pytest.fixture
def airflow_connections(platform, monkeypatch: pytest.MonkeyPatch, tmp_path) -> dict[str, str]:
    """AIRFLOW_CONN_* for tap_superset (local_platform/connections.py) and tap_trino_analyst, in os.environ."""
    from local_platform.connections import SUPERSET_CONN_ID, connection_definitions

    definitions = connection_definitions(platform.cfg, platform.creds)
    env = {
        f"AIRFLOW_CONN_{SUPERSET_CONN_ID.upper()}": json.dumps(definitions[SUPERSET_CONN_ID]),
        f"AIRFLOW_CONN_{TRINO_ANALYST_CONN_ID.upper()}": json.dumps(analyst_connection(platform)),
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
