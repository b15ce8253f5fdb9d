"""Downloads from the real local mirror: checksums, progress, and each fault mode retried or refused."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from taxi_anomaly.ingest.download import DownloadError, NotPublished, download, probe
from taxi_anomaly.ingest.mirror import Fault, Mirror
from taxi_anomaly.ingest.settings import IngestSettings, S3Settings

GREEN = "/trip-data/green_tripdata_2024-01.parquet"
GREEN_SHA256 = "1512a953bed5"  # prefix of the real file's sha256


@pytest.fixture
def settings(mirror: Mirror) -> IngestSettings:
    """No object store needed here; fast retries."""
    return IngestSettings(
        S3Settings("http://127.0.0.1:9"),
        base_url=mirror.url,
        allowed_sources=(mirror.url,),
        metadata_dir=None,
        backoff_initial_s=0.01,
        backoff_max_s=0.1,
        max_attempts=3,
        read_timeout_s=1.5,
    )


def gets(mirror: Mirror, path: str = GREEN) -> list[int]:
    return [r.status for r in mirror.requests(path) if r.method == "GET"]


def test_download_hashes_while_streaming(mirror: Mirror, settings: IngestSettings, tlc_data: Path, tmp_path: Path):
    seen: list[tuple[int, int | None]] = []
    result = download(
        mirror.url + GREEN, tmp_path / "f.parquet", settings, lambda done, total: seen.append((done, total))
    )
    original = (tlc_data / "green_tripdata_2024-01.parquet").read_bytes()
    assert result.sha256 == hashlib.sha256(original).hexdigest()
    assert result.sha256.startswith(GREEN_SHA256)
    assert result.bytes == result.content_length == len(original)
    assert (tmp_path / "f.parquet").read_bytes() == original
    assert result.attempts == 1
    assert seen[-1] == (len(original), len(original)) and len(seen) >= 2


def test_progress_is_logged_for_large_files(mirror: Mirror, settings: IngestSettings, tmp_path: Path, caplog):
    quick = settings.with_(progress_min_bytes=1, progress_interval_s=0.0, chunk_bytes=256 * 1024)
    with caplog.at_level(logging.INFO, logger="taxi_anomaly.ingest.download"):
        download(mirror.url + GREEN, tmp_path / "f.parquet", quick)
    lines = [r.getMessage() for r in caplog.records]
    assert any("of 1.3 MiB (100%)" in line and "MiB/s" in line for line in lines), lines


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500),
        Fault("status", status=502),
        Fault("status", status=429, retry_after=0),
        Fault("drop", after_bytes=4096),
        Fault("wrong_length", length_delta=100),
        Fault("stall", after_bytes=4096, seconds=4),
    ],
    ids=lambda f: f"{f.mode}-{f.status}" if f.mode == "status" else f.mode,
)
def test_transient_fault_is_retried_then_succeeds(mirror: Mirror, settings: IngestSettings, tmp_path: Path, fault):
    mirror.add_fault(GREEN, fault)
    result = download(mirror.url + GREEN, tmp_path / "f.parquet", settings)
    assert result.attempts == 2
    assert result.sha256.startswith(GREEN_SHA256)
    assert len(gets(mirror)) == 2


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault("drop", times=None), "Connection broken"),
        (Fault("wrong_length", length_delta=100, times=None), "IncompleteRead"),
        (Fault("status", status=503, times=None), "HTTP 503"),
    ],
    ids=["drop", "wrong_length", "503"],
)
def test_persistent_fault_fails_clearly_and_leaves_nothing(
    mirror: Mirror, settings: IngestSettings, tmp_path: Path, fault: Fault, words: str
):
    mirror.add_fault(GREEN, fault)
    dest = tmp_path / "f.parquet"
    with pytest.raises(DownloadError) as caught:
        download(mirror.url + GREEN, dest, settings)
    message = str(caught.value)
    assert "after 3 attempt(s)" in message and GREEN in message and words in message
    assert len(gets(mirror)) == 3
    assert not dest.exists()


@pytest.mark.parametrize("status", [404, 403])
def test_not_published_is_not_retried(mirror: Mirror, settings: IngestSettings, tmp_path: Path, status: int):
    mirror.add_fault(GREEN, Fault("status", status=status, times=None))
    with pytest.raises(NotPublished) as caught:
        download(mirror.url + GREEN, tmp_path / "f.parquet", settings)
    assert caught.value.status == status and "not published yet or not found" in str(caught.value)
    assert gets(mirror) == [status]
    with pytest.raises(NotPublished):
        probe(mirror.url + GREEN, settings)


def test_a_missing_month_is_not_published(mirror: Mirror, settings: IngestSettings, tmp_path: Path):
    with pytest.raises(NotPublished):
        download(mirror.url + "/trip-data/green_tripdata_2099-01.parquet", tmp_path / "f.parquet", settings)


def test_other_client_errors_are_final(mirror: Mirror, settings: IngestSettings, tmp_path: Path):
    mirror.add_fault(GREEN, Fault("status", status=400, times=None))
    with pytest.raises(DownloadError, match="HTTP 400 .*not retried"):
        download(mirror.url + GREEN, tmp_path / "f.parquet", settings)
    assert gets(mirror) == [400]


def test_probe_reports_size_and_etag(mirror: Mirror, settings: IngestSettings):
    remote = probe(mirror.url + GREEN, settings)
    assert remote.content_length == 1_362_284 and remote.etag and remote.last_modified


def test_a_compressing_server_gets_the_real_file_stored(mirror: Mirror, settings: IngestSettings, tmp_path: Path):
    """A CDN that gzips whatever the client asked for: the stored file is the real parquet, not the gzip stream."""
    mirror.add_fault(GREEN, Fault("gzip"))
    result = download(mirror.url + GREEN, tmp_path / "f.parquet", settings)
    assert result.sha256.startswith(GREEN_SHA256)
    assert (tmp_path / "f.parquet").read_bytes()[:4] == b"PAR1"


def test_a_trickling_source_is_abandoned_below_the_minimum_throughput(
    mirror: Mirror, settings: IngestSettings, tmp_path: Path
):
    """One byte every 0.2 s never trips the 1.5 s read timeout; the throughput floor ends each attempt instead."""
    mirror.add_fault(GREEN, Fault("trickle", times=None, after_bytes=1000, seconds=0.2))
    slow = settings.with_(min_throughput_bytes_s=1000, throughput_window_s=1.0, max_attempts=2)
    with pytest.raises(DownloadError, match=r"green_tripdata_2024-01\.parquet.*below the minimum 1000 B/s"):
        download(mirror.url + GREEN, tmp_path / "f.parquet", slow)
    assert gets(mirror) == [200, 200]
    assert not (tmp_path / "f.parquet").exists()


def test_the_overall_deadline_fails_for_good_naming_the_url(mirror: Mirror, settings: IngestSettings, tmp_path: Path):
    mirror.add_fault(GREEN, Fault("trickle", times=None, after_bytes=1000, seconds=0.2))
    slow = settings.with_(min_throughput_bytes_s=0, download_deadline_s=1.5)
    with pytest.raises(
        DownloadError,
        match=r"GET http://127\.0\.0\.1:\d+/trip-data/green_tripdata_2024-01\.parquet: "
        r"not finished after the 2 s deadline",
    ):
        download(mirror.url + GREEN, tmp_path / "f.parquet", slow)
    assert gets(mirror) == [200]  # not retried


def test_only_allowed_sources_are_accepted():
    s3 = S3Settings("http://127.0.0.1:9")
    for url in (
        "http://127.0.0.1:8080/api",
        "http://169.254.169.254/latest",
        "file:///etc/passwd",
        "https://user:pw@d37ci6vzurychx.cloudfront.net",
    ):
        with pytest.raises(ValueError, match="tlc_base_url|not an http|user name"):
            IngestSettings(s3, base_url=url, metadata_dir=None, allowed_sources=("http://127.0.0.1:8765",))
    IngestSettings(s3, metadata_dir=None)  # the TLC's CDN is always allowed
    mirror = IngestSettings(
        s3, base_url="http://127.0.0.1:8765/", metadata_dir=None, allowed_sources=("http://127.0.0.1:8765",)
    )
    assert mirror.base_url == "http://127.0.0.1:8765/"


def test_allowed_sources_come_from_the_environment():
    from taxi_anomaly.ingest.settings import allowed_sources_from_env

    found = allowed_sources_from_env(
        {"TAP_MIRROR_URL": "http://127.0.0.1:9165", "TAP_ALLOWED_SOURCES": "https://a.example, "}
    )
    assert found == ("https://d37ci6vzurychx.cloudfront.net:443", "http://127.0.0.1:9165", "https://a.example:443")
