"""What each DAG task does, as plain functions of plain values (the DAG files only wire them).

Every function returns a JSON-able dict (the task's XCom) or raises with a message that names the trip type,
month and what to do. Heavy libraries (pyiceberg, trino, the serving package) are imported inside.
"""

from __future__ import annotations

import calendar
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taxi_anomaly.ingest.integrity import INTEGRITY_REASONS
from taxi_anomaly.orchestration.jobspec import SparkJob
from taxi_anomaly.orchestration.promotion import POINTER, Decision, Evaluation, decide, pointer_document

if TYPE_CHECKING:
    from taxi_anomaly.orchestration.runtime import Runtime

log = logging.getLogger(__name__)

TABLES = ("window_features", "anomaly_scores")
EVAL_SUFFIXES = {"candidate": "_candidate", "incumbent": "_incumbent"}


class PipelineError(RuntimeError):
    """A step found something wrong; the message says what and what to do."""


class ModelNotReady(PipelineError):
    """No model to score with (none promoted / trained yet)."""


# Ingestion ---------------------------------------------------------------------------------------------------
def ingest(runtime: Runtime, target: dict[str, str], force: bool = False) -> dict[str, Any]:
    """Download + integrity + Great Expectations + land or quarantine (ingest_month), summarised for XCom.

    Raises DownloadError (retried by Airflow) when the source stays unreachable; a quarantine is returned, not
    raised, so that the integrity or validation task fails and names the step that rejected the file.
    """
    from taxi_anomaly.ingest import ingest_month

    outcome = ingest_month(target["trip_type"], target["month"], runtime.ingest_settings(), force=force)
    return summarise_outcome(target, outcome)


def summarise_outcome(target: dict[str, str], outcome: Any) -> dict[str, Any]:
    manifest = outcome.manifest or {}
    report = outcome.report or {}
    return {
        **target,
        "status": str(outcome.status),
        "message": outcome.message,
        "file_name": outcome.file_name,
        "url": outcome.url,
        "bucket": outcome.bucket,
        "key": outcome.key,
        "reason": outcome.reason,
        "warnings": list(outcome.warnings),
        "rows": manifest.get("rows"),
        "bytes": manifest.get("bytes") or report.get("bytes"),
        "sha256": manifest.get("sha256") or report.get("sha256"),
        "official": manifest.get("official"),
        "validation": manifest.get("validation"),
        "quarantine": {k: report.get(k) for k in ("reason", "message", "failed_expectations", "validation_report")}
        if report
        else None,
    }


def render_data_docs(targets: list[dict[str, Any]]) -> dict[str, Any]:
    """The GX Data Docs pages of the run's months (landed or quarantined), rendered in one process: GX is
    imported once per run here instead of once per month in the ingest tasks."""
    from taxi_anomaly.ingest.data_docs import render_months
    from taxi_anomaly.orchestration.runtime import Runtime

    by_sandbox: dict[tuple, list[dict[str, Any]]] = {}
    for target in targets:
        by_sandbox.setdefault((target.get("storage_prefix"), target.get("tlc_base_url")), []).append(target)
    pages: list[str] = []
    for group in by_sandbox.values():
        runtime = Runtime.from_params(group[0])
        months = [(t["trip_type"], t["month"]) for t in group]
        pages += render_months(runtime.raw_store, runtime.ingest_settings(), months)
    return {"pages": pages}


def ingest_zone_lookup(runtime: Runtime, force: bool = False) -> dict[str, Any]:
    from taxi_anomaly.ingest import ingest_zone_lookup as ingest_zones

    outcome = ingest_zones(runtime.ingest_settings(), force=force)
    outcome.raise_if_failed()
    return {"status": str(outcome.status), "message": outcome.message, "key": outcome.key}


def integrity_result(summary: dict[str, Any]) -> dict[str, Any]:
    """The integrity step's verdict; raises if the file was quarantined by an integrity check."""
    if summary["status"] == "quarantined" and summary.get("reason") in INTEGRITY_REASONS:
        raise PipelineError(f"integrity check failed ({summary['reason']}): {summary['message']}")
    official = summary.get("official") or {}
    result = {
        "file": summary["file_name"],
        "status": summary["status"],
        "bytes": summary.get("bytes"),
        "rows": summary.get("rows"),
        "sha256": summary.get("sha256"),
        "official_rows": official.get("rows"),
        "official_bytes": official.get("bytes"),
    }
    log.info(
        "%s: integrity ok (%s rows, %s bytes; TLC listing %s)",
        summary["file_name"],
        result["rows"],
        result["bytes"],
        "agrees" if official else "does not know this file",
    )
    return result


