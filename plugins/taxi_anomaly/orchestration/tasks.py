"""The platform's Airflow tasks: thin wrappers that read the run's context and call `steps`.

Each task has its kind's retries, delay and timeout (policies.py) and, when mapped, a map index label such as
"green 2024-01". Outcomes that no retry can change (a wrong parameter, a quarantined file, no model) fail with
AirflowFailException: no retry, one alert, a message that says what to do. A month the TLC has not published
yet is a skip, not a failure.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

from taxi_anomaly.operators.superset import SupersetDashboardsOperator
from taxi_anomaly.orchestration.assets import RAW_ASSETS, RAW_LANDED_ALIAS
from taxi_anomaly.orchestration.policies import policy

LABEL = "{{ target_label }}"


def _runtime(values: dict[str, Any]):
    from taxi_anomaly.orchestration.runtime import Runtime

    return Runtime.from_params(values)


def _label(target: dict[str, Any]) -> None:
    get_current_context()["target_label"] = target.get("label", "")  # type: ignore[typeddict-unknown-key]


def _fail(err: Exception):
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(err))


def _skip(message: str):
    from airflow.sdk.exceptions import AirflowSkipException

    return AirflowSkipException(message)


def _sandbox(params: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import asdict

    from taxi_anomaly.orchestration.params import Sandbox

    return asdict(Sandbox.from_params(params))


# Planning -------------------------------------------------------------------------------------------------------
@task(task_id="plan_months", **policy("plan"))
def plan_backfill(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """(trip type, month) pairs of the requested range, each with the run's sandbox."""
    from taxi_anomaly.orchestration.months import backfill_targets

    params = params or {}
    try:
        targets = backfill_targets(params["trip_types"], params["first_month"], params["last_month"])
    except ValueError as err:
        raise _fail(err) from err
    sandbox = _sandbox(params)
    return [{**t, **sandbox, "granularity": params.get("granularity", "city")} for t in targets]


@task(task_id="plan_months", **policy("plan"))
def plan_daily(params: dict[str, Any] | None = None, logical_date: Any = None) -> list[dict[str, Any]]:
    """The look-back months before the run's date, for every trip type."""
    from datetime import UTC, datetime

    from taxi_anomaly.orchestration.months import candidate_months, targets

    params = params or {}
    day = (logical_date or datetime.now(UTC)).date()
    months = candidate_months(day, int(params.get("lookback_months", 4)))
    sandbox = _sandbox(params)
    return [{**t, **sandbox} for t in targets(params["trip_types"], months)]


@task(task_id="plan_months", **policy("plan"))
def plan_from_assets(params: dict[str, Any] | None = None, triggering_asset_events: Any = None) -> list[dict]:
    """The months the triggering 'raw month landed' events list."""
    from taxi_anomaly.orchestration.assets import targets_from_events

    found = targets_from_events(triggering_asset_events)
    if not found:
        raise _skip("the triggering asset events list no month to score")
    granularity = (params or {}).get("granularity", "city")
    return [{**t, "granularity": granularity} for t in found]


