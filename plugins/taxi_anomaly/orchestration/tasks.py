"""The platform's Airflow tasks: thin wrappers that read the run's context and call `steps`.

Each task has its kind's retries, delay and timeout (policies.py) and, when mapped, a map index label such as
"green 2024-01". Tasks hand each other typed payloads (payloads.py: a MonthRun per month, a Retraining per model),
as JSON in XCom. Outcomes that no retry can change (a wrong parameter, a quarantined file, no model) fail with
AirflowFailException: no retry, one alert, a message that says what to do. A month the TLC has not published yet
is a skip, not a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule, get_current_context, task, task_group

from taxi_anomaly.operators.superset import SupersetDashboardsOperator

if TYPE_CHECKING:
    from taxi_anomaly.orchestration.params import Sandbox
    from taxi_anomaly.orchestration.payloads import MonthRun, Retraining
    from taxi_anomaly.orchestration.runtime import Runtime
from taxi_anomaly.orchestration.assets import RAW_ASSETS, RAW_LANDED_ALIAS
from taxi_anomaly.orchestration.policies import policy

LABEL = "{{ target_label }}"
XCom = dict[str, Any]


def _runtime(sandbox: Sandbox) -> Runtime:
    from taxi_anomaly.orchestration.runtime import Runtime

    return Runtime(sandbox)


def _month(value: XCom) -> MonthRun:
    """The MonthRun a task received, labelled in the UI."""
    from taxi_anomaly.orchestration.payloads import MonthRun

    run = MonthRun.from_xcom(value)
    get_current_context()["target_label"] = run.label  # type: ignore[typeddict-unknown-key]
    return run


def _retraining(value: XCom) -> Retraining:
    from taxi_anomaly.orchestration.payloads import Retraining

    plan = Retraining.from_xcom(value)
    get_current_context()["target_label"] = plan.label  # type: ignore[typeddict-unknown-key]
    return plan


def _fail(err: Exception) -> Exception:
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(err))


def _skip(message: str) -> Exception:
    from airflow.sdk.exceptions import AirflowSkipException

    return AirflowSkipException(message)


def _sandbox(params: dict[str, Any]) -> Sandbox:
    """The run's sandbox, checked: a run conf from the REST API skips the trigger form's checks."""
    from taxi_anomaly.orchestration.params import Sandbox

    try:
        return Sandbox.from_params(params)
    except ValueError as err:
        raise _fail(err) from err


# Planning -------------------------------------------------------------------------------------------------------
@task(task_id="plan_months", **policy("plan"))
def plan_backfill(params: dict[str, Any] | None = None) -> list[XCom]:
    """(trip type, month) pairs of the requested range, each with the run's sandbox."""
    from taxi_anomaly.orchestration.months import backfill_runs

    params = params or {}
    try:
        runs = backfill_runs(
            params.get("trip_types") or [],
            params.get("first_month"),  # type: ignore[arg-type]
            params.get("last_month"),  # type: ignore[arg-type]
            _sandbox(params),
            params.get("granularity", "city"),
        )
    except ValueError as err:
        raise _fail(err) from err
    return [r.to_xcom() for r in runs]


@task(task_id="plan_months", **policy("plan"))
def plan_daily(params: dict[str, Any] | None = None, logical_date: Any = None) -> list[XCom]:
    """The look-back months before the run's date, for every trip type."""
    from datetime import UTC, datetime

    from taxi_anomaly.orchestration.months import candidate_months, month_runs

    params = params or {}
    day = (logical_date or datetime.now(UTC)).date()
    try:
        months = candidate_months(day, int(params.get("lookback_months", 4)))
        runs = month_runs(params.get("trip_types") or [], months, _sandbox(params))
    except ValueError as err:
        raise _fail(err) from err
    return [r.to_xcom() for r in runs]


@task(task_id="plan_months", **policy("plan"))
def plan_from_assets(params: dict[str, Any] | None = None, triggering_asset_events: Any = None) -> list[XCom]:
    """The months the triggering 'raw month landed' events list (each event's extra checked)."""
    from taxi_anomaly.orchestration.assets import targets_from_events

    try:
        found = targets_from_events(triggering_asset_events, (params or {}).get("granularity", "city"))
    except ValueError as err:
        raise _fail(err) from err
    if not found:
        raise _skip("the triggering asset events list no month to score")
    return [r.to_xcom() for r in found]


