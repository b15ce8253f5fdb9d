"""Trino's logins and access rules, against the real local Trino: what the admin and the readers may and may not do.

Authorisation is checked under both access-control modes (TAP_TRINO_ACCESS_CONTROL): the platform's own Trino runs
the configured one, and a second, short-lived Trino (tests/serving/access_modes.py) the other, for this module only.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests
import trino

from local_platform.config import REPO_ROOT, TRINO_ACCESS_CONTROL_MODES
from tests.serving.access_modes import Logins, logins_under
from tests.serving.conftest import query

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module", params=TRINO_ACCESS_CONTROL_MODES)
def access(request, platform) -> Iterator[Logins]:
    """The admin's and the readers' logins on a Trino whose access is decided by OPA, then by the file rules."""
    yield from logins_under(platform, request.param)


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
    users = [creds.trino_admin_user, creds.trino_analyst_user, creds.trino_green_analyst_user]
    assert [line.split(":")[0] for line in text.splitlines()] == users
    for password in (creds.trino_admin_password, creds.trino_analyst_password, creds.trino_green_analyst_password):
        assert password not in text
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    if password_file.resolve().is_relative_to(REPO_ROOT):  # TAP_STATE_DIR may also point outside the work tree
        ignored = subprocess.run(["git", "check-ignore", "-q", str(password_file)], cwd=REPO_ROOT)
        assert ignored.returncode == 0, f"{password_file} would be committed"


# Authorisation: the admin ---------------------------------------------------------------------------------------
def test_admin_creates_writes_reads_and_drops(access, unique_name):
    trino_admin = access.admin
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


def test_admin_reads_raw_trips(access, pipeline_run):
    trino_admin = access.admin
    marker = pipeline_run.trip_marker
    rows = query(trino_admin, f"SELECT count(*) FROM iceberg.taxi.trips_normalised WHERE pu_location_id = {marker}")
    assert rows == [[pipeline_run.written["trips_normalised"]]]


# Authorisation: the analyst ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["anomaly_scores", "window_features_current"])
def test_analyst_reads_the_anomaly_tables(access, pipeline_run, table):
    trino_analyst = access.analyst
    rows = query(trino_analyst, f"SELECT count(*) FROM iceberg.taxi.{table} WHERE run_id = '{pipeline_run.run_id}'")
    assert rows == [[pipeline_run.written[table.removesuffix("_current")]]]  # the view: features of scored runs


def test_analyst_reads_the_stream_alerts(access, pipeline_run):
    trino_analyst = access.analyst
    mine = f"starts_with(alert_id, '{pipeline_run.run_id}:')"
    rows = query(trino_analyst, f"SELECT count(*) FROM iceberg.taxi.stream_alerts WHERE {mine}")
    assert rows == [[pipeline_run.written["stream_alerts"]]] and rows[0][0] > 0


@pytest.mark.parametrize("reader", ["analyst", "green_analyst"])
def test_readers_see_only_the_anomaly_tables(access, pipeline_run, reader):
    login = access.reader(reader)
    assert {row[0] for row in query(login, "SHOW CATALOGS")} == {"iceberg", "system"}
    assert {row[0] for row in query(login, "SHOW SCHEMAS FROM iceberg")} == {"taxi"}
    # stream_trips and stream_window_scores, when the stream has run, are hidden like trips_normalised
    assert {row[0] for row in query(login, "SHOW TABLES FROM iceberg.taxi")} == {
        "anomaly_scores",
        "window_features_current",
        "stream_alerts",
        "model_evaluations",
    }


DENIED_TO_THE_ANALYST = {
    "read raw trips": "SELECT count(*) FROM iceberg.taxi.trips_normalised",
    "read features past the view": "SELECT count(*) FROM iceberg.taxi.window_features",
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
def test_analyst_is_denied(access, pipeline_run, action):
    trino_admin = access.admin
    assert_denied(access.analyst, DENIED_TO_THE_ANALYST[action])
    # and nothing changed
    count = f"SELECT count(*) FROM iceberg.taxi.anomaly_scores WHERE run_id = '{pipeline_run.run_id}'"
    assert query(trino_admin, count) == [[pipeline_run.written["anomaly_scores"]]]
    assert {row[0] for row in query(trino_admin, "SHOW TABLES FROM iceberg.taxi")} >= {
        "anomaly_scores",
        "window_features",
        "trips_normalised",
    }


def assert_denied(login, sql: str) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as denied:
        query(login, sql)
    assert denied.value.error_name == "PERMISSION_DENIED", denied.value.message
    assert denied.value.message.startswith("Access Denied"), denied.value.message


# Table maintenance and the session properties that loosen it (issue 16, item 1): the readers passed access control
# for every table procedure and session property before; Trino 476's file rules have no rule for table procedures.
SCORES = "iceberg.taxi.anomaly_scores"
TABLE_PROCEDURES = {
    "optimize": f"ALTER TABLE {SCORES} EXECUTE optimize",
    "optimize_manifests": f"ALTER TABLE {SCORES} EXECUTE optimize_manifests",
    "expire_snapshots": f"ALTER TABLE {SCORES} EXECUTE expire_snapshots(retention_threshold => '7d')",
    "remove_orphan_files": f"ALTER TABLE {SCORES} EXECUTE remove_orphan_files(retention_threshold => '7d')",
    "drop_extended_stats": f"ALTER TABLE {SCORES} EXECUTE drop_extended_stats",
    "rollback_to_snapshot": f"ALTER TABLE {SCORES} EXECUTE rollback_to_snapshot(1)",
    "add_files": f"ALTER TABLE {SCORES} EXECUTE add_files(location => 's3://tap-warehouse/x/', format => 'PARQUET')",
    "add_files_from_table": f"ALTER TABLE {SCORES} EXECUTE add_files_from_table('taxi', 'window_features')",
    "call rollback_to_snapshot": "CALL iceberg.system.rollback_to_snapshot('taxi', 'anomaly_scores', 1)",
    "call unregister_table": "CALL iceberg.system.unregister_table('taxi', 'anomaly_scores')",
}
SESSION_PROPERTIES = {
    "expire_snapshots_min_retention": "SET SESSION iceberg.expire_snapshots_min_retention = '0s'",
    "remove_orphan_files_min_retention": "SET SESSION iceberg.remove_orphan_files_min_retention = '0s'",
    "a catalog property of reading": "SET SESSION iceberg.projection_pushdown_enabled = false",
    "a system property of writing": "SET SESSION scale_writers = false",
}


def _snapshots(admin) -> list[list]:
    return query(admin, 'SELECT snapshot_id FROM iceberg.taxi."anomaly_scores$snapshots" ORDER BY committed_at')


# Both readers get the same rules (one list in each rule set): every case for the analyst, one for the other.
@pytest.mark.parametrize(
    ("reader", "procedure"), [*(("analyst", p) for p in TABLE_PROCEDURES), ("green_analyst", "expire_snapshots")]
)
def test_readers_run_no_table_procedure(access, pipeline_run, reader, procedure):
    before = _snapshots(access.admin)
    assert_denied(access.reader(reader), TABLE_PROCEDURES[procedure])
    assert _snapshots(access.admin) == before


@pytest.mark.parametrize(
    ("reader", "setting"),
    [*(("analyst", s) for s in SESSION_PROPERTIES), ("green_analyst", "expire_snapshots_min_retention")],
)
def test_readers_set_no_data_changing_session_property(access, reader, setting):
    assert_denied(access.reader(reader), SESSION_PROPERTIES[setting])


def test_session_properties_sent_with_a_query_are_checked_too(access):
    """Clients can send session properties as request headers instead of SET SESSION."""
    connection = access.analyst.connect(session_properties={"iceberg.expire_snapshots_min_retention": "0s"})
    with pytest.raises(trino.exceptions.TrinoUserError) as denied:
        connection.cursor().execute("SELECT 1").fetchall()
    assert denied.value.error_name == "PERMISSION_DENIED", denied.value.message


def test_readers_may_bound_their_own_queries(access):
    assert query(access.analyst, "SET SESSION query_max_run_time = '10m'") == []


def test_admin_runs_table_maintenance_and_loosens_it(access, unique_name):
    table = f"iceberg.{unique_name}.t"
    admin = access.admin
    query(admin, f"CREATE SCHEMA iceberg.{unique_name}")
    try:
        query(admin, f"CREATE TABLE {table} (id integer)")
        for value in range(3):
            query(admin, f"INSERT INTO {table} VALUES ({value})")
        query(admin, f"ALTER TABLE {table} EXECUTE optimize")
        query(admin, f"ALTER TABLE {table} EXECUTE drop_extended_stats")
        cursor = admin.connect(session_properties={"iceberg.expire_snapshots_min_retention": "0s"}).cursor()
        cursor.execute(f"ALTER TABLE {table} EXECUTE expire_snapshots(retention_threshold => '0s')")
        cursor.fetchall()
        assert query(admin, f'SELECT count(*) FROM iceberg.{unique_name}."t$snapshots"') == [[1]]
        assert query(admin, f"SELECT sum(id) FROM {table}") == [[3]]
    finally:
        query(admin, f"DROP TABLE IF EXISTS {table}")
        query(admin, f"DROP SCHEMA iceberg.{unique_name}")


# Row filters: the green-trips analyst --------------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["anomaly_scores", "window_features_current"])
def test_green_analyst_reads_green_rows_only(access, pipeline_run, table):
    mine = f"SELECT trip_type, count(*) FROM iceberg.taxi.{table} WHERE run_id = '{pipeline_run.run_id}' GROUP BY 1"
    everything = dict(query(access.admin, mine))
    assert set(everything) == {"yellow", "green"}, everything
    assert query(access.green_analyst, mine) == [["green", everything["green"]]]
    assert query(access.analyst, mine + " ORDER BY 1") == sorted([k, v] for k, v in everything.items())


def test_green_analyst_reads_green_alerts_only(access, pipeline_run):
    mine = (
        "SELECT DISTINCT trip_type FROM iceberg.taxi.stream_alerts "
        f"WHERE starts_with(alert_id, '{pipeline_run.run_id}:')"
    )
    assert {row[0] for row in query(access.admin, mine)} == {"yellow", "green"}
    assert query(access.green_analyst, mine) == [["green"]]


def test_analyst_cannot_read_tables_outside_the_anomaly_schema(access, unique_name):
    trino_admin, trino_analyst = access.admin, access.analyst
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
