"""Unit tests of the local platform manager: configuration, credentials, process tracking, the bind shim."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_platform.config import PlatformConfig, load_config
from local_platform.credentials import Credentials, load_or_create
from local_platform.process import TrackedProcess
from local_platform.services.metastore import build_loopback_shim


def test_config_defaults_and_env_overrides():
    cfg = load_config({"TAP_TRINO_PORT": "18081", "TAP_STATE_DIR": "/tmp/x"})
    assert cfg.trino_port == 18081
    assert cfg.state_dir == Path("/tmp/x")
    assert cfg.metastore_port == PlatformConfig().metastore_port
    assert cfg.trino_url == "http://127.0.0.1:18081"


def test_config_rejects_a_non_numeric_port():
    with pytest.raises(ValueError, match="TAP_MINIO_PORT='nine' is not a valid int"):
        load_config({"TAP_MINIO_PORT": "nine"})


def test_credentials_are_random_private_and_stable(tmp_path):
    path = tmp_path / "credentials.env"
    first = load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create(path) == first, "a second load must return the same credentials"
    other = Credentials.generate()
    for field in ("minio_root_password", "airflow_admin_password", "superset_admin_password", "superset_secret_key"):
        value = getattr(first, field)
        assert len(value) >= 24 and value != getattr(other, field)
        assert value.lower() not in {"admin", "password", "minioadmin", "airflow", "superset"}


def test_credentials_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "credentials.env"
    load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create(path)


def test_tracked_process_stops_its_whole_process_group(tmp_path):
    proc = TrackedProcess("sleeper", tmp_path / "sleeper.pid")
    # A parent that spawns a child: stopping must end both.
    script = "import subprocess,time; subprocess.Popen(['sleep','300']); time.sleep(300)"
    pid = proc.start([sys.executable, "-c", script], dict(os.environ), tmp_path / "sleeper.log")
    time.sleep(0.5)
    children = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2
    assert proc.is_running() and proc.pid == pid
    assert proc.stop(timeout=5)
    assert not any(Path(f"/proc/{c}").exists() for c in children)
    assert not proc.pidfile.exists()
    assert proc.stop() is False, "stopping twice is harmless"


def test_tracked_process_ignores_a_reused_pid(tmp_path):
    """A stale PID file naming a PID that now belongs to another process must not make us kill it."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "stale.pid"
        pidfile.write_text(json.dumps({"pid": victim.pid, "start_time": "1", "argv": ["old"]}))
        proc = TrackedProcess("stale", pidfile)
        assert proc.pid is None
        assert proc.stop() is False
        assert victim.poll() is None, "the unrelated process must still run"
    finally:
        victim.kill()
        victim.wait()


def test_loopback_shim_rewrites_wildcard_binds():
    shim = build_loopback_shim(load_config())
    code = (
        "import socket,sys\n"
        "a=socket.socket(); a.bind(('0.0.0.0',0)); a.listen()\n"
        "b=socket.socket(socket.AF_INET6); b.bind(('::',0)); b.listen()\n"
        "print(a.getsockname()[0], b.getsockname()[0], b.getsockname()[1])\n"
        "sys.stdout.flush(); c,_=b.accept(); c.close()\n"
    )
    # Without a ticket in its environment the shim only rewrites binds (a session that started Spark has one in
    # os.environ, which would turn the accept gate on in the child and refuse this test's connection).
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_METASTORE_TICKET")}
    child = subprocess.Popen(
        [sys.executable, "-c", code], env={**env, "LD_PRELOAD": str(shim)}, stdout=subprocess.PIPE, text=True
    )
    v4, v6, v6_port = child.stdout.readline().split()
    assert v4 == "127.0.0.1"
    assert v6 == "::ffff:127.0.0.1"
    # The dual-stack socket still accepts IPv4 clients on loopback.
    socket.create_connection(("127.0.0.1", int(v6_port)), timeout=5).close()
    assert child.wait(timeout=10) == 0


GATED_ECHO_SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n"
    "print(s.getsockname()[1]); sys.stdout.flush()\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'admitted'); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection(('127.0.0.1',int(sys.argv[1])),timeout=10)\n"
    "try: print(c.recv(100).decode() or 'closed')\n"
    "except ConnectionResetError: print('closed')\n"
)