# Ingestion ------------------------------------------------------------------------------------------------------
@task(task_id="download", map_index_template=LABEL, max_active_tis_per_dagrun=2, **policy("download"))
def download(target: XCom, params: dict[str, Any] | None = None) -> XCom:
    """ingest_month: download, integrity, validation, land or quarantine. Not published yet -> skipped."""
    from taxi_anomaly.orchestration import steps

    run = _month(target)
    ingested = steps.ingest(_runtime(run.sandbox), run, force=bool((params or {}).get("force_download")))
    if ingested.status == "not_published":
        raise _skip(ingested.message or f"{run.label} is not published")
    return ingested.to_xcom()


@task(task_id="integrity_check", map_index_template=LABEL, **policy("check"))
def integrity_check(ingested: XCom) -> XCom:
    from taxi_anomaly.orchestration import steps

    run = _month(ingested)
    try:
        steps.integrity_result(run)
    except steps.PipelineError as err:
        raise _fail(err) from err
    return run.to_xcom()


@task(task_id="gx_validation", map_index_template=LABEL, **policy("check"))
def gx_validation(ingested: XCom) -> XCom:
    from taxi_anomaly.orchestration import steps

    run = _month(ingested)
    try:
        steps.validation_result(run)
    except steps.PipelineError as err:
        raise _fail(err) from err
    return run.to_xcom()


@task(task_id="render_data_docs", trigger_rule=TriggerRule.ALL_DONE, **policy("record"))
def render_data_docs(targets: list[XCom]) -> dict[str, Any]:
    """GX Data Docs pages of every month of the run that was validated (landed or quarantined), once per run."""
    from taxi_anomaly.orchestration import steps
    from taxi_anomaly.orchestration.payloads import MonthRun

    return steps.render_data_docs([MonthRun.from_xcom(t) for t in targets])