def validation_result(summary: dict[str, Any]) -> dict[str, Any]:
    """The Great Expectations step's verdict; raises if the file was quarantined (by validation or otherwise)."""
    if summary["status"] == "quarantined":
        failed = (summary.get("quarantine") or {}).get("failed_expectations")
        detail = f"; failed expectations: {failed}" if failed else ""
        raise PipelineError(f"validation failed ({summary.get('reason')}): {summary['message']}{detail}")
    validation = summary.get("validation") or {}
    for warning in summary.get("warnings") or []:
        log.warning("%s: %s", summary["file_name"], warning)
    return {
        "file": summary["file_name"],
        "suite": validation.get("suite"),
        "passed": validation.get("passed", True),
        "warnings": summary.get("warnings") or [],
        "report_html": validation.get("report_html"),
    }


# Run records (what was scored from which file) -----------------------------------------------------------------
def record_key(runtime: Runtime, trip_type: str, granularity: str, month: str) -> str:
    return runtime.locations.report_key("scored", trip_type, granularity, f"{month}.json")


def read_record(runtime: Runtime, trip_type: str, granularity: str, month: str) -> dict[str, Any] | None:
    key = record_key(runtime, trip_type, granularity, month)
    bucket = runtime.locations.reports_bucket
    return runtime.store.get_json(bucket, key) if runtime.store.exists(bucket, key) else None


def needs_scoring(runtime: Runtime, summary: dict[str, Any], granularity: str = "city") -> bool:
    """A newly landed file, or a landed one that was never scored from these exact bytes."""
    if summary["status"] == "landed":
        return True
    if summary["status"] != "skipped_unchanged":
        return False
    record = read_record(runtime, summary["trip_type"], granularity, summary["month"])
    return record is None or record.get("sha256") != summary.get("sha256")