def test_accept_gate_admits_only_processes_that_carry_the_ticket(tmp_path):
    """The shim's accept gate (issue 16, item 2): a client without the ticket is closed before any reply; one with
    the ticket in its environment, or holding the ticket file open, is served."""
    shim = build_loopback_shim(load_config())
    ticket_file = tmp_path / "gate.ticket"
    ticket_file.write_text("the-ticket")
    ticket_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "TAP_METASTORE_TICKET"}
    server = subprocess.Popen(
        [sys.executable, "-c", GATED_ECHO_SERVER],
        env={**env, "LD_PRELOAD": str(shim), "TAP_METASTORE_TICKET": "the-ticket",
             "TAP_METASTORE_TICKET_FILE": str(ticket_file.resolve())},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        port = server.stdout.readline().strip()

        def client(extra_env: dict[str, str]) -> str:
            run = subprocess.run(
                [sys.executable, "-c", CLIENT, port], env={**env, **extra_env}, capture_output=True, text=True
            )
            return run.stdout.strip()

        assert client({}) == "closed"
        assert client({"TAP_METASTORE_TICKET": "a-guess"}) == "closed"
        assert client({"TAP_METASTORE_TICKET": "the-ticket"}) == "admitted"

        def in_process() -> bytes:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as conn:
                try:
                    return conn.recv(100)
                except ConnectionResetError:
                    return b""

        assert in_process() == b"", "this process holds no ticket yet"
        with open(ticket_file):
            assert in_process() == b"admitted"
    finally:
        server.kill()
        _, errors = server.communicate(timeout=10)
    assert errors.count("metastore accept gate: refused") == 3, errors


def test_credentials_of_an_older_install_gain_the_new_secrets_and_keep_the_old(tmp_path):
    path = tmp_path / "credentials.env"
    first = load_or_create(path)
    kept = [line for line in path.read_text().splitlines() if not line.startswith("KAFKA_")]
    path.write_text("\n".join(kept) + "\n")  # as written before Kafka was part of the platform
    upgraded = load_or_create(path)
    assert upgraded.minio_root_password == first.minio_root_password
    assert upgraded.kafka_streaming_password and upgraded.kafka_streaming_password != first.kafka_streaming_password
    assert load_or_create(path) == upgraded, "the added secrets are stored, not generated again"
    assert path.stat().st_mode & 0o077 == 0


def test_stream_status_is_healthy_when_fresh_and_every_query_reported(tmp_path):
    import json
    import time

    from local_platform.services.stream import status_healthy

    status = tmp_path / "status.json"
    assert not status_healthy(status)  # no file yet
    progress = {"batchId": 3}
    for queries, age, healthy in [
        ({"events": progress, "windows": progress, "sink": progress}, 1, True),  # the three queries of the job
        ({"events": progress, "windows": progress, "sink": None}, 1, False),  # one has not reported yet
        ({}, 1, False),
        ({"events": progress}, 60, False),  # stale: the job stopped writing
    ]:
        status.write_text(json.dumps({"updated_at": time.time() - age, "queries": queries}))
        assert status_healthy(status) is healthy, (queries, age)


def test_the_raw_store_setting_chooses_the_raw_root_and_is_checked():
    assert load_config({"TAP_RAW_STORE": "s3"}).raw_root_uri == "s3a://tap-raw"
    hdfs = load_config({"TAP_RAW_STORE": "hdfs", "TAP_HDFS_NAMENODE_PORT": "8020"})
    assert hdfs.raw_root_uri == "hdfs://127.0.0.1:8020/tap-raw"
    with pytest.raises(ValueError, match="TAP_RAW_STORE='gcs': choose one of s3, hdfs"):
        load_config({"TAP_RAW_STORE": "gcs"})


def test_hdfs_is_a_core_service_only_when_the_raw_zone_is_in_hdfs(tmp_path):
    from local_platform.platform import LocalPlatform

    creds = Credentials.generate()
    s3 = LocalPlatform(load_config({"TAP_STATE_DIR": str(tmp_path)}), creds)
    hdfs = LocalPlatform(load_config({"TAP_STATE_DIR": str(tmp_path), "TAP_RAW_STORE": "hdfs"}), creds)
    assert "hdfs" not in [s.name for s in s3.services] and "hdfs" in [s.name for s in s3.optional_services]
    assert [s.name for s in hdfs.services][:2] == ["minio", "hdfs"]
    assert [s.name for s in s3.exploration_services] == ["spark-connect", "jupyter"]


def test_the_hdfs_classpath_is_the_hadoop_that_pyspark_bundles():
    from local_platform import artifacts

    versions = {a.artifact: a.version for a in artifacts.hdfs_jars()}
    assert versions["hadoop-hdfs"] == versions["hadoop-common"] == artifacts.HADOOP_VERSION
    assert all(len(a.sha256) == 64 for a in artifacts.hdfs_jars())


def test_connections_say_where_the_raw_zone_is():
    from local_platform.connections import connection_definitions

    cfg = load_config(
        {"TAP_RAW_STORE": "hdfs", "TAP_HDFS_NAMENODE_PORT": "8020", "TAP_HDFS_NAMENODE_HTTP_PORT": "9870"}
    )
    conns = connection_definitions(cfg, Credentials.generate())
    assert conns["tap_s3"]["extra"]["raw_store"] == "hdfs"
    assert conns["tap_s3"]["extra"]["raw_root"] == "hdfs://127.0.0.1:8020/tap-raw"
    assert (conns["tap_hdfs"]["port"], conns["tap_hdfs"]["login"]) == (9870, cfg.hdfs_user)


def test_a_kafka_cluster_id_never_starts_with_a_dash(monkeypatch):
    """The storage tool reads `-t -xyz` as an option: a random id starting with '-' failed a fresh install."""
    import uuid

    from local_platform.services import kafka

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" + bytes(15))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka.new_cluster_id()
    assert cluster_id == "AQAAAAAAAAAAAAAAAAAAAA" and len(cluster_id) == 22