@task(task_id="zone_lookup", **policy("download"))
def zone_lookup(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The taxi zone lookup in the raw zone (the borough granularity joins it)."""
    from taxi_anomaly.orchestration import steps

    params = params or {}
    return steps.ingest_zone_lookup(_runtime(_sandbox(params)), force=bool(params.get("force_download")))


# Most months of a look-back are not published (skipped): announce whatever landed, unless something failed.
@task(
    task_id="announce_landed_months",
    outlets=[RAW_LANDED_ALIAS],
    trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    **policy("record"),
)
def announce_landed(validated: list[XCom] | XCom | None, outlet_events: Any = None) -> dict[str, list[str]]:
    """One asset event per trip type that has months to score (new, changed, or never scored)."""
    from taxi_anomaly.orchestration import steps
    from taxi_anomaly.orchestration.payloads import MonthRun
    from taxi_anomaly.tlc import check_trip_type

    months: dict[tuple[str, Any], list[str]] = {}
    for run in MonthRun.all_from_xcom(validated):
        if steps.needs_scoring(_runtime(run.sandbox), run):
            months.setdefault((run.trip_type, run.sandbox), []).append(run.month)
    announced: dict[str, list[str]] = {}
    for (trip_type, sandbox), found in sorted(months.items(), key=lambda item: (item[0][0], item[0][1].namespace)):
        extra = {
            "months": sorted(found),
            "namespace": sandbox.namespace,
            "storage_prefix": sandbox.storage_prefix,
            "tlc_base_url": sandbox.tlc_base_url,
        }
        outlet_events[RAW_LANDED_ALIAS].add(RAW_ASSETS[check_trip_type(trip_type)], extra=extra)
        announced[trip_type] = sorted(found)
    if not announced:
        raise _skip("no newly landed month")
    return announced


# Scoring --------------------------------------------------------------------------------------------------------
@task(task_id="resolve_model", map_index_template=LABEL, **policy("plan"))
def resolve_model(checked: XCom, params: dict[str, Any] | None = None) -> XCom:
    """The model version to score with ('promoted' -> the pointer). Skipped when the run only ingests."""
    import re

    from taxi_anomaly.contract import VERSION_REF_PATTERN
    from taxi_anomaly.orchestration import steps

    run = _month(checked)
    params = params or {}
    if not params.get("score", True):
        raise _skip("score is off for this run: the month is landed and validated only")
    requested = params.get("model_version", "promoted")
    if not isinstance(requested, str) or not re.fullmatch(VERSION_REF_PATTERN, requested):
        raise _fail(ValueError(f"model_version must be 'promoted', 'latest' or a version name, got {requested!r}"))
    try:
        version = steps.resolve_model(_runtime(run.sandbox), run.trip_type, run.granularity, requested)
    except steps.ModelNotReady as err:
        raise _fail(err) from err
    return run.with_(model_version=version).to_xcom()


# Runs once every month's chain has ended, whatever the outcome: the resolved months are scored, a month that
# failed (quarantined) or was skipped (not published, score off) is left out (its instance pushed no XCom).
# Not ALL_DONE_MIN_ONE_SUCCESS: that rule skips the task when any upstream instance was skipped.
@task(
    task_id="spark_anomaly_job",
    trigger_rule=TriggerRule.ALL_DONE,
    max_active_tis_per_dag=1,
    **policy("spark"),
)
def spark_score(resolved: list[XCom] | XCom | None, run_id: str | None = None) -> list[XCom]:
    """The Spark job in score mode, on the backend the Variable tap_platform names: one submission per trip type
    for all its resolved months (steps.scoring_batches), one after the other. Returns the scored months."""
    from taxi_anomaly.orchestration import steps
    from taxi_anomaly.orchestration.payloads import MonthRun

    runs = MonthRun.all_from_xcom(resolved)
    if not runs:
        raise _skip("no month was resolved for scoring")
    scored: list[XCom] = []
    for batch in steps.scoring_batches(runs):
        try:
            job = steps.score_job(_runtime(batch[0].sandbox), batch, run_id or "")
        except steps.PipelineError as err:
            raise _fail(err) from err
        backend = steps.run_spark(job, get_current_context())
        scored += [run.with_(run_id=run_id, backend=backend).to_xcom() for run in batch]
    return scored


@task(task_id="verify_iceberg_tables", map_index_template=LABEL, **policy("catalog"))
def verify_tables(scored: XCom) -> XCom:
    from taxi_anomaly.orchestration import steps

    run = _month(scored)
    try:
        found = steps.verify_tables(_runtime(run.sandbox), run)
    except steps.PipelineError as err:
        raise _fail(err) from err
    return run.with_(tables=found).to_xcom()


@task(task_id="trino_sanity_query", map_index_template=LABEL, **policy("catalog"))
def trino_sanity(verified: XCom) -> XCom:
    from taxi_anomaly.orchestration import steps

    run = _month(verified)
    return steps.trino_sanity(_runtime(run.sandbox), run).to_xcom()


@task(task_id="record_scored_month", map_index_template=LABEL, **policy("record"))
def record_scored(checked: XCom) -> dict[str, Any]:
    """pipeline/scored/{trip_type}/{granularity}/{month}.json in the reports bucket: what was scored, from which
    file (sha256), with which model; the daily run re-scores a month only if its file changed."""
    from taxi_anomaly.orchestration import steps

    run = _month(checked)
    return steps.write_record(_runtime(run.sandbox), run)


def score_months(resolved: Any) -> Any:
    """Scoring after `resolve_model`: the Spark job (one submission per trip type), then per scored month its
    tables verified, Trino's sanity query and the run record (mapped task group `scored`)."""

    @task_group(group_id="scored")
    def scored_month(run: Any) -> Any:
        verified: Any = verify_tables(run)  # an XComArg while the DAG is built
        checked: Any = trino_sanity(verified)
        return record_scored(checked)

    return scored_month.expand(run=spark_score(resolved))


def refresh_dashboards(upstream: Any) -> SupersetDashboardsOperator:
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
    """The trip types of the run, checked (a REST conf skips the form's enum)."""
    from taxi_anomaly.tlc import TRIP_TYPES

    chosen = list((params or {}).get("trip_types") or [])
    wrong = [t for t in chosen if t not in TRIP_TYPES]
    if not chosen or wrong:
        raise _fail(ValueError(f"trip_types must be a non-empty list of {', '.join(TRIP_TYPES)}, got {chosen!r}"))
    return chosen


@task(task_id="plan_training_window", map_index_template=LABEL, **policy("plan"))
def plan_retraining(trip_type: str, params: dict[str, Any] | None = None) -> XCom:
    from taxi_anomaly.contract import Granularity
    from taxi_anomaly.orchestration import steps

    params = params or {}
    get_current_context()["target_label"] = f"{trip_type} {params.get('granularity')}"  # type: ignore[typeddict-unknown-key]
    try:
        granularity = Granularity(params.get("granularity", "city"))
        window = int(params.get("train_window_months", 3))
        plan = steps.plan_retraining(
            _runtime(_sandbox(params)),
            trip_type,
            granularity,
            window,
            params.get("holdout_month"),
            params.get("detector") or "isolation_forest",
            dict(params.get("detector_params") or {}),
        )
    except (steps.PipelineError, ValueError, TypeError) as err:
        raise _fail(err) from err
    return plan.to_xcom()


@task(task_id="train_candidate", map_index_template=LABEL, max_active_tis_per_dag=1, **policy("spark"))
def train_candidate(planned: XCom, run_id: str | None = None) -> XCom:
    """Train on the window and score the evaluation month (evaluation namespace <namespace>_candidate)."""
    from taxi_anomaly.orchestration import steps

    plan = _retraining(planned)
    runtime = _runtime(plan.sandbox)
    steps.run_spark(steps.candidate_job(runtime, plan, run_id or ""), get_current_context())
    version = steps.trained_version(runtime, plan.trip_type, plan.granularity, run_id or "")
    return plan.with_(candidate=version).to_xcom()


@task(task_id="score_incumbent", map_index_template=LABEL, max_active_tis_per_dag=1, **policy("spark"))
def score_incumbent(planned: XCom, run_id: str | None = None) -> XCom:
    """Score the evaluation month with the promoted model (namespace <namespace>_incumbent)."""
    from taxi_anomaly.orchestration import steps

    plan = _retraining(planned)
    if not plan.incumbent:
        return plan.to_xcom()
    steps.run_spark(steps.incumbent_job(_runtime(plan.sandbox), plan, run_id or ""), get_current_context())
    return plan.with_(incumbent_scored=True).to_xcom()


@task(task_id="evaluate_and_promote", map_index_template=LABEL, **policy("catalog"))
def evaluate_and_promote(
    candidate: XCom,
    incumbent: XCom,
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    from taxi_anomaly.orchestration import steps

    plan = _retraining(candidate).with_(incumbent_scored=_retraining(incumbent).incumbent_scored)
    try:
        tolerance = float((params or {}).get("tolerance", 0.002))
        return steps.evaluate_and_promote(_runtime(plan.sandbox), plan, tolerance, run_id or "")
    except steps.PipelineError as err:
        raise _fail(err) from err


# Tuning ---------------------------------------------------------------------------------------------------------
@task(task_id="tune_detector", max_active_tis_per_dag=1, **policy("spark"))
def tune(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The Spark job in tune mode over the month range, then the best trial and its candidate spec."""
    from taxi_anomaly.contract import Granularity
    from taxi_anomaly.orchestration import steps
    from taxi_anomaly.orchestration.params import check_month_range

    params = params or {}
    runtime = _runtime(_sandbox(params))
    try:
        months = check_month_range(params.get("first_month"), params.get("last_month"))  # type: ignore[arg-type]
        job = steps.tuning_job(
            runtime,
            str(params.get("trip_type")),
            Granularity(params.get("granularity", "city")),
            months,
            params,
            run_id or "",
        )
    except (steps.PipelineError, ValueError) as err:
        raise _fail(err) from err
    steps.run_spark(job, get_current_context())
    try:
        return steps.tuning_report(runtime, job)
    except steps.PipelineError as err:
        raise _fail(err) from err
