"""The DAGs end to end with `dag.test()` against the running local platform: MinIO, Hive Metastore, Spark
(spark-submit, local backend), Trino and Superset are the real services; downloads come from the in-process TLC
mirror.

Data: the real green 2024-01 (shared reference data) and generated months (taxi_anomaly.synthetic): green
2024-10..12 and fhvhv 2025-01..03 as clean history, fhvhv 2025-04 (200 k trips) with labelled anomalies. None of
the generated months is in the TLC listing, so the integrity checks treat them as unknown files.

The runs, in order (each a real `dag.test()` in a subprocess with a private Airflow metadata database):
1. tap_backfill, score off, 2024-10..2025-03 for green and fhvhv: history lands, unpublished months are skipped;
2. tap_weekly_retrain: one candidate per trip type, evaluated and promoted (no model yet);
3. tap_backfill green 2024-01 and 4. fhvhv 2025-04: promoted model -> Spark -> Iceberg -> Trino -> Superset;
5. tap_backfill green 2023-12..2024-01: 2024-01 again, idempotent (2023-12 is not on the mirror: skipped).

Everything is written under a unique Iceberg namespace and key prefix, removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from taxi_anomaly.orchestration.dagrun import SUMMARY_MARKER
from taxi_anomaly.orchestration.steps import expected_windows
from tests.serving.conftest import anomaly_tables, trino_admin  # noqa: F401 - fixtures: Superset reads iceberg.taxi

pytestmark = [pytest.mark.platform, pytest.mark.spark, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
GREEN_HISTORY = ("2024-10", "2024-11", "2024-12")
FHVHV_HISTORY = ("2025-01", "2025-02", "2025-03")
FHVHV_TARGET = "2025-04"
RUN_TIMEOUT_S = 2400


# Fixtures --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox(platform, trino_admin, tmp_path_factory) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Generated months + the mirror; a unique namespace and prefix; everything removed afterwards."""
    from taxi_anomaly.ingest.mirror import Mirror
    from taxi_anomaly.ingest.settings import S3Settings, shared_data_dir
    from taxi_anomaly.ingest.storage import ObjectStore
    from taxi_anomaly.synthetic import generate_month

    name = f"t_e2e_{uuid.uuid4().hex[:8]}"
    generated = tmp_path_factory.mktemp("generated")
    for i, month in enumerate(GREEN_HISTORY):
        generate_month("green", month, generated, trips=40_000, seed=100 + i, anomalies="none")
    for i, month in enumerate(FHVHV_HISTORY):
        generate_month("fhvhv", month, generated, trips=60_000, seed=200 + i, anomalies="none")
    target = generate_month("fhvhv", FHVHV_TARGET, generated, trips=200_000, seed=300)
    store = ObjectStore(
        S3Settings(
            f"http://127.0.0.1:{platform.cfg.minio_port}",
            platform.creds.minio_root_user,
            platform.creds.minio_root_password,
        )
    )
    with Mirror([shared_data_dir(), generated], port=platform.cfg.mirror_port) as mirror:  # Airflow's allowed source
        yield {
            "namespace": name,
            "storage_prefix": f"{name}/",
            "tlc_base_url": mirror.url,
            "store": store,
            "target_labels": target.labels_path,
        }
    cursor = trino_admin.connect().cursor()
    for schema in (name, f"{name}_candidate", f"{name}_incumbent"):
        cursor.execute(
            "SELECT table_name, table_type FROM iceberg.information_schema.tables WHERE table_schema = ?", [schema]
        )
        for table, kind in cursor.fetchall():  # the readers' views (the Trino step makes them) first
            cursor.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} iceberg.{schema}.{table}")
            cursor.fetchall()
        cursor.execute(f"DROP SCHEMA IF EXISTS iceberg.{schema}")
        cursor.fetchall()
    for bucket in (platform.cfg.raw_bucket, platform.cfg.models_bucket, platform.cfg.reports_bucket):
        store.delete_prefix(bucket, f"{name}/")


