"""Settings: built from the Airflow connection, checked on construction, secrets kept out of repr."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from taxi_anomaly.ingest.settings import IngestSettings, S3Settings


def connection(**extra) -> SimpleNamespace:
    return SimpleNamespace(
        host="127.0.0.1",
        port=9000,
        schema="http",
        login="user",
        password="s3cr3t-value",
        extra_dejson={"endpoint_url": "http://127.0.0.1:9000", "raw_bucket": "raw-x", **extra},
    )


def test_from_the_tap_s3_connection():
    settings = IngestSettings.from_connection(connection(), key_prefix="p/")
    assert settings.raw_bucket == "raw-x" and settings.key_prefix == "p/"
    assert settings.s3.netloc == "127.0.0.1:9000" and not settings.s3.secure
    assert "s3cr3t-value" not in repr(settings)


def test_from_the_environment_variable(monkeypatch):
    conn = {"host": "127.0.0.1", "port": 9000, "schema": "http", "login": "u", "password": "p", "extra": {}}
    monkeypatch.setenv("AIRFLOW_CONN_TAP_S3", json.dumps(conn))
    assert S3Settings.from_env() == S3Settings("http://127.0.0.1:9000", "u", "p")
    monkeypatch.delenv("AIRFLOW_CONN_TAP_S3")
    with pytest.raises(RuntimeError, match="AIRFLOW_CONN_TAP_S3 is not set"):
        S3Settings.from_env()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"key_prefix": "no-slash"}, "key_prefix"),
        ({"trailing_row_ratio": (1.2, 1.5)}, "trailing_row_ratio"),
        ({"metadata_dir": "/nonexistent/metadata"}, "/nonexistent/metadata"),
    ],
)
def test_bad_values_are_refused_with_their_name(changes: dict, words: str):
    with pytest.raises(ValueError, match=words):
        IngestSettings(S3Settings("http://127.0.0.1:9000"), **changes)


def test_endpoint_must_be_a_url():
    with pytest.raises(ValueError, match="127.0.0.1:9000"):
        S3Settings("127.0.0.1:9000")


def test_source_suffixes_are_file_endings_and_come_from_the_connection_extra():
    with pytest.raises(ValueError, match="source_suffixes must be file endings"):
        IngestSettings(S3Settings("http://127.0.0.1:9"), metadata_dir=None, source_suffixes=("csv",))

    class Connection:
        host, port, schema, login, password = "127.0.0.1", 9000, "http", "user", "secret"
        extra_dejson = {"source_suffixes": [".parquet", ".csv.gz"]}

    settings = IngestSettings.from_connection(Connection(), metadata_dir=None)
    assert settings.source_suffixes == (".parquet", ".csv.gz")
