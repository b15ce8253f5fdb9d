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
from local_platform.services.base import Service
from local_platform.services.metastore import MetastoreTicket
from local_platform.spark import spark_env


@pytest.fixture(scope="session")
def platform() -> Iterator[LocalPlatform]:
    """The local platform, healthy. Services that were not running are started here and, at the end, exactly
    those are stopped again (checked clean); services someone else started are left alone.

    The test session is one of the platform's metastore clients: it holds the metastore ticket (an open file) while
    the platform is in use, so in-process clients (pyiceberg, health checks) pass the metastore's accept gate."""
    local = LocalPlatform(load_config())
    was_running = {s.name for s in local.services if s.is_running()}
    local.up(local.services)
    with MetastoreTicket(local.cfg):
        yield local
    started_here = [s for s in local.services if s.name not in was_running]
    if not started_here:
        return
    pids = [p.pid for s in started_here for p in s.processes]
    for service in reversed(started_here):
        service.stop()
    if len(started_here) == len(local.services):
        _assert_stopped(local, [pid for pid in pids if pid])
    else:
        time.sleep(1)
        alive = [pid for pid in pids if pid and os.path.exists(f"/proc/{pid}")]
        assert not alive, f"after stopping {[s.name for s in started_here]}: processes {alive} still alive"


def _assert_stopped(local: LocalPlatform, pids: list[int]) -> None:
    """After `down`: none of the processes started by `up` is alive and none of the platform's ports answers."""
    time.sleep(1)
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    cfg = local.cfg
    ports = (*cfg.listening_ports, *cfg.optional_ports)
    listening = [port for port in ports if _port_answers(port)]
    assert not alive and not listening, f"after down: processes {alive} alive, ports {listening} listening"


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _optional_service(local: LocalPlatform, name: str) -> Iterator[Service]:
    """Start one service of the platform for this test session unless it runs already; stop it afterwards if it
    was started here. Depends on `platform`, so it stops before the core does."""
    service = local.service(name)
    started_here = not service.is_running()
    service.start()
    yield service
    if started_here:
        pids = [p.pid for p in service.processes]
        service.stop()
        time.sleep(0.5)
        alive = [pid for pid in pids if pid and os.path.exists(f"/proc/{pid}")]
        assert not alive, f"after stopping {name}: processes {alive} still alive"


@pytest.fixture(scope="session")
def hdfs(platform: LocalPlatform) -> Iterator[Service]:
    """HDFS (NameNode + DataNode), started once per session by the tests of the HDFS raw store."""
    yield from _optional_service(platform, "hdfs")


@pytest.fixture(scope="session")
def spark_connect(platform: LocalPlatform, hdfs: Service) -> Iterator[Service]:
    """The Spark Connect server (with HDFS, so that it can read either raw store)."""
    yield from _optional_service(platform, "spark-connect")


@pytest.fixture(scope="session")
def jupyter(platform: LocalPlatform, spark_connect: Service) -> Iterator[Service]:
    yield from _optional_service(platform, "jupyter")


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest):
    """A local SparkSession configured by the platform's spark-defaults.conf (Iceberg catalog `iceberg`)."""
    cfg = load_config()
    os.environ.update(spark_env(cfg))
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName("tests").config("spark.sql.shuffle.partitions", "4").getOrCreate()
    yield session
    session.stop()


# Generated fhvhv months shared by the job and notebook tests: three of history, one to score (labelled anomalies).
FHVHV_HISTORY = ("2024-01", "2024-02", "2024-03")
FHVHV_TARGET = "2024-04"


@pytest.fixture(scope="session")
def generated_fhvhv_months(tmp_path_factory: pytest.TempPathFactory) -> list:
    """The four months as local parquet files (made once per session, ~10-20 s each on a loaded machine)."""
    from pathlib import Path

    from taxi_anomaly.synthetic import generate_month

    out = tmp_path_factory.mktemp("generated-fhvhv")
    return [
        Path(generate_month("fhvhv", month, out, trips=150_000, seed=10 + i).data_path)
        for i, month in enumerate([*FHVHV_HISTORY, FHVHV_TARGET])
    ]


@pytest.fixture
def unique_name() -> str:
    """A name no other test run uses (tables, objects, databases)."""
    return f"t_{uuid.uuid4().hex[:10]}"
