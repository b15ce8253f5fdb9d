"""Trino's logins and access rules, against the real local Trino: what the admin and the analyst may and may not do."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import replace

import pytest
import requests
import trino

from local_platform.config import REPO_ROOT
from tests.serving.conftest import query

pytestmark = pytest.mark.platform


# Authentication --------------------------------------------------------------------------------------------------
def test_both_users_log_in_with_their_password(trino_admin, trino_analyst):
    assert query(trino_admin, "SELECT current_user") == [[trino_admin.user]]
    assert query(trino_analyst, "SELECT current_user") == [[trino_analyst.user]]


@pytest.mark.parametrize("who", ["wrong password", "unknown user", "no password"])
def test_trino_refuses_logins_without_the_right_password(trino_admin, who):
    settings = {
        "wrong password": replace(trino_admin, password="not-the-password"),
        "unknown user": replace(trino_admin, user="intruder"),
        "no password": replace(trino_admin, password=None),
    }[who]
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        query(settings, "SELECT 1")


def test_plain_http_gets_no_answer_from_trino(platform):
    """Only HTTPS listens: a plain-HTTP request with a user name (what Trino's insecure mode would accept) fails."""
    url = f"http://127.0.0.1:{platform.cfg.trino_port}/v1/statement"
    try:
        response = requests.post(url, data="SELECT 1", headers={"X-Trino-User": "platform_admin"}, timeout=10)
    except requests.RequestException:
        return  # connection closed by the TLS listener: nothing answered
    assert response.status_code == 400, response.text[:300]
    assert "nextUri" not in response.text


def test_the_certificate_is_required_to_talk_to_trino(trino_admin):
    """Clients verify Trino's per-install certificate; without it the connection is refused, not trusted blindly."""
    untrusted = replace(trino_admin, verify=True)  # the system trust store only
    with pytest.raises(trino.exceptions.TrinoConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        query(untrusted, "SELECT 1")


def test_password_file_is_hashed_private_and_ignored_by_git(platform):
    password_file = platform.cfg.conf_dir / "trino" / "etc" / "password.db"
    text = password_file.read_text()
    creds = platform.creds
    assert [line.split(":")[0] for line in text.splitlines()] == [creds.trino_admin_user, creds.trino_analyst_user]
    assert creds.trino_admin_password not in text and creds.trino_analyst_password not in text
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    if password_file.resolve().is_relative_to(REPO_ROOT):  # TAP_STATE_DIR may also point outside the work tree
        ignored = subprocess.run(["git", "check-ignore", "-q", str(password_file)], cwd=REPO_ROOT)
        assert ignored.returncode == 0, f"{password_file} would be committed"


# Authorisation: the admin ---------------------------------------------------------------------------------------
def test_admin_creates_writes_reads_and_drops(trino_admin, unique_name):
    schema = f"iceberg.{unique_name}"
    query(trino_admin, f"CREATE SCHEMA {schema}")
    try:
        query(trino_admin, f"CREATE TABLE {schema}.t (id integer, note varchar)")
        query(trino_admin, f"INSERT INTO {schema}.t VALUES (1, 'a'), (2, 'b')")
        query(trino_admin, f"UPDATE {schema}.t SET note = 'c' WHERE id = 2")
        query(trino_admin, f"DELETE FROM {schema}.t WHERE id = 1")
        assert query(trino_admin, f"SELECT id, note FROM {schema}.t") == [[2, "c"]]
    finally:
        query(trino_admin, f"DROP TABLE IF EXISTS {schema}.t")
        query(trino_admin, f"DROP SCHEMA {schema}")
    assert unique_name not in {row[0] for row in query(trino_admin, "SHOW SCHEMAS FROM iceberg")}


def test_admin_reads_raw_trips(trino_admin, pipeline_run):
    marker = pipeline_run.trip_marker
    rows = query(trino_admin, f"SELECT count(*) FROM iceberg.taxi.trips_normalised WHERE pu_location_id = {marker}")
    assert rows == [[pipeline_run.written["trips_normalised"]]]


# Authorisation: the analyst ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["anomaly_scores", "window_features"])
def test_analyst_reads_the_anomaly_tables(trino_analyst, pipeline_run, table):
    rows = query(trino_analyst, f"SELECT count(*) FROM iceberg.taxi.{table} WHERE run_id = '{pipeline_run.run_id}'")
    assert rows == [[pipeline_run.written[table]]]


def test_analyst_reads_the_stream_alerts(trino_analyst, pipeline_run):
    mine = f"starts_with(alert_id, '{pipeline_run.run_id}:')"
    rows = query(trino_analyst, f"SELECT count(*) FROM iceberg.taxi.stream_alerts WHERE {mine}")
    assert rows == [[pipeline_run.written["stream_alerts"]]] and rows[0][0] > 0


def test_analyst_sees_only_the_anomaly_tables(trino_analyst, pipeline_run):
    assert {row[0] for row in query(trino_analyst, "SHOW CATALOGS")} == {"iceberg", "system"}
    assert {row[0] for row in query(trino_analyst, "SHOW SCHEMAS FROM iceberg")} == {"taxi"}
    # stream_trips and stream_window_scores, when the stream has run, are hidden like trips_normalised
    assert {row[0] for row in query(trino_analyst, "SHOW TABLES FROM iceberg.taxi")} == {
        "anomaly_scores",
        "window_features",
        "stream_alerts",
    }


DENIED_TO_THE_ANALYST = {
    "read raw trips": "SELECT count(*) FROM iceberg.taxi.trips_normalised",
    "delete alerts": "DELETE FROM iceberg.taxi.stream_alerts WHERE month = '2001-02'",
    "insert": "INSERT INTO iceberg.taxi.anomaly_scores (trip_type, granularity, month, key, bucket_start, "
    "model_version, run_id) VALUES ('yellow', 'city', '2001-02', 'NYC', TIMESTAMP '2001-02-05 00:00', 'm', 'r')",
    "delete": "DELETE FROM iceberg.taxi.anomaly_scores WHERE month = '2001-02'",
    "update": "UPDATE iceberg.taxi.window_features SET trips = 0 WHERE month = '2001-02'",
    "create table": "CREATE TABLE iceberg.taxi.analyst_was_here (id integer)",
    "create table as select": "CREATE TABLE iceberg.taxi.copy AS SELECT * FROM iceberg.taxi.anomaly_scores",
    "drop table": "DROP TABLE iceberg.taxi.anomaly_scores",
    "alter table": "ALTER TABLE iceberg.taxi.anomaly_scores ADD COLUMN note varchar",
    "create schema": "CREATE SCHEMA iceberg.analyst_schema",
    "read other queries": "SELECT query FROM system.runtime.queries",
}


@pytest.mark.parametrize("action", DENIED_TO_THE_ANALYST)
def test_analyst_is_denied(trino_analyst, trino_admin, pipeline_run, action):
    with pytest.raises(trino.exceptions.TrinoUserError) as denied:
        query(trino_analyst, DENIED_TO_THE_ANALYST[action])
    assert denied.value.error_name == "PERMISSION_DENIED", denied.value.message
    assert denied.value.message.startswith("Access Denied")
    # and nothing changed
    count = f"SELECT count(*) FROM iceberg.taxi.anomaly_scores WHERE run_id = '{pipeline_run.run_id}'"
    assert query(trino_admin, count) == [[pipeline_run.written["anomaly_scores"]]]
    assert {row[0] for row in query(trino_admin, "SHOW TABLES FROM iceberg.taxi")} >= {
        "anomaly_scores",
        "window_features",
        "trips_normalised",
    }


def test_analyst_cannot_read_tables_outside_the_anomaly_schema(trino_admin, trino_analyst, unique_name):
    table = f"iceberg.{unique_name}.anomaly_scores"  # same table name, another schema
    query(trino_admin, f"CREATE SCHEMA iceberg.{unique_name}")
    try:
        query(trino_admin, f"CREATE TABLE {table} AS SELECT 1 AS id")
        with pytest.raises(trino.exceptions.TrinoUserError) as denied:
            query(trino_analyst, f"SELECT * FROM {table}")
        assert denied.value.error_name == "PERMISSION_DENIED"
    finally:
        query(trino_admin, f"DROP TABLE IF EXISTS {table}")
        query(trino_admin, f"DROP SCHEMA iceberg.{unique_name}")
