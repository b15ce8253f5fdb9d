"""Trigger parameters: the JSON schemas the trigger form enforces reject wrong values with a readable message.

The trigger form and `airflow dags trigger` validate the run's conf with the DAG's ParamsDict (Param.resolve:
jsonschema); these tests do the same with the DAGs as parsed.
"""

from __future__ import annotations

import copy

import pytest

PIPELINE_DAGS = ("tap_backfill", "tap_daily_ingest", "tap_score_landed", "tap_weekly_retrain")


def validated(dag, **conf):
    from airflow.sdk.definitions.param import ParamsDict

    params = copy.deepcopy(dag.params)
    assert isinstance(params, ParamsDict)
    for key, value in conf.items():
        params[key] = value  # validates against the Param's schema, as the trigger form does
    return params.validate()


def rejection(dag, **conf) -> str:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError) as caught:
        validated(dag, **conf)
    return str(caught.value)


@pytest.mark.parametrize("dag_id", PIPELINE_DAGS)
def test_defaults_are_valid_and_every_param_is_described(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert validated(dag)  # the form opens with values that pass
    for name, param in dag.params.items():
        param = dag.params.get_param(name)
        assert param.description and len(param.description) > 20, f"{dag_id}.{name} lacks a description"
        assert param.schema.get("title"), f"{dag_id}.{name} lacks a title"
        assert param.schema.get("type"), f"{dag_id}.{name} has no type"


def test_backfill_accepts_a_good_request(dagbag):
    values = validated(
        dagbag.dags["tap_backfill"],
        trip_types=["yellow", "fhvhv"],
        first_month="2023-11",
        last_month="2024-02",
        granularity="borough",
        model_version="v20260105T060000-1a2b3c",
        force_download=True,
    )
    assert values["trip_types"] == ["yellow", "fhvhv"] and values["granularity"] == "borough"


@pytest.mark.parametrize(
    ("conf", "names"),
    [
        ({"trip_types": ["taxi"]}, ["trip_types", "'taxi' is not one of"]),
        ({"trip_types": []}, ["trip_types"]),
        ({"trip_types": ["green", "green"]}, ["trip_types", "non-unique"]),
        ({"first_month": "2024-13"}, ["first_month", "does not match"]),
        ({"last_month": "24-01"}, ["last_month"]),
        ({"first_month": "2024/01"}, ["first_month"]),
        ({"granularity": "street"}, ["granularity", "'street' is not one of"]),
        ({"model_version": "best"}, ["model_version"]),
        ({"force_download": "yes"}, ["force_download", "is not of type 'boolean'"]),
        ({"namespace": "Taxi-Prod"}, ["namespace"]),
        ({"storage_prefix": "no-slash"}, ["storage_prefix"]),
        ({"tlc_base_url": "ftp://mirror"}, ["tlc_base_url"]),
    ],
)
def test_backfill_rejects_bad_values_naming_the_param(dagbag, conf, names):
    message = rejection(dagbag.dags["tap_backfill"], **conf)
    for expected in names:
        assert expected in message, message


@pytest.mark.parametrize(
    ("conf", "names"),
    [
        ({"detector": "magic"}, ["detector", "is not one of"]),
        ({"detector_params": [1]}, ["detector_params", "is not of type 'object'"]),
        ({"train_window_months": 0}, ["train_window_months"]),
        ({"holdout_month": "2024-1"}, ["holdout_month"]),
        ({"tolerance": -0.1}, ["tolerance"]),
    ],
)
def test_retrain_rejects_bad_model_options(dagbag, conf, names):
    message = rejection(dagbag.dags["tap_weekly_retrain"], **conf)
    for expected in names:
        assert expected in message, message


def test_retrain_holdout_month_may_be_empty(dagbag):
    assert validated(dagbag.dags["tap_weekly_retrain"], holdout_month=None)["holdout_month"] is None
    assert validated(dagbag.dags["tap_weekly_retrain"], holdout_month="2024-03")["holdout_month"] == "2024-03"


def test_daily_lookback_is_bounded(dagbag):
    assert "lookback_months" in rejection(dagbag.dags["tap_daily_ingest"], lookback_months=0)
    assert "lookback_months" in rejection(dagbag.dags["tap_daily_ingest"], lookback_months=60)


def test_range_checks_the_schema_cannot_express_fail_readably():
    """A range that ends before it starts or is too long: rejected by the first task, naming the params."""
    from taxi_anomaly.orchestration.months import backfill_runs
    from taxi_anomaly.orchestration.params import Sandbox

    sandbox = Sandbox()
    with pytest.raises(ValueError, match=r"last_month \(2024-01\) is before first_month \(2024-03\)"):
        backfill_runs(["green"], "2024-03", "2024-01", sandbox)
    with pytest.raises(ValueError, match="at most 36 per run"):
        backfill_runs(["green"], "2019-01", "2024-01", sandbox)
    with pytest.raises(ValueError, match="trip_types is empty"):
        backfill_runs([], "2024-01", "2024-01", sandbox)
    with pytest.raises(ValueError, match="trip_type must be one of"):
        backfill_runs(["taxi"], "2024-01", "2024-01", sandbox)
    assert [t.label for t in backfill_runs(["green", "fhvhv"], "2023-12", "2024-01", sandbox)] == [
        "green 2023-12",
        "green 2024-01",
        "fhvhv 2023-12",
        "fhvhv 2024-01",
    ]


def test_detector_overrides_are_checked_by_the_family_before_spark(tmp_path):
    """The form checks the detector's name and that overrides are an object; the family's bounds are checked by
    the planning step (they differ per family), naming the parameter."""
    from taxi_anomaly.detectors import SpecError, resolve_spec

    with pytest.raises(SpecError, match="n_estimators must be between 10 and 2000"):
        resolve_spec("isolation_forest", "city", {"n_estimators": 5})


def test_params_survive_serialization_with_their_schema(dagbag):
    """What the scheduler stores (and the form is built from) keeps the enums, patterns and bounds."""
    from airflow.serialization.serialized_objects import DagSerialization

    from taxi_anomaly.detectors import spec_names

    dag = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["tap_weekly_retrain"]))
    assert dag.params.get_param("detector").schema["enum"] == spec_names()
    assert dag.params.get_param("detector_params").schema["type"] == "object"
    assert dag.params.get_param("trip_types").schema["items"]["enum"] == ["yellow", "green", "fhv", "fhvhv"]
    assert dag.params.get_param("namespace").schema["pattern"] == "^[a-z_][a-z0-9_]{0,62}$"
