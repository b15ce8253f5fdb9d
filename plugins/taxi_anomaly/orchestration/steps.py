"""What each DAG task does, as plain functions of typed values (the DAG files only wire them).

A month's functions take and return a `MonthRun`, the retraining's a `Retraining` (payloads.py); each raises with a
message that names the trip type, month and what to do. Heavy libraries (pyiceberg, trino, the serving package)
are imported inside.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob, Granularity, Mode, check_namespace
from taxi_anomaly.ingest.integrity import INTEGRITY_REASONS
from taxi_anomaly.layout import POINTER
from taxi_anomaly.orchestration.payloads import MonthRun, Retraining
from taxi_anomaly.orchestration.promotion import Decision, Evaluation, decide, pointer_document
from taxi_anomaly.tlc import YearMonth

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
def ingest(runtime: Runtime, run: MonthRun, force: bool = False) -> MonthRun:
    """Download + integrity + Great Expectations + land or quarantine (ingest_month), summarised in the run.

    Raises DownloadError (retried by Airflow) when the source stays unreachable; a quarantine is returned, not
    raised, so that the integrity or validation task fails and names the step that rejected the file.
    """
    from taxi_anomaly.ingest import ingest_month

    outcome = ingest_month(run.trip_type, run.month, runtime.ingest_settings(), force=force)
    return summarise_outcome(run, outcome)


def summarise_outcome(run: MonthRun, outcome: Any) -> MonthRun:
    manifest = outcome.manifest or {}
    report = outcome.report or {}
    official = manifest.get("official") or {}
    return run.with_(
        status=str(outcome.status),
        message=outcome.message,
        file_name=outcome.file_name,
        url=outcome.url,
        key=outcome.key,
        reason=outcome.reason,
        warnings=tuple(outcome.warnings),
        rows=manifest.get("rows"),
        sha256=manifest.get("sha256") or report.get("sha256"),
        official_rows=official.get("rows"),
        validation=manifest.get("validation"),
        quarantine={k: report.get(k) for k in ("reason", "message", "failed_expectations", "validation_report")}
        if report
        else None,
    )


def render_data_docs(runs: list[MonthRun]) -> dict[str, Any]:
    """The GX Data Docs pages of the run's months (landed or quarantined), rendered in one process: GX is
    imported once per run here instead of once per month in the ingest tasks."""
    from taxi_anomaly.ingest.data_docs import render_months
    from taxi_anomaly.orchestration.runtime import Runtime

    by_sandbox: dict[Any, list[MonthRun]] = {}
    for run in runs:
        by_sandbox.setdefault(run.sandbox, []).append(run)
    pages: list[str] = []
    for sandbox, group in by_sandbox.items():
        runtime = Runtime(sandbox)
        months: list[tuple[str, str | YearMonth]] = [(r.trip_type, r.month) for r in group]
        pages += render_months(runtime.raw_store, runtime.ingest_settings(), months)
    return {"pages": pages}


def ingest_zone_lookup(runtime: Runtime, force: bool = False) -> dict[str, Any]:
    from taxi_anomaly.ingest import ingest_zone_lookup as ingest_zones

    outcome = ingest_zones(runtime.ingest_settings(), force=force)
    outcome.raise_if_failed()
    return {"status": str(outcome.status), "message": outcome.message, "key": outcome.key}


def integrity_result(run: MonthRun) -> dict[str, Any]:
    """The integrity step's verdict; raises if the file was quarantined by an integrity check."""
    if run.status == "quarantined" and run.reason in INTEGRITY_REASONS:
        raise PipelineError(f"integrity check failed ({run.reason}): {run.message}")
    log.info(
        "%s: integrity ok (%s rows; TLC listing %s)",
        run.file_name,
        run.rows,
        f"{run.official_rows} rows" if run.official_rows is not None else "does not know this file",
    )
    return {"file": run.file_name, "status": run.status, "rows": run.rows, "official_rows": run.official_rows}


def validation_result(run: MonthRun) -> dict[str, Any]:
    """The Great Expectations step's verdict; raises if the file was quarantined (by validation or otherwise)."""
    if run.status == "quarantined":
        failed = (run.quarantine or {}).get("failed_expectations")
        detail = f"; failed expectations: {failed}" if failed else ""
        raise PipelineError(f"validation failed ({run.reason}): {run.message}{detail}")
    validation = run.validation or {}
    for warning in run.warnings:
        log.warning("%s: %s", run.file_name, warning)
    return {
        "file": run.file_name,
        "suite": validation.get("suite"),
        "passed": validation.get("passed", True),
        "warnings": list(run.warnings),
        "report_html": validation.get("report_html"),
    }


