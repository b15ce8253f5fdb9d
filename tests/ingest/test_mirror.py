"""The local TLC mirror: what it serves, each fault as seen on the wire, the control endpoint and the CLI."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from taxi_anomaly.ingest.mirror import Fault, Mirror
from taxi_anomaly.ingest.settings import REPO_ROOT

GREEN = "/trip-data/green_tripdata_2024-01.parquet"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_get(url: str, path: str) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", path)
    return connection.getresponse(), connection


def test_serves_shared_and_generated_files_byte_for_byte(mirror: Mirror, tlc_data: Path, generated_dir: Path):
    answer = requests.get(mirror.url + GREEN, timeout=10)
    assert answer.status_code == 200
    assert sha256(answer.content) == sha256((tlc_data / "green_tripdata_2024-01.parquet").read_bytes())
    head = requests.head(mirror.url + GREEN, timeout=10)
    assert int(head.headers["Content-Length"]) == 1_362_284 and head.headers["ETag"]

    zones = requests.get(mirror.url + "/misc/taxi_zone_lookup.csv", timeout=10)
    assert zones.text.startswith('"LocationID","Borough","Zone","service_zone"')

    (generated_dir / "fhvhv_tripdata_2031-05.parquet").write_bytes(b"PAR1 generated PAR1")
    generated = requests.get(mirror.url + "/trip-data/fhvhv_tripdata_2031-05.parquet", timeout=10)
    assert generated.content == b"PAR1 generated PAR1"


@pytest.mark.parametrize(
    "path",
    ["/trip-data/green_tripdata_2099-01.parquet", "/trip-data/..%2F..%2Fetc%2Fpasswd", "/tlc/taxi_zone_lookup.csv"],
)
def test_anything_else_is_404(mirror: Mirror, path: str):
    assert requests.get(mirror.url + path, timeout=10).status_code == 404


def test_binds_loopback_only(mirror: Mirror):
    assert mirror.url.startswith("http://127.0.0.1:")


def test_status_fault_then_normal_service(mirror: Mirror):
    mirror.add_fault(GREEN, Fault("status", status=503, times=2, retry_after=7))
    first = requests.get(mirror.url + GREEN, timeout=10)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "7")
    assert requests.get(mirror.url + GREEN, timeout=10).status_code == 503
    assert requests.get(mirror.url + GREEN, timeout=10).status_code == 200
    assert [r.status for r in mirror.requests(GREEN)] == [503, 503, 200]


def test_drop_closes_the_connection_mid_body(mirror: Mirror):
    mirror.add_fault(GREEN, Fault("drop", after_bytes=1000))
    response, connection = raw_get(mirror.url, GREEN)
    assert int(response.getheader("Content-Length")) == 1_362_284
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    assert len(caught.value.partial) == 1000
    connection.close()


@pytest.mark.parametrize("delta", [5000, -5000])
def test_wrong_content_length(mirror: Mirror, delta: int):
    mirror.add_fault(GREEN, Fault("wrong_length", length_delta=delta))
    response, connection = raw_get(mirror.url, GREEN)
    assert int(response.getheader("Content-Length")) == 1_362_284 + delta
    if delta > 0:
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    else:
        assert len(response.read()) == 1_362_284 + delta
    connection.close()


def test_stall_outlasts_a_read_timeout(mirror: Mirror):
    mirror.add_fault(GREEN, Fault("stall", after_bytes=100, seconds=5))
    with pytest.raises(requests.exceptions.ConnectionError):  # urllib3 wraps the read timeout mid-body
        requests.get(mirror.url + GREEN, timeout=(2, 0.5)).content  # noqa: B018 - read the body


def test_control_endpoint(mirror: Mirror, tlc_data: Path):
    url = mirror.url
    assert requests.get(f"{url}/_mirror/health", timeout=10).json()["data_dirs"][0].endswith("data")
    created = requests.post(f"{url}/_mirror/faults", json={"path": GREEN, "mode": "status", "status": 429}, timeout=10)
    assert created.status_code == 201
    assert requests.get(url + GREEN, timeout=10).status_code == 429
    assert requests.get(url + GREEN, timeout=10).status_code == 200  # times=1 by default

    bad = requests.post(f"{url}/_mirror/faults", json={"path": GREEN, "mode": "explode"}, timeout=10)
    assert bad.status_code == 400 and "unknown fault mode" in bad.json()["error"]

    target = str(tlc_data / "bad" / "json_error_body_saved_as.csv")
    alias = {"path": "/trip-data/green_tripdata_2030-01.parquet", "file": target}
    assert requests.post(f"{url}/_mirror/aliases", json=alias, timeout=10).status_code == 201
    assert b"Cannot find view" in requests.get(url + alias["path"], timeout=10).content
    outside = {"path": "/trip-data/x.parquet", "file": "/etc/hostname"}
    assert requests.post(f"{url}/_mirror/aliases", json=outside, timeout=10).status_code == 400

    forever = {"path": GREEN, "mode": "status", "status": 500, "times": None}
    assert requests.post(f"{url}/_mirror/faults", json=forever, timeout=10).status_code == 201
    assert requests.get(url + GREEN, timeout=10).status_code == 500
    assert requests.delete(f"{url}/_mirror/faults", timeout=10).status_code == 200
    assert requests.get(url + GREEN, timeout=10).status_code == 200

    log = requests.get(f"{url}/_mirror/requests", params={"path": GREEN}, timeout=10).json()
    assert [r["status"] for r in log] == [429, 200, 500, 200]


def test_command_line_mirror(shared_data: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    command = [sys.executable, "-m", "taxi_anomaly.ingest.mirror", "--port", "0", "--data-dir", str(shared_data)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, f"no URL in the mirror's first line: {line!r}"
        assert requests.get(match.group(1) + GREEN, timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
