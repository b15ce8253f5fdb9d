"""Smoke tests that talk to every service of the running local platform for real."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import urllib.request

import pytest

from local_platform.config import REPO_ROOT

pytestmark = pytest.mark.platform


def _json_request(url: str, data: dict | None = None, headers: dict | None = None, method: str | None = None):
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def minio_client(platform):
    from minio import Minio

    return Minio(
        f"127.0.0.1:{platform.cfg.minio_port}",
        access_key=platform.creds.minio_root_user,
        secret_key=platform.creds.minio_root_password,
        secure=False,
    )


def test_minio_put_get(platform, minio_client, unique_name):
    payload = os.urandom(256 * 1024)
    bucket = platform.cfg.raw_bucket
    minio_client.put_object(bucket, f"smoke/{unique_name}.bin", io.BytesIO(payload), len(payload))
    try:
        got = minio_client.get_object(bucket, f"smoke/{unique_name}.bin").read()
        assert got == payload
    finally:
        minio_client.remove_object(bucket, f"smoke/{unique_name}.bin")


def test_minio_buckets_exist_and_wrong_credentials_are_refused(platform, minio_client):
    from minio import Minio
    from minio.error import S3Error

    names = {b.name for b in minio_client.list_buckets()}
    assert set(platform.cfg.buckets) <= names
    intruder = Minio(
        f"127.0.0.1:{platform.cfg.minio_port}", access_key="minioadmin", secret_key="minioadmin", secure=False
    )
    with pytest.raises(S3Error, match="InvalidAccessKeyId"):
        intruder.list_buckets()


def test_metastore_create_and_list_database(platform, unique_name):
    from pyiceberg.catalog.hive import HiveCatalog

    from taxi_anomaly.health import ServiceEndpoint, check_metastore

    catalog = HiveCatalog(
        "hms", uri=platform.cfg.metastore_uri, warehouse=f"s3a://{platform.cfg.warehouse_bucket}/iceberg"
    )
    catalog.create_namespace(unique_name)
    try:
        assert (unique_name,) in catalog.list_namespaces()
        assert unique_name in check_metastore(ServiceEndpoint("127.0.0.1", platform.cfg.metastore_port))
    finally:
        catalog.drop_namespace(unique_name)
    assert (unique_name,) not in catalog.list_namespaces()


@pytest.mark.spark
def test_spark_writes_iceberg_through_the_metastore_and_trino_reads_it(platform, spark, minio_client, unique_name):
    from taxi_anomaly.serving.trino_client import TrinoSettings

    table = f"iceberg.smoke.{unique_name}"
    spark.sql("CREATE NAMESPACE IF NOT EXISTS iceberg.smoke")
    rows = [(i, f"zone-{i % 7}", float(i) * 1.5) for i in range(1000)]
    spark.createDataFrame(rows, "id BIGINT, zone STRING, fare DOUBLE").writeTo(table).using("iceberg").create()
    try:
        back = spark.table(table)
        assert back.count() == 1000
        assert back.agg({"fare": "sum"}).first()[0] == pytest.approx(sum(r[2] for r in rows))

        # The table's files really are in MinIO's warehouse bucket.
        objects = list(
            minio_client.list_objects(platform.cfg.warehouse_bucket, prefix="iceberg/smoke.db/", recursive=True)
        )
        assert any(unique_name in o.object_name and o.object_name.endswith(".parquet") for o in objects)

        # Trino takes password logins over HTTPS only (local_platform/services/trino.py): read as the admin.
        admin = TrinoSettings(
            "127.0.0.1",
            platform.cfg.trino_port,
            platform.creds.trino_admin_user,
            platform.creds.trino_admin_password,
            verify=str(platform.service("trino").ca_file),
        )
        cur = admin.connect(schema="smoke").cursor()
        cur.execute(f"SELECT count(*), sum(fare), count(DISTINCT zone) FROM {unique_name}")
        count, total, zones = cur.fetchone()
        assert (count, zones) == (1000, 7)
        assert total == pytest.approx(sum(r[2] for r in rows))
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")


def test_superset_api_login_and_database_list(platform):
    base = platform.cfg.superset_url
    login = _json_request(
        f"{base}/api/v1/security/login",
        {
            "username": platform.creds.superset_admin_user,
            "password": platform.creds.superset_admin_password,
            "provider": "db",
            "refresh": False,
        },
    )
    token = login["access_token"]
    databases = _json_request(f"{base}/api/v1/database/", headers={"Authorization": f"Bearer {token}"})
    names = {d["database_name"]: d for d in databases["result"]}
    assert "trino" in names
    assert names["trino"]["backend"] == "trino"


def test_superset_refuses_a_wrong_password(platform):
    with pytest.raises(urllib.error.HTTPError) as err:
        _json_request(
            f"{platform.cfg.superset_url}/api/v1/security/login",
            {
                "username": platform.creds.superset_admin_user,
                "password": "admin",
                "provider": "db",
            },
        )
    assert err.value.code == 401


def test_airflow_rest_health_and_dag_list(platform):
    base = platform.cfg.airflow_url
    health = _json_request(f"{base}/api/v2/monitor/health")
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", component

    token = _json_request(
        f"{base}/auth/token",
        {
            "username": platform.creds.airflow_admin_user,
            "password": platform.creds.airflow_admin_password,
        },
    )["access_token"]
    deadline = time.monotonic() + 120  # the dag-processor serializes new files within its refresh interval
    dag_ids: set[str] = set()
    while time.monotonic() < deadline:
        dags = _json_request(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"})
        dag_ids = {d["dag_id"] for d in dags["dags"]}
        if "platform_health" in dag_ids:
            break
        time.sleep(3)
    assert "platform_health" in dag_ids


def test_airflow_rejects_unauthenticated_api_calls(platform):
    with pytest.raises(urllib.error.HTTPError) as err:
        _json_request(f"{platform.cfg.airflow_url}/api/v2/dags")
    assert err.value.code in (401, 403)


def test_airflow_connections_reach_every_service(platform):
    """The platform_health DAG run in-process: each task uses its AIRFLOW_CONN_* connection for a real call."""
    env = {**os.environ, **platform.service("airflow").env()}
    result = subprocess.run(
        [str(platform.cfg.venv_dir / "bin" / "airflow"), "dags", "test", "platform_health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "state=success" in output, output[-3000:]


def test_make_up_twice_is_harmless(platform):
    before = {p.name: p.pid for s in platform.services for p in s.processes}
    result = subprocess.run(["make", "up"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    after = {p.name: p.pid for s in platform.services for p in s.processes}
    assert after == before, "a second `up` must not restart or duplicate anything"
    assert all(row.healthy for row in platform.status())