# Run records (what was scored from which file) -----------------------------------------------------------------
def record_key(runtime: Runtime, trip_type: str, granularity: str, month: str) -> str:
    return runtime.locations.report_key("scored", trip_type, granularity, f"{month}.json")


def read_record(runtime: Runtime, trip_type: str, granularity: str, month: str) -> dict[str, Any] | None:
    key = record_key(runtime, trip_type, granularity, month)
    bucket = runtime.locations.reports_bucket
    return runtime.store.get_json(bucket, key) if runtime.store.exists(bucket, key) else None


def needs_scoring(runtime: Runtime, run: MonthRun) -> bool:
    """A newly landed file, or a landed one that was never scored from these exact bytes."""
    if run.status == "landed":
        return True
    if run.status != "skipped_unchanged":
        return False
    record = read_record(runtime, run.trip_type, run.granularity, run.month)
    return record is None or record.get("sha256") != run.sha256


def write_record(runtime: Runtime, run: MonthRun) -> dict[str, Any]:
    """pipeline/scored/{trip_type}/{granularity}/{month}.json: what was scored, from which bytes, with which model."""
    document = {
        "trip_type": run.trip_type,
        "month": run.month,
        "granularity": str(run.granularity),
        "model_version": run.model_version,
        "sha256": run.sha256,
        "rows": run.rows,
        "backend": run.backend,
        "namespace": run.sandbox.namespace,
        "windows": run.windows,
        "anomalies": run.anomalies,
        "run_id": run.run_id,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    key = record_key(runtime, run.trip_type, run.granularity, run.month)
    runtime.store.put_json(runtime.locations.reports_bucket, key, document)
    return document


# Models --------------------------------------------------------------------------------------------------------
def read_pointer(runtime: Runtime, trip_type: str, granularity: str) -> dict[str, Any] | None:
    key = runtime.locations.models_key(trip_type, granularity, POINTER)
    bucket = runtime.locations.models_bucket
    return runtime.store.get_json(bucket, key) if runtime.store.exists(bucket, key) else None


def registry_versions(runtime: Runtime, trip_type: str, granularity: str) -> dict[str, dict[str, Any]]:
    """Complete versions (layout.complete_versions) -> their metadata, oldest first."""
    base = runtime.locations.models_key(trip_type, granularity) + "/"
    bucket = runtime.locations.models_bucket
    versions = layout.complete_versions(k[len(base) :] for k in runtime.store.list_keys(bucket, base))
    return {v: runtime.store.get_json(bucket, f"{base}{v}/{layout.METADATA_FILE}") for v in versions}


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
        return str(pointer["version"])
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
# A backfill's months of one trip type are scored in one submission: the JVM, the Python workers, the model load
# and the table commits are paid once, not per month (bench/README.md: twelve submissions of one month cost 1,335 s
# where one process scans the same files in 64 s). At most this many months share one; the job keeps only the
# window table of its months in memory.
MONTHS_PER_JOB = 12


def scoring_batches(runs: Sequence[MonthRun]) -> list[tuple[MonthRun, ...]]:
    """The months to score, grouped into jobs: same trip type, granularity, model version and sandbox, in month
    order, at most MONTHS_PER_JOB each."""
    groups: dict[tuple[Any, ...], list[MonthRun]] = {}
    for run in sorted(runs, key=lambda r: (r.trip_type, str(r.granularity), r.month)):
        key = (run.trip_type, str(run.granularity), run.model_version, run.sandbox)
        groups.setdefault(key, []).append(run)
    return [
        tuple(group[i : i + MONTHS_PER_JOB]) for group in groups.values() for i in range(0, len(group), MONTHS_PER_JOB)
    ]


def score_job(runtime: Runtime, runs: Sequence[MonthRun], run_id: str) -> AnomalyJob:
    """The score-mode job of one batch (scoring_batches): every month of it in one submission."""
    first = runs[0]
    if not first.model_version or not run_id:
        raise PipelineError(f"{first.label}: no model version or run id to score with")
    mixed = {(r.trip_type, r.granularity, r.model_version) for r in runs}
    if len(mixed) > 1:
        raise PipelineError(f"one job scores one trip type, granularity and model version, got {sorted(mixed)}")
    return runtime.locations.job(
        trip_type=first.trip_type,
        granularity=first.granularity,
        mode=Mode.SCORE,
        score_months=tuple(r.month for r in runs),
        namespace=runtime.namespace,
        run_id=run_id,
        model_version=first.model_version,
    )


def run_spark(job: AnomalyJob, context: Any, backend: str | None = None) -> str:
    """Run the job on the backend chosen now (Variable tap_platform); returns the backend's name."""
    from taxi_anomaly.orchestration.backends import choose_backend

    chosen = choose_backend(backend)
    log.info("running %s on the %s backend", job.name, chosen.name)
    chosen.run(job, context)
    return chosen.name


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


def verify_tables(runtime: Runtime, run: MonthRun) -> dict[str, Any]:
    """The job's tables are registered in the Hive Metastore as Iceberg tables, and the month's partition of
    each holds this run's rows only. Returns rows per table (what Spark wrote) for the Trino check."""
    from pyiceberg.expressions import And, EqualTo

    from taxi_anomaly.metastore_ticket import metastore_ticket

    catalog = hive_catalog(runtime)
    namespace = check_namespace(runtime.namespace)
    found: dict[str, Any] = {}
    for table in TABLES:
        try:
            with metastore_ticket():
                loaded = catalog.load_table((namespace, table))
        except Exception as err:
            raise PipelineError(f"iceberg.{namespace}.{table} is not registered in the Hive Metastore: {err}") from err
        snapshot = loaded.current_snapshot()
        if snapshot is None:
            raise PipelineError(f"iceberg.{namespace}.{table} has no snapshot: the Spark job wrote nothing")
        # pyiceberg's expressions are pydantic models whose declared fields do not match their constructors.
        where = And(
            EqualTo("trip_type", run.trip_type),  # type: ignore[call-arg, arg-type]
            And(
                EqualTo("granularity", str(run.granularity)),  # type: ignore[call-arg, arg-type]
                EqualTo("month", run.month),  # type: ignore[call-arg, arg-type]
            ),
        )
        runs = loaded.scan(row_filter=where, selected_fields=("run_id",)).to_arrow().column("run_id").to_pylist()
        if not runs:
            raise PipelineError(f"iceberg.{namespace}.{table} has no row for {run.label} {run.granularity}")
        others = sorted(set(runs) - {run.run_id})
        if others:
            raise PipelineError(
                f"iceberg.{namespace}.{table} {run.label} {run.granularity} holds rows of other runs "
                f"{others[:3]} besides {run.run_id}: the partition was not replaced"
            )
        found[table] = {"rows": len(runs), "snapshot_id": snapshot.snapshot_id}
    expected = expected_windows(run.granularity, run.month)
    if expected is not None and found["anomaly_scores"]["rows"] != expected:
        raise PipelineError(
            f"{run.label}: {found['anomaly_scores']['rows']} city windows scored, a complete month has {expected}"
        )
    return found


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
        cursor.execute(
            f"SELECT count(*), {flagged}, count(DISTINCT run_id) FROM {layout.sql_table(namespace, table)} "  # noqa: S608
            "WHERE trip_type = ? AND granularity = ? AND month = ?",
            [trip_type, granularity, month],
        )
        rows, anomalies, runs = cursor.fetchone()
        counts[table] = {"rows": int(rows), "anomalies": int(anomalies or 0), "runs": int(runs)}
    return counts


def trino_sanity(runtime: Runtime, run: MonthRun) -> MonthRun:
    """Trino sees exactly the rows Spark wrote (as counted from the Iceberg metadata), and one run's rows; the
    readers' views over the tables exist (taxi_anomaly.serving.views)."""
    from taxi_anomaly.serving.views import ensure_reader_views

    ensure_reader_views(trino_settings().connect(), runtime.namespace)
    counts = trino_counts(runtime.namespace, run.trip_type, run.granularity, run.month)
    problems = []
    for table, seen in counts.items():
        wrote = (run.tables or {})[table]["rows"]
        if seen["rows"] != wrote:
            problems.append(f"{table}: Trino reads {seen['rows']} rows, Spark wrote {wrote}")
        if seen["runs"] != 1:
            problems.append(f"{table}: {seen['runs']} run ids in the partition, expected 1")
    if problems:
        raise PipelineError(f"Trino sanity query on {run.label} {run.granularity}: " + "; ".join(problems))
    checked = run.with_(
        windows=counts["anomaly_scores"]["rows"],
        anomalies=counts["anomaly_scores"]["anomalies"],
        top=tuple(top_anomalies(runtime.namespace, run.trip_type, run.granularity, run.month)),
    )
    log.info("%s %s: %d windows, %d anomalous", checked.label, run.granularity, checked.windows, checked.anomalies)
    for line in checked.top:
        log.info("  %s", line)
    return checked


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
    prefix = f"{runtime.locations.prefix}{layout.RAW_ROOT}/{trip_type}/"
    return layout.landed_months(runtime.raw_store.list_keys(runtime.locations.raw_bucket, prefix), trip_type)


def eval_namespace(runtime: Runtime, role: str) -> str:
    return check_namespace(f"{runtime.namespace}{EVAL_SUFFIXES[role]}")


def plan_retraining(
    runtime: Runtime,
    trip_type: str,
    granularity: Granularity,
    window: int,
    holdout: str | None,
    detector: str,
    detector_params: dict[str, Any],
) -> Retraining:
    """The training window and evaluation month, the incumbent, and the candidate's spec checked by its family
    (a wrong override fails here, naming it, before any Spark job starts)."""
    from taxi_anomaly.detectors import SpecError, resolve_spec
    from taxi_anomaly.orchestration.months import training_window

    try:
        resolve_spec(detector, granularity, detector_params)
    except SpecError as err:
        raise PipelineError(f"{trip_type} {granularity}: {err}") from err
    try:
        plan = training_window(landed_months(runtime, trip_type), window, holdout)
    except ValueError as err:
        raise PipelineError(f"{trip_type}: {err}") from err
    pointer = read_pointer(runtime, trip_type, granularity)
    return Retraining(
        trip_type=trip_type,
        granularity=granularity,
        sandbox=runtime.sandbox,
        train_months=tuple(plan["train_months"]),
        holdout_month=plan["holdout_month"],
        incumbent=(pointer or {}).get("version"),
        detector=detector,
        detector_params=dict(detector_params),
    )


def candidate_job(runtime: Runtime, plan: Retraining, run_id: str) -> AnomalyJob:
    """Train on the window and score the evaluation month into the candidate's evaluation namespace."""
    return runtime.locations.job(
        trip_type=plan.trip_type,
        granularity=plan.granularity,
        mode=Mode.TRAIN_AND_SCORE,
        train_months=plan.train_months,
        score_months=(plan.holdout_month,),
        namespace=eval_namespace(runtime, "candidate"),
        evaluations_namespace=runtime.namespace,
        run_id=run_id,
        detector=plan.detector,
        detector_params=plan.detector_params,
    )


def incumbent_job(runtime: Runtime, plan: Retraining, run_id: str) -> AnomalyJob:
    if not plan.incumbent:
        raise PipelineError(f"{plan.label}: no incumbent to score")
    return runtime.locations.job(
        trip_type=plan.trip_type,
        granularity=plan.granularity,
        mode=Mode.SCORE,
        score_months=(plan.holdout_month,),
        namespace=eval_namespace(runtime, "incumbent"),
        evaluations_namespace=runtime.namespace,
        run_id=run_id,
        model_version=plan.incumbent,
    )


def evaluation(runtime: Runtime, plan: Retraining, version: str, run_id: str) -> Evaluation:
    """The evaluation the Spark job wrote for `version` on the holdout month in this run (model_evaluations)."""
    from taxi_anomaly.orchestration.promotion import EVALUATION_COLUMNS

    table = layout.sql_table(runtime.namespace, layout.EVALUATIONS_TABLE)
    cursor = trino_settings().connect().cursor()
    cursor.execute(
        f"SELECT {', '.join(EVALUATION_COLUMNS)} FROM {table} "  # noqa: S608 - quoted identifiers, parameters
        "WHERE model_version = ? AND trip_type = ? AND granularity = ? AND month = ? AND run_id = ?",
        [version, plan.trip_type, str(plan.granularity), plan.holdout_month, run_id],
    )
    rows = cursor.fetchall()
    if not rows:
        raise PipelineError(
            f"{plan.label}: no evaluation of {version} on {plan.holdout_month} in {table} for run {run_id}"
        )
    return Evaluation.from_row(dict(zip(EVALUATION_COLUMNS, rows[0], strict=True)))


def evaluate_and_promote(runtime: Runtime, plan: Retraining, tolerance: float, run_id: str) -> dict[str, Any]:
    """Compare candidate and incumbent on the evaluation month (bucket F1 where the month is labelled, else
    calibration); write promoted.json if the candidate is not worse."""
    if not plan.candidate:
        raise PipelineError(f"{plan.label}: the candidate training saved no version")
    challenger = evaluation(runtime, plan, plan.candidate, run_id)
    incumbent = evaluation(runtime, plan, plan.incumbent, run_id) if plan.incumbent else None
    decision: Decision = decide(challenger, incumbent, tolerance)
    report = {**decision.as_dict(), "plan": plan.to_xcom(), "run_id": run_id}
    report_key = runtime.locations.report_key(
        "evaluations", plan.trip_type, str(plan.granularity), f"{plan.candidate}.json"
    )
    runtime.store.put_json(runtime.locations.reports_bucket, report_key, report)
    if decision.promote:
        previous = read_pointer(runtime, plan.trip_type, plan.granularity)
        pointer_key = runtime.locations.models_key(plan.trip_type, plan.granularity, POINTER)
        runtime.store.put_json(
            runtime.locations.models_bucket, pointer_key, pointer_document(decision, previous, run_id)
        )
        log.info("promoted %s %s: %s", plan.label, plan.candidate, decision.reason)
    else:
        log.warning("kept %s %s: %s", plan.label, plan.incumbent, decision.reason)
    return {**report, "report_key": report_key}


# Tuning ----------------------------------------------------------------------------------------------------------
def tuning_job(
    runtime: Runtime, trip_type: str, granularity: Granularity, months: list[str], params: dict[str, Any], run_id: str
) -> AnomalyJob:
    """The Spark job in tune mode (the spec's search space, K folds over the months); checked before it starts."""
    from taxi_anomaly.detectors import SpecError, resolve_spec

    detector, overrides = params.get("detector") or "isolation_forest", dict(params.get("detector_params") or {})
    try:
        resolve_spec(detector, granularity, overrides)
    except SpecError as err:
        raise PipelineError(f"{trip_type} {granularity}: {err}") from err
    return runtime.locations.job(
        trip_type=trip_type,
        granularity=granularity,
        mode=Mode.TUNE,
        train_months=tuple(months),
        namespace=runtime.namespace,
        run_id=run_id,
        detector=detector,
        detector_params=overrides,
        history_months=int(params.get("history_months", 3)),
        max_trials=int(params.get("max_trials", 24)),
    )


def tuning_report(runtime: Runtime, job: AnomalyJob) -> dict[str, Any]:
    """The run's best trial (tuning_trials, through Trino) and where its candidate spec is; nothing is promoted."""
    table = layout.sql_table(runtime.namespace, layout.TRIALS_TABLE)
    cursor = trino_settings().connect().cursor()
    cursor.execute(
        f"SELECT trial, overrides, mean_bucket_f1, every_episode_found, count(*) AS folds FROM {table} "  # noqa: S608
        "WHERE run_id = ? GROUP BY trial, overrides, mean_bucket_f1, every_episode_found "
        "ORDER BY every_episode_found DESC, mean_bucket_f1 DESC, trial LIMIT 1",
        [job.run_id],
    )
    rows = cursor.fetchall()
    if not rows:
        raise PipelineError(f"tuning run {job.run_id} wrote no trial to {table}")
    trial, overrides, mean_f1, every_found, fold_count = rows[0]
    key = layout.candidate_path(
        runtime.locations.prefix + layout.REGISTRY_ROOT, job.trip_type, str(job.granularity), job.detector, job.run_id
    )
    if not runtime.store.exists(runtime.locations.models_bucket, key):
        raise PipelineError(
            f"tuning run {job.run_id} wrote no candidate spec at s3://{runtime.locations.models_bucket}/{key}"
        )
    report = {
        "trial": trial,
        "overrides": overrides,
        "mean_bucket_f1": mean_f1,
        "every_episode_found": every_found,
        "folds": fold_count,
        "candidate": f"s3://{runtime.locations.models_bucket}/{key}",
    }
    log.info("best trial of %s: %s (a candidate only: copy it into include/models to use it)", job.detector, report)
    return report