@pytest.fixture(scope="module")
def airflow_env(platform, tmp_path_factory) -> dict[str, str]:
    """The platform's Airflow environment (connections, Spark env, DAG folder) with a private metadata DB, so the
    test's runs neither mix with nor are left in the platform's own Airflow database."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(platform.service("airflow").env())
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        AIRFLOW_VAR_TAP_PLATFORM="local",
    )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return env


def run_dag(
    env: dict[str, str], dag_id: str, conf: dict[str, Any], tmp_path: Path, logical_date: str | None = None
) -> dict[str, Any]:
    """dag.test() of one DAG in a subprocess; returns the run summary (states and XCom values per task)."""
    log = tmp_path / f"{dag_id}-{uuid.uuid4().hex[:6]}.log"
    command = [sys.executable, "-m", "taxi_anomaly.orchestration.dagrun", dag_id, "--conf", json.dumps(conf)]
    if logical_date:
        command += ["--logical-date", logical_date]
    with log.open("w") as out:
        done = subprocess.run(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT_S,
            cwd=REPO,
        )
    lines = [line for line in log.read_text().splitlines() if line.startswith(SUMMARY_MARKER)]
    assert lines, f"{dag_id} ended (exit {done.returncode}) without a summary; log: {log}"
    summary = json.loads(lines[-1][len(SUMMARY_MARKER) :])
    summary["log"] = str(log)
    print(f"{dag_id}: {summary['state']} in {summary['seconds']} s (log {log})")
    return summary


def tasks_named(summary: dict[str, Any], task_id: str) -> dict[str, dict[str, Any]]:
    """Instances of one task: {label or map index: {state, value}}."""
    prefix = f"{task_id}["
    return {k[len(prefix) : -1]: v for k, v in summary["tasks"].items() if k.startswith(prefix)} or (
        {"": summary["tasks"][task_id]} if task_id in summary["tasks"] else {}
    )


def trino_rows(trino_admin, namespace: str, trip_type: str, month: str) -> dict[str, Any]:  # noqa: F811
    cursor = trino_admin.connect().cursor()
    cursor.execute(
        "SELECT count(*), count_if(is_anomaly), array_agg(DISTINCT run_id), array_agg(DISTINCT model_version) "
        f"FROM iceberg.{namespace}.anomaly_scores WHERE trip_type = ? AND granularity = 'city' AND month = ?",
        [trip_type, month],
    )
    rows, anomalies, runs, versions = cursor.fetchone()
    return {"rows": rows, "anomalies": anomalies, "runs": sorted(runs), "versions": sorted(versions)}


def backfill_conf(sandbox: dict[str, Any], trip_types: list[str], first: str, last: str, **extra: Any) -> dict:
    keys = ("namespace", "storage_prefix", "tlc_base_url")
    return {
        "trip_types": trip_types,
        "first_month": first,
        "last_month": last,
        **{k: sandbox[k] for k in keys},
        **extra,
    }


@pytest.fixture(scope="module")
def history(sandbox, airflow_env, tmp_path_factory) -> dict[str, Any]:
    conf = backfill_conf(sandbox, ["green", "fhvhv"], "2024-10", "2025-03", score=False)
    return run_dag(airflow_env, "tap_backfill", conf, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def retrained(history, sandbox, airflow_env, tmp_path_factory) -> dict[str, Any]:
    conf = {
        "trip_types": ["green", "fhvhv"],
        "train_window_months": 2,
        "detector_params": {"n_estimators": 100},
        "namespace": sandbox["namespace"],
        "storage_prefix": sandbox["storage_prefix"],
    }
    return run_dag(airflow_env, "tap_weekly_retrain", conf, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def green_scored(retrained, anomaly_tables, sandbox, airflow_env, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    conf = backfill_conf(sandbox, ["green"], "2024-01", "2024-01")
    return run_dag(airflow_env, "tap_backfill", conf, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def fhvhv_scored(retrained, anomaly_tables, sandbox, airflow_env, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    conf = backfill_conf(sandbox, ["fhvhv"], FHVHV_TARGET, FHVHV_TARGET)
    return run_dag(airflow_env, "tap_backfill", conf, tmp_path_factory.mktemp("logs"))


# Tests -------------------------------------------------------------------------------------------------------------
def test_history_lands_and_unpublished_months_are_skipped(history, sandbox):
    assert history["state"] == "success", history["log"]
    downloads = tasks_named(history, "month.download")
    landed = {label for label, ti in downloads.items() if ti["state"] == "success"}
    assert landed == {f"green {m}" for m in GREEN_HISTORY} | {f"fhvhv {m}" for m in FHVHV_HISTORY}
    assert sum(ti["state"] == "skipped" for ti in downloads.values()) == 6  # not published (404 on the mirror)
    for label in landed:
        assert downloads[label]["value"]["status"] == "landed"
        checked = tasks_named(history, "month.gx_validation")[label]["value"]
        assert checked["validation"]["passed"] and checked["validation"]["suite"]
    # score off: nothing after validation ran
    assert history["tasks"]["spark_anomaly_job"]["state"] == "skipped"
    assert history["tasks"]["refresh_superset_dashboards"]["state"] == "skipped"
    store, prefix = sandbox["store"], sandbox["storage_prefix"]
    assert store.exists("tap-raw", f"{prefix}tlc/fhvhv/year=2025/month=02/_manifest.json")
    assert store.exists("tap-raw", f"{prefix}tlc/misc/taxi_zone_lookup.csv")


def test_a_backfill_in_which_no_month_is_published_fails_naming_the_range(sandbox, airflow_env, tmp_path):
    """Every month "not published" (404 on the mirror) used to end as a success with nothing landed."""
    summary = run_dag(airflow_env, "tap_backfill", backfill_conf(sandbox, ["fhvhv"], "2023-01", "2023-02"), tmp_path)
    assert summary["state"] == "failed", summary["log"]
    downloads = tasks_named(summary, "month.download")
    assert [ti["state"] for ti in downloads.values()] == ["skipped", "skipped"]
    assert summary["tasks"]["require_a_published_month"]["state"] == "failed"
    log = Path(summary["log"]).read_text()
    assert "no month of fhvhv 2023-01..2023-02 was published at http://127.0.0.1:" in log


def test_retraining_promotes_a_first_model_per_trip_type(retrained, sandbox):
    assert retrained["state"] == "success", retrained["log"]
    decisions = tasks_named(retrained, "model.evaluate_and_promote")
    assert set(decisions) == {"green city", "fhvhv city"}
    store, prefix = sandbox["store"], sandbox["storage_prefix"]
    for label, holdout in (("green city", "2024-12"), ("fhvhv city", "2025-03")):
        decision = decisions[label]["value"]
        trip_type = label.split()[0]
        assert decision["promote"] and decision["reason"] == "no promoted model yet"
        assert decision["plan"]["holdout_month"] == holdout and len(decision["plan"]["train_months"]) == 2
        candidate = decision["candidate"]
        assert candidate["windows"] == expected_windows("city", holdout)
        assert 0 < candidate["flagged_share"] < 0.1
        assert candidate["detector"] == "isolation_forest" and candidate["expected_share"] > 0
        pointer = store.get_json("tap-models", f"{prefix}registry/{trip_type}/city/promoted.json")
        assert pointer["version"] == candidate["version"] and pointer["run_id"] == retrained["run_id"]
        version_dir = f"{prefix}registry/{trip_type}/city/{pointer['version']}"
        assert store.exists("tap-models", f"{version_dir}/model.pkl")
        metadata = store.get_json("tap-models", f"{version_dir}/metadata.json")
        assert metadata["family"] == "isolation_forest" and metadata["evaluations"][0]["month"] == holdout
        assert store.exists("tap-reports", decision["report_key"])


def assert_scored_month(summary, sandbox, trino_admin, trip_type: str, month: str) -> dict[str, Any]:  # noqa: F811
    assert summary["state"] == "success", summary["log"]
    label = f"{trip_type} {month}"
    windows = expected_windows("city", month)
    pointer = sandbox["store"].get_json(
        "tap-models", f"{sandbox['storage_prefix']}registry/{trip_type}/city/promoted.json"
    )
    assert tasks_named(summary, "month.resolve_model")[label]["value"]["model_version"] == pointer["version"]
    scored = {f"{run['trip_type']} {run['month']}": run for run in summary["tasks"]["spark_anomaly_job"]["value"]}
    assert scored[label]["backend"] == "local" and scored[label]["run_id"] == summary["run_id"]
    verified = tasks_named(summary, "scored.verify_iceberg_tables")[label]["value"]
    assert verified["sandbox"]["namespace"] == sandbox["namespace"]
    assert {t: v["rows"] for t, v in verified["tables"].items()} == {
        "window_features": windows,
        "anomaly_scores": windows,
    }
    trino = tasks_named(summary, "scored.trino_sanity_query")[label]["value"]
    assert trino["windows"] == windows
    # What the DAG's Trino step reported is what Trino holds: one run (this one), the promoted model.
    held = trino_rows(trino_admin, sandbox["namespace"], trip_type, month)
    assert held == {
        "rows": windows,
        "anomalies": trino["anomalies"],
        "runs": [summary["run_id"]],
        "versions": [pointer["version"]],
    }
    record = sandbox["store"].get_json(
        "tap-reports", f"{sandbox['storage_prefix']}pipeline/scored/{trip_type}/city/{month}.json"
    )
    assert record["run_id"] == summary["run_id"] and record["windows"] == windows
    refresh = summary["tasks"]["refresh_superset_dashboards"]
    assert refresh["state"] == "success", summary["log"]
    assert sorted(refresh["value"]["datasets"]) == [
        "taxi.anomaly_scores",
        "taxi.model_evaluations",
        "taxi.stream_alerts",
    ]
    assert refresh["value"]["charts"] and all(chart["cached"] for chart in refresh["value"]["charts"])
    return trino


def test_real_green_month_through_the_whole_pipeline(green_scored, sandbox, trino_admin):  # noqa: F811
    trino = assert_scored_month(green_scored, sandbox, trino_admin, "green", "2024-01")
    download = tasks_named(green_scored, "month.download")["green 2024-01"]["value"]
    assert download["rows"] == 56_551 and download["official_rows"] == 56_551  # the TLC listing agrees
    assert trino["anomalies"] >= 0 and len(trino["top"]) <= 5


def test_generated_fhvhv_month_with_anomalies_is_flagged(fhvhv_scored, sandbox, trino_admin):  # noqa: F811
    from taxi_anomaly.synthetic import labelled_buckets, load_labels

    trino = assert_scored_month(fhvhv_scored, sandbox, trino_admin, "fhvhv", FHVHV_TARGET)
    assert trino["anomalies"] > 0
    cursor = trino_admin.connect().cursor()
    cursor.execute(
        f"SELECT bucket_start FROM iceberg.{sandbox['namespace']}.anomaly_scores "  # noqa: S608
        "WHERE trip_type = 'fhvhv' AND granularity = 'city' AND month = ? AND is_anomaly",
        [FHVHV_TARGET],
    )
    flagged = {row[0] for row in cursor.fetchall()}
    truth = labelled_buckets(load_labels(sandbox["target_labels"]))
    assert truth and all(isinstance(b, datetime) for b in flagged)
    assert flagged & truth, f"none of {len(flagged)} flagged windows is inside a labelled episode"


def test_rerun_is_idempotent(green_scored, sandbox, airflow_env, trino_admin, tmp_path):  # noqa: F811
    first = trino_rows(trino_admin, sandbox["namespace"], "green", "2024-01")
    # with 2023-12, which is not on the mirror: a skipped month does not stop the Spark task from scoring the other
    again = run_dag(airflow_env, "tap_backfill", backfill_conf(sandbox, ["green"], "2023-12", "2024-01"), tmp_path)
    assert again["state"] == "success", again["log"]
    downloads = tasks_named(again, "month.download")
    assert downloads["green 2024-01"]["value"]["status"] == "skipped_unchanged"
    assert [ti["state"] for label, ti in downloads.items() if label != "green 2024-01"] == ["skipped"]
    assert [run["month"] for run in again["tasks"]["spark_anomaly_job"]["value"]] == ["2024-01"]
    second = trino_rows(trino_admin, sandbox["namespace"], "green", "2024-01")
    assert second["rows"] == first["rows"] == expected_windows("city", "2024-01")  # replaced, not appended
    assert second["runs"] == [again["run_id"]] and second["anomalies"] == first["anomalies"]


def test_daily_run_announces_landed_but_unscored_months_as_asset_events(fhvhv_scored, sandbox, airflow_env, tmp_path):
    """On 2025-05-15 with 8 months of look-back (2024-09..2025-04): nothing is downloaded again, months not on
    the mirror are skipped, and the landed months never scored at city level are announced per trip type;
    fhvhv 2025-04 was scored above and is not."""
    conf = {"trip_types": ["green", "fhvhv"], "lookback_months": 8} | {
        k: sandbox[k] for k in ("namespace", "storage_prefix", "tlc_base_url")
    }
    daily = run_dag(airflow_env, "tap_daily_ingest", conf, tmp_path, logical_date="2025-05-15T06:00:00+00:00")
    assert daily["state"] == "success", daily["log"]
    downloads = tasks_named(daily, "month.download")
    assert {label for label, ti in downloads.items() if ti["state"] == "success"} == {
        f"green {m}" for m in GREEN_HISTORY
    } | {f"fhvhv {m}" for m in (*FHVHV_HISTORY, FHVHV_TARGET)}
    assert all(ti["value"]["status"] == "skipped_unchanged" for ti in downloads.values() if ti["value"])
    assert daily["tasks"]["announce_landed_months"]["value"] == {
        "fhvhv": list(FHVHV_HISTORY),
        "green": list(GREEN_HISTORY),
    }
    events = {event["asset"]: event["extra"] for event in daily["asset_events"]}
    assert set(events) == {"tap_raw_tlc_green", "tap_raw_tlc_fhvhv"}
    assert events["tap_raw_tlc_fhvhv"]["months"] == list(FHVHV_HISTORY)
    assert events["tap_raw_tlc_green"]["namespace"] == sandbox["namespace"]