def write_record(runtime: Runtime, checked: dict[str, Any], run_id: str) -> dict[str, Any]:
    document = {**checked, "run_id": run_id, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    key = record_key(runtime, checked["trip_type"], checked["granularity"], checked["month"])
    runtime.store.put_json(runtime.locations.reports_bucket, key, document)
    return {"bucket": runtime.locations.reports_bucket, "key": key}


# Models --------------------------------------------------------------------------------------------------------
def read_pointer(runtime: Runtime, trip_type: str, granularity: str) -> dict[str, Any] | None:
    key = runtime.locations.models_key(trip_type, granularity, POINTER)
    bucket = runtime.locations.models_bucket
    return runtime.store.get_json(bucket, key) if runtime.store.exists(bucket, key) else None


def registry_versions(runtime: Runtime, trip_type: str, granularity: str) -> dict[str, dict[str, Any]]:
    """Complete versions (metadata.json present) -> their metadata, oldest first."""
    base = runtime.locations.models_key(trip_type, granularity) + "/"
    bucket = runtime.locations.models_bucket
    keys = sorted(k for k in runtime.store.list_keys(bucket, base) if k.endswith("/metadata.json"))
    return {k[len(base) :].split("/")[0]: runtime.store.get_json(bucket, k) for k in keys}


def resolve_model(runtime: Runtime, trip_type: str, granularity: str, requested: str) -> str:
    """'promoted' -> the pointer's version; 'latest' or a version name -> checked against the registry."""
    where = f"s3://{runtime.locations.models_bucket}/{runtime.locations.models_key(trip_type, granularity)}"
    if requested == "promoted":
        pointer = read_pointer(runtime, trip_type, granularity)
        if pointer is None:
            raise ModelNotReady(
                f"no promoted {trip_type}/{granularity} model at {where}/{POINTER}: run tap_weekly_retrain for "
                f"{trip_type} (after backfilling a few months of history), or trigger with model_version 'latest'"
            )
        return pointer["version"]
    versions = registry_versions(runtime, trip_type, granularity)
    if not versions:
        raise ModelNotReady(f"no trained {trip_type}/{granularity} model under {where}: run tap_weekly_retrain first")
    if requested == "latest":
        return sorted(versions)[-1]
    if requested not in versions:
        raise ModelNotReady(f"model version {requested} not found under {where}; available: {', '.join(versions)}")
    return requested


def trained_version(runtime: Runtime, trip_type: str, granularity: str, run_id: str) -> str:
    """The version a training job of this run saved (the newest, if a retry trained twice)."""
    mine = [v for v, meta in registry_versions(runtime, trip_type, granularity).items() if meta.get("run_id") == run_id]
    if not mine:
        raise PipelineError(f"the training job of run {run_id} saved no {trip_type}/{granularity} model version")
    return sorted(mine)[-1]


# Spark ---------------------------------------------------------------------------------------------------------
def score_job(
    runtime: Runtime, trip_type: str, month: str, granularity: str, model_version: str, run_id: str
) -> SparkJob:
    return SparkJob.build(
        runtime.locations,
        trip_type=trip_type,
        granularity=granularity,
        mode="score",
        score_months=[month],
        train_months=[],
        namespace=runtime.namespace,
        run_id=run_id,
        model_version=model_version,
    )


def run_spark(job: SparkJob, context: Any, backend: str | None = None) -> dict[str, Any]:
    """Run the job on the backend chosen now (Variable tap_platform) and return what was run."""
    from taxi_anomaly.orchestration.backends import choose_backend

    chosen = choose_backend(backend)
    log.info("running %s on the %s backend", job.name, chosen.name)
    chosen.run(job, context)
    return {"backend": chosen.name, "job": job.as_dict()}


# Tables: the Hive Metastore (through Iceberg's catalog) and Trino ------------------------------------------------
def expected_windows(granularity: str, month: str) -> int | None:
    """Windows of a complete city month: every 30-minute wall-clock slot that exists in New York (the spring-forward
    hour has none; the repeated autumn hour is one window with exposure 2). None for other granularities."""
    if granularity != "city":
        return None
    from zoneinfo import ZoneInfo

    new_york = ZoneInfo("America/New_York")
    year, mm = map(int, month.split("-"))
    days = calendar.monthrange(year, mm)[1]
    slots = [datetime(year, mm, d, h, m) for d in range(1, days + 1) for h in range(24) for m in (0, 30)]
    return sum(1 for slot in slots if _exists(slot, new_york))


def _exists(wall_clock: datetime, zone: Any) -> bool:
    aware = wall_clock.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall_clock


def hive_catalog(runtime: Runtime) -> Any:
    """pyiceberg's HiveCatalog on the tap_metastore connection, reading metadata files with the tap_s3 keys."""
    from pyiceberg.catalog.hive import HiveCatalog

    from taxi_anomaly.orchestration.runtime import METASTORE_CONN_ID, get_connection

    metastore = get_connection(METASTORE_CONN_ID)
    s3 = runtime.s3_connection
    extra = getattr(s3, "extra_dejson", None) or {}
    return HiveCatalog(
        "tap",
        **{
            "uri": f"thrift://{metastore.host}:{metastore.port}",
            "s3.endpoint": extra.get("endpoint_url") or f"{s3.schema or 'http'}://{s3.host}:{s3.port}",
            "s3.access-key-id": s3.login,
            "s3.secret-access-key": s3.password,
            "s3.region": extra.get("region_name", "us-east-1"),
            "s3.force-virtual-addressing": "false",
        },
    )


def verify_tables(runtime: Runtime, trip_type: str, granularity: str, month: str, run_id: str) -> dict[str, Any]:
    """The job's tables are registered in the Hive Metastore as Iceberg tables, and the month's partition of
    each holds this run's rows only. Returns rows per table (what Spark wrote) for the Trino check."""
    from pyiceberg.expressions import And, EqualTo

    catalog = hive_catalog(runtime)
    found: dict[str, Any] = {}
    for table in TABLES:
        identifier = (runtime.namespace, table)
        try:
            loaded = catalog.load_table(identifier)
        except Exception as err:
            raise PipelineError(
                f"iceberg.{runtime.namespace}.{table} is not registered in the Hive Metastore: {err}"
            ) from err
        snapshot = loaded.current_snapshot()
        if snapshot is None:
            raise PipelineError(f"iceberg.{runtime.namespace}.{table} has no snapshot: the Spark job wrote nothing")
        where = And(EqualTo("trip_type", trip_type), And(EqualTo("granularity", granularity), EqualTo("month", month)))
        runs = loaded.scan(row_filter=where, selected_fields=("run_id",)).to_arrow().column("run_id").to_pylist()
        if not runs:
            raise PipelineError(f"iceberg.{runtime.namespace}.{table} has no row for {trip_type} {granularity} {month}")
        others = sorted(set(runs) - {run_id})
        if others:
            raise PipelineError(
                f"iceberg.{runtime.namespace}.{table} {trip_type} {granularity} {month} holds rows of other runs "
                f"{others[:3]} besides {run_id}: the partition was not replaced"
            )
        found[table] = {
            "rows": len(runs),
            "snapshot_id": snapshot.snapshot_id,
            "metadata_location": loaded.metadata_location,
        }
    expected = expected_windows(granularity, month)
    if expected is not None and found["anomaly_scores"]["rows"] != expected:
        raise PipelineError(
            f"{trip_type} {month}: {found['anomaly_scores']['rows']} city windows scored, a complete month has "
            f"{expected}"
        )
    return {"namespace": runtime.namespace, "tables": found}


def trino_settings() -> Any:
    from taxi_anomaly.orchestration.runtime import TRINO_CONN_ID, get_connection
    from taxi_anomaly.serving.trino_client import TrinoSettings

    return TrinoSettings.from_connection(get_connection(TRINO_CONN_ID))


def trino_counts(namespace: str, trip_type: str, granularity: str, month: str) -> dict[str, dict[str, int]]:
    """Rows, flagged rows and distinct run ids of the month in each table, as Trino reads them."""
    counts = {}
    cursor = trino_settings().connect().cursor()
    for table in TABLES:
        flagged = "count_if(is_anomaly)" if table == "anomaly_scores" else "0"
        # namespace matched NAMESPACE_PATTERN in the trigger form; the values are query parameters.
        cursor.execute(
            f"SELECT count(*), {flagged}, count(DISTINCT run_id) FROM iceberg.{namespace}.{table} "  # noqa: S608
            "WHERE trip_type = ? AND granularity = ? AND month = ?",
            [trip_type, granularity, month],
        )
        rows, anomalies, runs = cursor.fetchone()
        counts[table] = {"rows": int(rows), "anomalies": int(anomalies or 0), "runs": int(runs)}
    return counts


def trino_sanity(
    runtime: Runtime, trip_type: str, granularity: str, month: str, verified: dict[str, Any]
) -> dict[str, Any]:
    """Trino sees exactly the rows Spark wrote (as counted from the Iceberg metadata), and one run's rows."""
    counts = trino_counts(runtime.namespace, trip_type, granularity, month)
    problems = []
    for table, seen in counts.items():
        wrote = verified["tables"][table]["rows"]
        if seen["rows"] != wrote:
            problems.append(f"{table}: Trino reads {seen['rows']} rows, Spark wrote {wrote}")
        if seen["runs"] != 1:
            problems.append(f"{table}: {seen['runs']} run ids in the partition, expected 1")
    if problems:
        raise PipelineError(f"Trino sanity query on {trip_type} {granularity} {month}: " + "; ".join(problems))
    result = {
        "trip_type": trip_type,
        "granularity": granularity,
        "month": month,
        "namespace": runtime.namespace,
        "windows": counts["anomaly_scores"]["rows"],
        "anomalies": counts["anomaly_scores"]["anomalies"],
        "top": top_anomalies(runtime.namespace, trip_type, granularity, month),
    }
    log.info(
        "%s %s %s: %d windows, %d anomalous", trip_type, granularity, month, result["windows"], result["anomalies"]
    )
    for row in result["top"]:
        log.info("  %s", row)
    return result


def top_anomalies(namespace: str, trip_type: str, granularity: str, month: str, limit: int = 5) -> list[str]:
    from taxi_anomaly.serving.top_anomalies import top_anomalies as query

    found = query(trino_settings().connect(), limit, namespace, trip_type, granularity, month)
    return [
        f"{a.bucket_start:%Y-%m-%d %H:%M} {a.key}: score {a.anomaly_score:.3f}, {a.trips} trips"
        + (f" - {a.explanation}" if a.explanation else "")
        for a in found
    ]


# Retraining ----------------------------------------------------------------------------------------------------
def landed_months(runtime: Runtime, trip_type: str) -> list[str]:
    from taxi_anomaly.orchestration.months import landed_months_from_keys

    prefix = f"{runtime.locations.prefix}tlc/{trip_type}/"
    keys = [
        k for k in runtime.raw_store.list_keys(runtime.locations.raw_bucket, prefix) if k.endswith("_manifest.json")
    ]
    return landed_months_from_keys(keys, trip_type)


def eval_namespace(runtime: Runtime, role: str) -> str:
    return f"{runtime.namespace}{EVAL_SUFFIXES[role]}"


def plan_retraining(
    runtime: Runtime, trip_type: str, granularity: str, window: int, holdout: str | None
) -> dict[str, Any]:
    from taxi_anomaly.orchestration.months import training_window

    try:
        plan = training_window(landed_months(runtime, trip_type), window, holdout)
    except ValueError as err:
        raise PipelineError(f"{trip_type}: {err}") from err
    pointer = read_pointer(runtime, trip_type, granularity)
    return {"trip_type": trip_type, "granularity": granularity, **plan, "incumbent": (pointer or {}).get("version")}


def candidate_job(
    runtime: Runtime, plan: dict[str, Any], contamination: float | None, n_estimators: int, run_id: str
) -> SparkJob:
    """Train on the window and score the evaluation month into the candidate's evaluation namespace."""
    return SparkJob.build(
        runtime.locations,
        trip_type=plan["trip_type"],
        granularity=plan["granularity"],
        mode="train-and-score",
        train_months=plan["train_months"],
        score_months=[plan["holdout_month"]],
        namespace=eval_namespace(runtime, "candidate"),
        run_id=run_id,
        contamination=contamination,
        n_estimators=n_estimators,
    )


def incumbent_job(runtime: Runtime, plan: dict[str, Any], run_id: str) -> SparkJob:
    return SparkJob.build(
        runtime.locations,
        trip_type=plan["trip_type"],
        granularity=plan["granularity"],
        mode="score",
        score_months=[plan["holdout_month"]],
        train_months=[],
        namespace=eval_namespace(runtime, "incumbent"),
        run_id=run_id,
        model_version=plan["incumbent"],
    )


def evaluation(runtime: Runtime, plan: dict[str, Any], role: str, version: str) -> Evaluation:
    namespace = eval_namespace(runtime, role)
    counts = trino_counts(namespace, plan["trip_type"], plan["granularity"], plan["holdout_month"])["anomaly_scores"]
    meta = registry_versions(runtime, plan["trip_type"], plan["granularity"]).get(version, {})
    contamination = float((meta.get("params") or {}).get("contamination", 0.03))
    return Evaluation(version, plan["holdout_month"], counts["rows"], counts["anomalies"], contamination)


def evaluate_and_promote(
    runtime: Runtime, plan: dict[str, Any], candidate: str, tolerance: float, run_id: str
) -> dict[str, Any]:
    """Compare candidate and incumbent on the evaluation month; write promoted.json if the candidate wins."""
    challenger = evaluation(runtime, plan, "candidate", candidate)
    incumbent = evaluation(runtime, plan, "incumbent", plan["incumbent"]) if plan.get("incumbent") else None
    decision: Decision = decide(challenger, incumbent, tolerance)
    trip_type, granularity = plan["trip_type"], plan["granularity"]
    report = {**decision.as_dict(), "plan": plan, "run_id": run_id}
    report_key = runtime.locations.report_key("evaluations", trip_type, granularity, f"{candidate}.json")
    runtime.store.put_json(runtime.locations.reports_bucket, report_key, report)
    if decision.promote:
        previous = read_pointer(runtime, trip_type, granularity)
        pointer_key = runtime.locations.models_key(trip_type, granularity, POINTER)
        runtime.store.put_json(
            runtime.locations.models_bucket, pointer_key, pointer_document(decision, previous, run_id)
        )
        log.info("promoted %s/%s %s: %s", trip_type, granularity, candidate, decision.reason)
    else:
        log.warning("kept %s/%s %s: %s", trip_type, granularity, plan.get("incumbent"), decision.reason)
    return {**report, "report_key": report_key}