# Ingestion ------------------------------------------------------------------------------------------------------
@task(task_id="download", map_index_template=LABEL, max_active_tis_per_dagrun=2, **policy("download"))
def download(target: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """ingest_month: download, integrity, validation, land or quarantine. Not published yet -> skipped."""
    from taxi_anomaly.orchestration import steps

    _label(target)
    summary = steps.ingest(_runtime(target), target, force=bool((params or {}).get("force_download")))
    if summary["status"] == "not_published":
        raise _skip(summary["message"])
    return {**target, **summary}


@task(task_id="integrity_check", map_index_template=LABEL, **policy("check"))
def integrity_check(summary: dict[str, Any]) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    _label(summary)
    try:
        steps.integrity_result(summary)
    except steps.PipelineError as err:
        raise _fail(err) from err
    return summary


@task(task_id="gx_validation", map_index_template=LABEL, **policy("check"))
def gx_validation(summary: dict[str, Any]) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    _label(summary)
    try:
        result = steps.validation_result(summary)
    except steps.PipelineError as err:
        raise _fail(err) from err
    return {**summary, "gx": result}


@task(task_id="render_data_docs", trigger_rule=TriggerRule.ALL_DONE, **policy("record"))
def render_data_docs(targets: list[dict[str, Any]]) -> dict[str, Any]:
    """GX Data Docs pages of every month of the run that was validated (landed or quarantined), once per run."""
    from taxi_anomaly.orchestration import steps

    return steps.render_data_docs(targets)


@task(task_id="zone_lookup", **policy("download"))
def zone_lookup(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The taxi zone lookup in the raw zone (the borough granularity joins it)."""
    from taxi_anomaly.orchestration import steps

    params = params or {}
    return steps.ingest_zone_lookup(_runtime(params), force=bool(params.get("force_download")))


# Most months of a look-back are not published (skipped): announce whatever landed, unless something failed.
@task(
    task_id="announce_landed_months",
    outlets=[RAW_LANDED_ALIAS],
    trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    **policy("record"),
)
def announce_landed(validated: list[dict[str, Any]], outlet_events: Any = None) -> dict[str, list[str]]:
    """One asset event per trip type that has months to score (new, changed, or never scored)."""
    from taxi_anomaly.orchestration import steps

    months: dict[tuple, list[str]] = {}
    for summary in validated:
        if summary and steps.needs_scoring(_runtime(summary), summary):
            key = (summary["trip_type"], summary["namespace"], summary["storage_prefix"], summary["tlc_base_url"])
            months.setdefault(key, []).append(summary["month"])
    announced: dict[str, list[str]] = {}
    for (trip_type, namespace, prefix, base_url), found in sorted(months.items()):
        extra = {"months": sorted(found), "namespace": namespace, "storage_prefix": prefix, "tlc_base_url": base_url}
        outlet_events[RAW_LANDED_ALIAS].add(RAW_ASSETS[trip_type], extra=extra)
        announced[trip_type] = sorted(found)
    if not announced:
        raise _skip("no newly landed month")
    return announced


# Scoring --------------------------------------------------------------------------------------------------------
@task(task_id="resolve_model", map_index_template=LABEL, **policy("plan"))
def resolve_model(checked: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model version to score with ('promoted' -> the pointer). Skipped when the run only ingests."""
    from taxi_anomaly.orchestration import steps

    _label(checked)
    params = params or {}
    if not params.get("score", True):
        raise _skip("score is off for this run: the month is landed and validated only")
    granularity = checked.get("granularity") or params.get("granularity", "city")
    try:
        version = steps.resolve_model(
            _runtime(checked), checked["trip_type"], granularity, params.get("model_version", "promoted")
        )
    except steps.ModelNotReady as err:
        raise _fail(err) from err
    return {**checked, "granularity": granularity, "model_version": version}


@task(task_id="spark_anomaly_job", map_index_template=LABEL, max_active_tis_per_dag=1, **policy("spark"))
def spark_score(resolved: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """The Spark job in score mode for one month, on the backend the Variable tap_platform names."""
    from taxi_anomaly.orchestration import steps

    _label(resolved)
    runtime = _runtime(resolved)
    job = steps.score_job(
        runtime, resolved["trip_type"], resolved["month"], resolved["granularity"], resolved["model_version"], run_id
    )
    ran = steps.run_spark(job, get_current_context())
    return {**resolved, "run_id": run_id, "backend": ran["backend"]}


@task(task_id="verify_iceberg_tables", map_index_template=LABEL, **policy("catalog"))
def verify_tables(scored: dict[str, Any]) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    _label(scored)
    try:
        verified = steps.verify_tables(
            _runtime(scored), scored["trip_type"], scored["granularity"], scored["month"], scored["run_id"]
        )
    except steps.PipelineError as err:
        raise _fail(err) from err
    return {**scored, "verified": verified}


@task(task_id="trino_sanity_query", map_index_template=LABEL, **policy("catalog"))
def trino_sanity(verified: dict[str, Any]) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    _label(verified)
    result = steps.trino_sanity(
        _runtime(verified), verified["trip_type"], verified["granularity"], verified["month"], verified["verified"]
    )
    return {**verified, "trino": result}


@task(task_id="record_scored_month", map_index_template=LABEL, **policy("record"))
def record_scored(checked: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """pipeline/scored/{trip_type}/{granularity}/{month}.json in the reports bucket: what was scored, from which
    file (sha256), with which model; the daily run re-scores a month only if its file changed."""
    from taxi_anomaly.orchestration import steps

    _label(checked)
    keep = ("trip_type", "month", "granularity", "model_version", "sha256", "rows", "backend", "namespace")
    document = {k: checked.get(k) for k in keep}
    document.update({"windows": checked["trino"]["windows"], "anomalies": checked["trino"]["anomalies"]})
    steps.write_record(_runtime(checked), document, run_id or "")
    return document


def refresh_dashboards(upstream: Any):
    """The serving package's SupersetDashboardsOperator (assets import if they differ, dataset refresh, chart
    cache warm-up), once per run, when at least one month was scored and none failed."""
    refresh = SupersetDashboardsOperator(
        task_id="refresh_superset_dashboards", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, **policy("serving")
    )
    upstream >> refresh
    return refresh


# Retraining -----------------------------------------------------------------------------------------------------
@task(task_id="plan_trip_types", **policy("plan"))
def trip_types(params: dict[str, Any] | None = None) -> list[str]:
    """The trip types of the run (the form checked them against the enum)."""
    return list((params or {})["trip_types"])


@task(task_id="plan_training_window", map_index_template=LABEL, **policy("plan"))
def plan_retraining(trip_type: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    params = params or {}
    get_current_context()["target_label"] = trip_type  # type: ignore[typeddict-unknown-key]
    runtime = _runtime(params)
    try:
        plan = steps.plan_retraining(
            runtime, trip_type, params["granularity"], int(params["train_window_months"]), params.get("holdout_month")
        )
    except steps.PipelineError as err:
        raise _fail(err) from err
    return {**plan, **_sandbox(params), "label": f"{trip_type} {params['granularity']}"}


@task(task_id="train_candidate", map_index_template=LABEL, max_active_tis_per_dag=1, **policy("spark"))
def train_candidate(plan: dict[str, Any], params: dict[str, Any] | None = None, run_id: str | None = None) -> dict:
    """Train on the window and score the evaluation month (evaluation namespace <namespace>_candidate)."""
    from taxi_anomaly.orchestration import steps

    _label(plan)
    params = params or {}
    runtime = _runtime(plan)
    contamination = params.get("contamination")
    contamination = None if contamination is None else float(contamination)
    job = steps.candidate_job(runtime, plan, contamination, int(params["n_estimators"]), run_id)
    steps.run_spark(job, get_current_context())
    version = steps.trained_version(runtime, plan["trip_type"], plan["granularity"], run_id)
    return {**plan, "candidate": version}


@task(task_id="score_incumbent", map_index_template=LABEL, max_active_tis_per_dag=1, **policy("spark"))
def score_incumbent(plan: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Score the evaluation month with the promoted model (namespace <namespace>_incumbent)."""
    from taxi_anomaly.orchestration import steps

    _label(plan)
    if not plan.get("incumbent"):
        return {**plan, "incumbent_scored": False}
    steps.run_spark(steps.incumbent_job(_runtime(plan), plan, run_id), get_current_context())
    return {**plan, "incumbent_scored": True}


@task(task_id="evaluate_and_promote", map_index_template=LABEL, **policy("catalog"))
def evaluate_and_promote(
    candidate: dict[str, Any],
    incumbent: dict[str, Any],
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    _label(candidate)
    return steps.evaluate_and_promote(
        _runtime(candidate), incumbent, candidate["candidate"], float((params or {}).get("tolerance", 0.002)), run_id
    )
