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
    local.up()
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
    ports = cfg.listening_ports
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
