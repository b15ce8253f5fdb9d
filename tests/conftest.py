"""Shared fixtures: the running local platform (started here if needed) and a local SparkSession."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from local_platform.config import load_config
from local_platform.platform import LocalPlatform
from local_platform.spark import spark_env


@pytest.fixture(scope="session")
def platform() -> Iterator[LocalPlatform]:
    """The local platform, healthy. Started (and at the end stopped, checked clean) only if it was not running."""
    local = LocalPlatform(load_config())
    already_up = all(row.healthy for row in local.status())
    if not already_up:
        local.up()
    yield local
    if not already_up:
        pids = [p.pid for s in local.services for p in s.processes]
        local.down()
        _assert_stopped(local, [pid for pid in pids if pid])


def _assert_stopped(local: LocalPlatform, pids: list[int]) -> None:
    """After `down`: none of the processes started by `up` is alive and none of the platform's ports answers."""
    time.sleep(1)
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    cfg = local.cfg
    ports = [
        cfg.minio_port,
        cfg.minio_console_port,
        cfg.metastore_port,
        cfg.trino_port,
        cfg.superset_port,
        cfg.airflow_port,
    ]
    listening = [port for port in ports if _port_answers(port)]
    assert not alive and not listening, f"after down: processes {alive} alive, ports {listening} listening"


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest):
    """A local SparkSession configured by the platform's spark-defaults.conf (Iceberg catalog `iceberg`)."""
    cfg = load_config()
    os.environ.update(spark_env(cfg))
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName("tests").config("spark.sql.shuffle.partitions", "4").getOrCreate()
    yield session
    session.stop()


@pytest.fixture
def unique_name() -> str:
    """A name no other test run uses (tables, objects, databases)."""
    return f"t_{uuid.uuid4().hex[:10]}"
