"""plugins/taxi_anomaly/orchestration without services: job arguments for both backends, backend choice, months,
promotion, alerts, asset events, the integrity/validation verdicts."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from taxi_anomaly import layout
from taxi_anomaly.contract import AnomalyJob, ContractError
from taxi_anomaly.orchestration import months, promotion, steps
from taxi_anomaly.orchestration.locations import Locations
from taxi_anomaly.orchestration.params import Sandbox
from taxi_anomaly.orchestration.payloads import MonthRun, Retraining

S3_EXTRA = {
    "endpoint_url": "http://127.0.0.1:9000",
    "region_name": "us-east-1",
    "raw_bucket": "tap-raw",
    "warehouse_bucket": "tap-warehouse",
    "models_bucket": "tap-models",
    "reports_bucket": "tap-reports",
}
SPARK_LOCAL = {
    "conn_type": "spark",
    "host": "local[*]",
    "extra": {"spark-binary": "spark-submit", "deploy-mode": "client"},
}


@pytest.fixture
def airflow_connections(monkeypatch, airflow_home):
    """Connections and Variables as the deployment provides them: AIRFLOW_CONN_* / AIRFLOW_VAR_* variables."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TAP_S3",
        json.dumps({"conn_type": "generic", "host": "127.0.0.1", "port": 9000, "schema": "http", "extra": S3_EXTRA}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_TAP_METASTORE", json.dumps({"conn_type": "generic", "host": "hms", "port": 9083}))
    monkeypatch.setenv("AIRFLOW_CONN_TAP_SPARK_LOCAL", json.dumps(SPARK_LOCAL))
    monkeypatch.setenv("AIRFLOW_VAR_TAP_SPARK_IMAGE", "registry.example.com/spark:test")
    monkeypatch.delenv("AIRFLOW_VAR_TAP_PLATFORM", raising=False)


def jobs() -> list[AnomalyJob]:
    where = Locations(prefix="t_demo/")
    return [
        where.job(
            trip_type="green",
            granularity="city",
            mode="score",
            score_months=["2024-01"],
            namespace="taxi",
            run_id="manual__2026-01-05T06:00:00+00:00",
            model_version="v20260105T060000-1a2b3c",
        ),
        where.job(
            trip_type="fhvhv",
            granularity="borough",
            mode="train-and-score",
            score_months=["2025-03"],
            train_months=["2025-02", "2025-01", "2025-02"],
            namespace="t_x_candidate",
            evaluations_namespace="t_x",
            run_id="scheduled__2026-01-05T03:00:00+00:00",
            detector="kmeans",
            detector_params={"k": 4, "threshold_rule": "tail", "threshold_value": 1.5},
        ),
    ]


@pytest.mark.parametrize("job", jobs(), ids=lambda j: str(j.mode))
def test_job_arguments_parse_into_the_same_job(job):
    """The Spark job's own argument parser reads back exactly the job described (the contract's round trip)."""
    parsed = AnomalyJob.from_argv(job.to_argv())
    assert parsed == job
    assert parsed.train_months == tuple(sorted(set(parsed.train_months)))


def test_the_contract_refuses_what_cannot_run_naming_the_parameter():
    where = Locations()
    common = {"trip_type": "green", "namespace": "taxi", "run_id": "r"}
    with pytest.raises(ContractError, match="mode score needs score_months"):
        where.job(granularity="city", mode="score", score_months=[], **common)
    with pytest.raises(ContractError, match="resolved"):
        where.job(granularity="city", mode="score", score_months=["2024-01"], model_version="promoted", **common)
    with pytest.raises(ContractError, match="granularity must be one of city, borough, zone, got 'street'"):
        where.job(granularity="street", mode="train", train_months=["2024-01"], **common)
    with pytest.raises(ContractError, match="namespace must be a lower-case identifier"):
        where.job(granularity="city", mode="train", train_months=["2024-01"], **{**common, "namespace": 'x"; DROP'})
    with pytest.raises(ContractError, match="train_months must be a month as YYYY-MM"):
        where.job(granularity="city", mode="train", train_months=["2024-13"], **common)
    with pytest.raises(ContractError, match="overlap"):
        where.job(
            granularity="city", mode="train-and-score", train_months=["2024-01"], score_months=["2024-01"], **common
        )
    borough = where.job(granularity="borough", mode="score", score_months=["2024-01"], **common)
    assert borough.zones_uri == "s3a://tap-raw/tlc/misc/taxi_zone_lookup.csv"
    assert borough.labels_uri == "s3a://tap-raw/labels"


def test_locations_follow_the_connection_and_the_prefix():
    conn = SimpleNamespace(extra_dejson={**S3_EXTRA, "raw_bucket": "raw-b", "models_bucket": "models-b"})
    where = Locations.from_connection(conn, "t_1/")
    assert where.raw_uri == "s3a://raw-b/t_1/tlc"
    assert where.models_uri == "s3a://models-b/t_1/registry"
    assert where.zones_uri == "s3a://raw-b/t_1/tlc/misc/taxi_zone_lookup.csv"
    assert where.models_key("green", "city", "promoted.json") == "t_1/registry/green/city/promoted.json"
    with pytest.raises(ValueError, match="must end with '/'"):
        Locations(prefix="t_1")
    in_hdfs = SimpleNamespace(extra_dejson={**S3_EXTRA, "raw_root": "hdfs://127.0.0.1:8020/tap-raw"})
    where = Locations.from_connection(in_hdfs, "t_1/")
    assert where.raw_uri == "hdfs://127.0.0.1:8020/tap-raw/t_1/tlc"
    assert where.zones_uri == "hdfs://127.0.0.1:8020/tap-raw/t_1/tlc/misc/taxi_zone_lookup.csv"
    assert where.models_uri == "s3a://tap-models/t_1/registry"  # models stay in S3


@pytest.mark.parametrize("job", jobs(), ids=lambda j: str(j.mode))
def test_kubernetes_and_local_backends_run_the_same_arguments(airflow_connections, job):
    """The SparkApplication rendered from include/spark/sparkapplication.yaml and the local spark-submit command
    carry the same argument list: the contract's."""
    from airflow.sdk.execution_time.context import ConnectionAccessor, VariableAccessor

    from taxi_anomaly.orchestration.backends import ENTRY_POINT, KubernetesSparkApplication, LocalSparkSubmit

    context = {
        "run_id": job.run_id,
        "dag": SimpleNamespace(dag_id="tap_backfill", template_searchpath=None),
        "conn": ConnectionAccessor(),
        "var": {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
    }
    operator, rendered = KubernetesSparkApplication().render(job, context)
    app = operator.template_body["spark"]
    assert app["spec"]["arguments"] == job.to_argv()
    assert AnomalyJob.from_argv(app["spec"]["arguments"]) == job
    assert app["spec"]["mainApplicationFile"].endswith("spark_jobs/run_anomaly_detection.py")
    assert app["metadata"]["labels"]["taxi-anomaly/trip-type"] == job.trip_type
    assert rendered["params"] == job.template_params()

    command = LocalSparkSubmit().command(job)
    assert command[:3] == ["spark-submit", "--master", "local[*]"]
    entry = command.index(str(ENTRY_POINT))
    assert command[entry + 1 :] == job.to_argv()


def test_backend_is_chosen_by_one_setting_at_run_time(airflow_connections, monkeypatch):
    from taxi_anomaly.orchestration.backends import KubernetesSparkApplication, LocalSparkSubmit, choose_backend

    assert isinstance(choose_backend(), LocalSparkSubmit)  # nothing set: local
    monkeypatch.setenv("AIRFLOW_VAR_TAP_PLATFORM", "kubernetes")
    monkeypatch.setenv("AIRFLOW_VAR_TAP_K8S_NAMESPACE", "tap-staging")
    chosen = choose_backend()
    assert isinstance(chosen, KubernetesSparkApplication) and chosen.namespace == "tap-staging"
    monkeypatch.setenv("AIRFLOW_VAR_TAP_PLATFORM", "yarn")
    with pytest.raises(ValueError, match="tap_platform must be 'local' or 'kubernetes', got 'yarn'"):
        choose_backend()


def test_daily_look_back_months():
    assert months.candidate_months(date(2026, 2, 14), 4) == ["2025-10", "2025-11", "2025-12", "2026-01"]
    assert months.candidate_months(date(2026, 1, 1), 1) == ["2025-12"]
    assert months.shift_month("2024-01", -13) == "2022-12"


def test_landed_months_and_training_window():
    keys = [
        "p/tlc/green/year=2024/month=01/_manifest.json",
        "p/tlc/green/year=2024/month=01/green_tripdata_2024-01.parquet",
        "p/tlc/green/year=2023/month=11/_manifest.json",
        "p/tlc/green/year=2023/month=12/_validation.json",  # not landed: no manifest
        "p/tlc/yellow/year=2024/month=02/_manifest.json",
        "p/tlc/green/year=2023/month=08/_manifest.json",
    ]
    landed = layout.landed_months(keys, "green")
    assert landed == ["2023-08", "2023-11", "2024-01"]
    assert months.training_window(landed, 3) == {"train_months": ["2023-11"], "holdout_month": "2024-01"}
    assert months.training_window(landed, 6)["train_months"] == ["2023-08", "2023-11"]
    assert months.training_window(landed, 6, "2023-11") == {"train_months": ["2023-08"], "holdout_month": "2023-11"}
    with pytest.raises(ValueError, match="has not landed"):
        months.training_window(landed, 3, "2023-12")
    with pytest.raises(ValueError, match="backfill the history first"):
        months.training_window(["2024-01"], 3)


def evaluation(version, anomalies, windows=1488, expected=0.005, month="2024-01", **labels):
    return promotion.Evaluation(version, month, windows, anomalies, expected, "isolation_forest", "if", **labels)


def test_promotion_on_calibration_where_the_month_has_no_labels():
    first = promotion.decide(evaluation("v2", 9), None, 0.002)
    assert first.promote and first.reason == "no promoted model yet"
    better = promotion.decide(evaluation("v2", 8), evaluation("v1", 40), 0.002)  # 0.5 % vs 2.7 % flagged
    assert better.promote and better.reason.startswith("not worse: calibration")
    tie = promotion.decide(evaluation("v2", 10), evaluation("v1", 8), 0.002)  # within the tolerance
    assert tie.promote
    worse = promotion.decide(evaluation("v2", 60), evaluation("v1", 7), 0.002)  # alert storm
    assert not worse.promote and worse.reason.startswith("worse")
    blind = promotion.decide(evaluation("v2", 0, windows=0), evaluation("v1", 7), 0.002)
    assert not blind.promote
    with pytest.raises(ValueError, match="different months"):
        promotion.decide(evaluation("v2", 8), evaluation("v1", 8, month="2023-12"), 0.002)
    pointer = promotion.pointer_document(better, {"version": "v1"}, "run-1")
    assert (pointer["version"], pointer["previous"], pointer["run_id"]) == ("v2", "v1", "run-1")
    assert pointer["evaluation"]["candidate"]["calibration_error"] == pytest.approx(abs(8 / 1488 - 0.005), abs=1e-6)


def test_promotion_on_labels_where_both_have_them():
    def labelled(version, f1, found, anomalies=8):
        return evaluation(version, anomalies, labelled=True, bucket_f1=f1, episodes=5, episodes_found=found)

    # A challenger that flags more than its expected share but finds every episode wins on labels.
    storm_but_right = promotion.decide(labelled("v2", 0.97, 5, anomalies=60), labelled("v1", 0.90, 5), 0.002)
    assert storm_but_right.promote and storm_but_right.reason.startswith("not worse: labelled")
    missed = promotion.decide(labelled("v2", 0.99, 4), labelled("v1", 0.90, 5), 0.002)
    assert not missed.promote and "fewer episodes" in missed.reason
    lower = promotion.decide(labelled("v2", 0.90, 5), labelled("v1", 0.95, 5), 0.002)
    assert not lower.promote
    row = {c: getattr(labelled("v3", 0.9, 5), c, None) for c in promotion.EVALUATION_COLUMNS}
    row["model_version"] = "v3"
    assert promotion.Evaluation.from_row(row).bucket_f1 == 0.9


def month_run(status, reason=None, **extra):
    return MonthRun(
        "green",
        "2024-01",
        Sandbox(),
        status=status,
        reason=reason,
        message=f"green_tripdata_2024-01.parquet: {status} {reason or ''}",
        file_name="green_tripdata_2024-01.parquet",
        **extra,
    )


def test_integrity_and_validation_steps_fail_on_their_own_reasons():
    landed = month_run("landed", rows=56551, official_rows=56551)
    assert steps.integrity_result(landed)["official_rows"] == 56551
    assert steps.validation_result(landed.with_(validation={"suite": "green", "passed": True}))["suite"] == "green"

    truncated = month_run("quarantined", "truncated_parquet")
    with pytest.raises(steps.PipelineError, match=r"integrity check failed \(truncated_parquet\)"):
        steps.integrity_result(truncated)

    invalid = month_run("quarantined", "validation_failed", quarantine={"failed_expectations": ["pickup in month"]})
    assert steps.integrity_result(invalid)["status"] == "quarantined"  # not an integrity problem
    with pytest.raises(steps.PipelineError, match=r"validation failed \(validation_failed\).*pickup in month"):
        steps.validation_result(invalid)


def test_payloads_travel_as_json_and_come_back_typed_and_checked():
    run = month_run("landed", rows=5, warnings=("w",)).with_(granularity="zone", tables={"a": {"rows": 1}})
    wire = json.loads(json.dumps(run.to_xcom()))
    assert MonthRun.from_xcom(wire) == run and wire["granularity"] == "zone"
    with pytest.raises(ValueError, match="namespace must be a lower-case identifier"):
        MonthRun.from_xcom({**wire, "sandbox": {"namespace": "x; DROP TABLE y"}})
    with pytest.raises(ValueError, match="month must be a month as YYYY-MM"):
        MonthRun.from_xcom({**wire, "month": "2024-1"})
    plan = Retraining("fhvhv", "city", Sandbox(namespace="t_x"), ("2025-02", "2025-01"), "2025-03", detector="kmeans")
    assert Retraining.from_xcom(json.loads(json.dumps(plan.to_xcom()))) == plan
    assert plan.train_months == ("2025-01", "2025-02") and plan.label == "fhvhv city"


def test_a_run_scores_each_trip_types_months_in_one_job_per_model_version():
    """One submission per trip type (and model version): months in order, at most MONTHS_PER_JOB a job."""
    sandbox = Sandbox(namespace="t_x", storage_prefix="t_x/")
    v1, v2 = "v20260105T060000-1a2b3c", "v20260106T060000-4d5e6f"
    many = [f"2024-{m:02d}" for m in range(12, 0, -1)] + ["2025-01", "2025-02"]
    runs = [MonthRun("fhvhv", m, sandbox, model_version=v1) for m in many]
    runs += [
        MonthRun("green", "2024-02", sandbox, model_version=v1),
        MonthRun("green", "2024-01", sandbox, model_version=v2),
    ]
    batches = steps.scoring_batches(runs)
    assert [[r.label for r in b] for b in batches] == [
        [f"fhvhv 2024-{m:02d}" for m in range(1, 13)],
        ["fhvhv 2025-01", "fhvhv 2025-02"],
        ["green 2024-01"],
        ["green 2024-02"],
    ]
    assert steps.MONTHS_PER_JOB == 12
    runtime = SimpleNamespace(locations=Locations(prefix="t_x/"), namespace="t_x")
    job = steps.score_job(runtime, batches[0], "manual__1")
    assert job.score_months == tuple(f"2024-{m:02d}" for m in range(1, 13))
    assert (job.trip_type, job.model_version, job.run_id, job.namespace) == ("fhvhv", v1, "manual__1", "t_x")
    assert AnomalyJob.from_argv(job.to_argv()) == job
    with pytest.raises(steps.PipelineError, match="one job scores one trip type, granularity and model version"):
        steps.score_job(runtime, batches[2] + batches[3], "manual__1")
    with pytest.raises(steps.PipelineError, match="green 2024-01: no model version"):
        steps.score_job(runtime, (MonthRun("green", "2024-01", sandbox),), "manual__1")


def test_a_task_after_a_mapped_group_reads_none_one_or_several_payloads():
    """Airflow hands a task after a mapped task group None (no instance pushed), the one XCom itself (one month:
    a single-month backfill failed on it, iterating over the dict's keys) or a list of them."""
    one, two = MonthRun("green", "2024-01"), MonthRun("green", "2024-02")
    assert MonthRun.all_from_xcom(None) == []
    assert MonthRun.all_from_xcom(json.loads(json.dumps(one.to_xcom()))) == [one]
    assert MonthRun.all_from_xcom([one.to_xcom(), None, two.to_xcom()]) == [one, two]


def test_expected_windows_of_a_city_month():
    assert steps.expected_windows("city", "2024-02") == 29 * 48
    assert steps.expected_windows("city", "2025-03") == 31 * 48 - 2  # 2025-03-09: 02:00-03:00 does not exist
    assert steps.expected_windows("city", "2025-11") == 30 * 48  # the repeated hour is one window (exposure 2)
    assert steps.expected_windows("borough", "2024-02") is None


def test_asset_events_become_scoring_targets_checked_like_the_form():
    from taxi_anomaly.orchestration.assets import RAW_ASSETS, targets_from_events

    events = {
        RAW_ASSETS["green"]: [
            SimpleNamespace(extra={"months": ["2024-01"], "namespace": "taxi", "storage_prefix": ""}),
            SimpleNamespace(extra={"months": ["2024-02", "2024-01"], "namespace": "taxi", "storage_prefix": ""}),
        ],
        RAW_ASSETS["fhvhv"]: [
            SimpleNamespace(extra={"months": ["2025-04"], "namespace": "t_x", "storage_prefix": "p/"})
        ],
    }
    found = targets_from_events(events)
    assert [(t.trip_type, t.month, t.sandbox.namespace) for t in found] == [
        ("fhvhv", "2025-04", "t_x"),
        ("green", "2024-01", "taxi"),
        ("green", "2024-02", "taxi"),
    ]
    assert targets_from_events({}) == []
    for extra, message in (
        ({"months": ["2024-01"], "namespace": 'rel_inj"; DROP TABLE x; --'}, "namespace must be"),
        ({"months": ["2024-01"], "storage_prefix": "../other/"}, "storage_prefix must be"),
        ({"months": ["2024-01"], "tlc_base_url": "file:///etc/passwd"}, "tlc_base_url must be"),
        ({"months": ["2024-1"]}, "month must be a month"),
        ({"months": "2024-01"}, "months must be a list"),
    ):
        hostile = {RAW_ASSETS["green"]: [SimpleNamespace(id=7, extra=extra)]}
        with pytest.raises(ValueError, match=f"asset event 7 of tap_raw_tlc_green: .*{message}"):
            targets_from_events(hostile)


def test_table_names_in_sql_are_checked_and_quoted():
    assert layout.sql_table("taxi", "anomaly_scores") == '"iceberg"."taxi"."anomaly_scores"'
    with pytest.raises(ValueError, match="namespace must be"):
        layout.sql_table('taxi"; DROP TABLE x; --', "anomaly_scores")


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_alert_is_logged_and_posted_to_the_webhook(caplog):
    from taxi_anomaly.orchestration.alerts import Alert, deliver

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alert = Alert("tap_backfill", "month.gx_validation", "manual__1", 0, 1, "PipelineError: bad", "green 2024-01")
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with caplog.at_level("ERROR", logger="taxi_anomaly.alerts"):
            channels = deliver(alert, url, None, "tap_smtp")
        assert channels == ["log", "webhook"]
        assert "FAILED tap_backfill.month.gx_validation [green 2024-01]" in caplog.text
        assert _Hook.received[-1]["alert"]["error"] == "PipelineError: bad"
        assert "green 2024-01" in _Hook.received[-1]["text"]
        # A dead webhook is logged, and the alert still reaches the log.
        assert deliver(alert, "http://127.0.0.1:9/nothing", None, "tap_smtp") == ["log"]
    finally:
        server.shutdown()


def test_alert_reads_the_task_context():
    from taxi_anomaly.orchestration.alerts import alert_from_context

    ti = SimpleNamespace(
        dag_id="tap_backfill", task_id="month.download", map_index=2, try_number=4, rendered_map_index="fhvhv 2025-04"
    )
    alert = alert_from_context({"ti": ti, "run_id": "manual__x", "exception": TimeoutError("CDN stalled")})
    assert alert.title == "[taxi-anomaly] FAILED tap_backfill.month.download [fhvhv 2025-04] (try 4)"
    assert alert.error == "TimeoutError: CDN stalled" and alert.map_index == 2


def test_a_run_without_a_published_month_is_refused_with_its_range_and_source():
    from taxi_anomaly.orchestration.outcome import nothing_published_message

    params = {"trip_types": ["green"], "first_month": "2030-01", "last_month": "2030-02", "tlc_base_url": None}
    message = nothing_published_message(params, {"skipped": 2})
    assert message == (
        "no month of green 2030-01..2030-02 was published at the TLC's CDN (2 skipped): nothing landed. "
        "Check the range, the trip types and the source."
    )
    assert nothing_published_message(params, {"skipped": 5, "success": 1}) is None
    assert "no download task ran" in nothing_published_message(params, {})


def test_a_second_run_in_the_due_slot_is_triggered_without_a_logical_date():
    """trigger_in_due_slot (make demo's retraining, bench_backfill's set-up): when an earlier run already holds the
    due slot's logical date, asking for it again was refused (HTTP 409, unique constraint); the run is then a plain
    manual one. Airflow's answers are canned here; the real API takes this path in bench_backfill --retrain."""
    from taxi_anomaly.orchestration.airflow_api import AirflowClient

    class Canned(AirflowClient):
        holders: list[dict[str, str]] = []
        sent: list[dict[str, object]] = []

        def _send(self, method, path, body=None, auth=True):
            if method == "GET" and path.endswith("/dagRuns?limit=100&order_by=-run_after"):
                return {"dag_runs": self.holders}
            if method == "GET":
                return {"next_dagrun_logical_date": "2026-11-30T03:00:00Z"}
            self.sent.append(body)
            return {"dag_run_id": body["dag_run_id"], "logical_date": body.get("logical_date")}

    client = Canned("http://127.0.0.1:1", "u", "p")
    assert client.trigger_in_due_slot("tap_weekly_retrain", {}, run_id="r1")["logical_date"] == "2026-11-30T03:00:00Z"
    Canned.holders = [{"dag_run_id": "r1", "logical_date": "2026-11-30T03:00:00+00:00"}]
    assert client.trigger_in_due_slot("tap_weekly_retrain", {}, run_id="r2")["logical_date"] is None
