"""The Hive Metastore admits the platform's own clients only (issue 16, item 2).

Hive 2.3's Thrift server authenticates nobody; the LD_PRELOAD shim it runs with closes every connection whose
client process does not carry the install's ticket (local_platform/native/loopback_bind.c). Before the gate, the
process below created and dropped databases and rewrote tables like any platform client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.serving.conftest import query

pytestmark = pytest.mark.platform

# What a process does to the metastore with pyiceberg's HiveCatalog (the Airflow steps' client); prints a verdict per
# attempt as JSON.
CLIENT = """
import json, sys
from pyiceberg.catalog.hive import HiveCatalog
properties, namespace, table = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
catalog = HiveCatalog("hms", **properties)
verdicts = {}
def attempt(name, action):
    try:
        action()
        verdicts[name] = "done"
    except Exception as err:
        verdicts[name] = f"refused: {type(err).__name__}"
attempt("create database", lambda: catalog.create_namespace(namespace + "_intruder"))
def alter():
    catalog.load_table((namespace, table)).transaction().set_properties(owner="x").commit_transaction()
attempt("alter table", alter)
attempt("drop table", lambda: catalog.drop_table((namespace, table)))
attempt("drop database", lambda: catalog.drop_namespace(namespace))
print(json.dumps(verdicts))
"""


def _run_client(platform, namespace: str, env: dict[str, str]) -> dict[str, str]:
    cfg, creds = platform.cfg, platform.creds
    properties = {
        "uri": cfg.metastore_uri,
        "s3.endpoint": cfg.minio_endpoint,
        "s3.access-key-id": creds.minio_root_user,
        "s3.secret-access-key": creds.minio_root_password,
        "s3.region": "us-east-1",
        "s3.force-virtual-addressing": "false",
    }
    run = subprocess.run(
        [sys.executable, "-c", CLIENT, json.dumps(properties), namespace, "t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def scratch(platform, unique_name):
    """A database with one Iceberg table, made by the platform's admin through Trino; dropped afterwards."""
    from tests.serving.access_modes import _logins

    admin = _logins(platform, platform.cfg.trino_access_control, platform.cfg.trino_port).admin
    query(admin, f"CREATE SCHEMA iceberg.{unique_name}")
    query(admin, f"CREATE TABLE iceberg.{unique_name}.t AS SELECT 1 AS id")
    yield admin, unique_name
    query(admin, f"DROP TABLE IF EXISTS iceberg.{unique_name}.t")
    query(admin, f"DROP SCHEMA IF EXISTS iceberg.{unique_name}")
    query(admin, f"DROP SCHEMA IF EXISTS iceberg.{unique_name}_intruder")


def _without_ticket() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TAP_METASTORE_TICKET"}


def test_a_process_without_the_ticket_changes_nothing(platform, scratch):
    admin, namespace = scratch
    verdicts = _run_client(platform, namespace, _without_ticket())
    assert all(v.startswith("refused") for v in verdicts.values()), verdicts
    assert set(verdicts) == {"create database", "alter table", "drop table", "drop database"}
    schemas = {row[0] for row in query(admin, "SHOW SCHEMAS FROM iceberg")}
    assert namespace in schemas and f"{namespace}_intruder" not in schemas
    assert query(admin, f"SELECT id FROM iceberg.{namespace}.t") == [[1]]
    log = (platform.cfg.log_dir / "metastore.log").read_text()
    assert "metastore accept gate: refused the connection" in log


def test_a_wrong_ticket_is_refused_too(platform, scratch):
    _, namespace = scratch
    verdicts = _run_client(platform, namespace, {**_without_ticket(), "TAP_METASTORE_TICKET": "a-guess"})
    assert all(v.startswith("refused") for v in verdicts.values()), verdicts


def test_a_platform_process_with_the_ticket_is_served(platform, scratch):
    """What the Airflow steps do (pyiceberg, the ticket in the task's environment) still works: the table is altered,
    then dropped with its database."""
    from local_platform.services.metastore import metastore_client_env

    admin, namespace = scratch
    verdicts = _run_client(platform, namespace, {**_without_ticket(), **metastore_client_env(platform.creds)})
    assert verdicts == dict.fromkeys(["create database", "alter table", "drop table", "drop database"], "done")
    assert namespace not in {row[0] for row in query(admin, "SHOW SCHEMAS FROM iceberg")}


@pytest.mark.spark
def test_spark_and_trino_pass_the_gate(platform, spark, scratch):
    admin, namespace = scratch
    assert [tuple(r) for r in spark.sql(f"SELECT id FROM iceberg.{namespace}.t").collect()] == [(1,)]
    assert query(admin, f"SELECT count(*) FROM iceberg.{namespace}.t") == [[1]]


def test_in_process_clients_find_the_ticket_file_where_the_platform_puts_it():
    """Airflow task workers rewrite their title over their environment, so their in-process metastore clients hold
    the ticket file (taxi_anomaly.metastore_ticket); they find it under the name the platform sets."""
    from local_platform.config import load_config
    from local_platform.services import metastore
    from local_platform.spark import spark_env
    from taxi_anomaly import metastore_ticket

    assert metastore_ticket.TICKET_FILE_ENV == metastore.TICKET_FILE_ENV
    cfg = load_config()
    assert spark_env(cfg)[metastore.TICKET_FILE_ENV] == str(metastore.ticket_file(cfg))
