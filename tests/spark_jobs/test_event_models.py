"""Per-event models on KDD Cup 99 rows: the compiled score equals sklearn's, the native plan has no Python UDF, the
UDF fallback agrees, explanations, the registry round trip, a detection floor and clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from anomaly_detection.event_models import (
    GRANULARITY,
    EventFamily,
    EventModel,
    evaluate,
    fit_event_model,
    score_events,
)
from anomaly_detection.registry import ModelRegistry, ModelRegistryError
from taxi_anomaly.ingest.settings import shared_data_dir
from taxi_anomaly.kdd import (
    ATTACK_CATEGORIES,
    CATEGORY,
    KDD_COLUMNS,
    LABEL,
    SYMBOLIC,
    normal_training_split,
    read_kdd,
    record_schema,
)

pytestmark = [
    pytest.mark.spark,
    # small forests fitted on 3,000 rows: a few real rows are in every tree's sample and have no out-of-bag score
    pytest.mark.filterwarnings("ignore:Some inputs do not have OOB scores:UserWarning"),
]

KDD = shared_data_dir() / "kddcup99" / "kddcup.data_10_percent.gz"
TOLERANCE = 1e-9
# Small models keep the file fast (compiling and planning the expression is most of a query's time here).
SMALL_PARAMS = {
    EventFamily.ISOLATION_FOREST: {"n_estimators": 10},
    EventFamily.UNSUPERVISED_FOREST: {"n_estimators": 10, "max_depth": 6, "min_samples_leaf": 20},
}


@pytest.fixture(scope="module")
def kdd() -> pd.DataFrame:
    if not KDD.exists():
        pytest.skip(f"the KDD Cup 99 file is not at {KDD}")
    return read_kdd(KDD)


@pytest.fixture(scope="module")
def split(kdd: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """3,000 normal rows to fit on; 4,000 evaluation rows (every attack category, held-out normal rows)."""
    training, evaluation = normal_training_split(kdd, seed=0)
    return training.sample(3_000, random_state=0), evaluation.sample(4_000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module", params=list(EventFamily), ids=[f.value for f in EventFamily])
def model(request: pytest.FixtureRequest, split: tuple[pd.DataFrame, pd.DataFrame]) -> EventModel:
    family = request.param
    return fit_event_model(split[0], family, seed=1, params=SMALL_PARAMS[family])


@pytest.fixture(scope="module")
def events(split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """400 evaluation rows and rows with unseen symbolic values and missing fields, with an id."""
    rows = split[1].head(400).copy()
    edited = rows.head(40).copy()
    edited.loc[edited.index[0:10], "service"] = "no_such_service"
    edited.loc[edited.index[10:20], "flag"] = None
    edited.loc[edited.index[20:30], "src_bytes"] = np.nan
    edited.loc[edited.index[30:40], ["protocol_type", "count", "dst_host_count"]] = [None, np.nan, np.nan]
    frame = pd.concat([rows, edited], ignore_index=True)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


@pytest.fixture(scope="module")
def event_frame(spark, events: pd.DataFrame):
    """The events as JSON messages ({"id", "record"}, missing fields left out) parsed with record_schema()."""
    messages = []
    for row in events.to_dict("records"):
        record = {
            c: row[c] for c in KDD_COLUMNS if not (row[c] is None or (isinstance(row[c], float) and np.isnan(row[c])))
        }
        messages.append((json.dumps({"id": int(row["id"]), "record": record}),))
    schema = f"id long, record {record_schema().simpleString()}"
    parsed = spark.createDataFrame(messages, "value string").select(F.from_json("value", schema).alias("m"))
    return parsed.select("m.id", "m.record.*")


@pytest.fixture(scope="module", autouse=True)
def whole_stage_codegen_off(spark) -> Iterator[None]:
    key = "spark.sql.codegen.wholeStage"
    previous = spark.conf.get(key)
    spark.conf.set(key, "false")
    yield
    spark.conf.set(key, previous)


def scores_by_id(frame) -> pd.DataFrame:
    return frame.toPandas().sort_values("id").reset_index(drop=True)


# --- the data ---------------------------------------------------------------------------------------------------


def test_read_kdd_and_record_schema(kdd):
    assert len(KDD_COLUMNS) == 41 and list(kdd.columns) == [*KDD_COLUMNS, LABEL, CATEGORY]
    assert len(kdd) == 494_021 and kdd[LABEL].value_counts().head(3).to_dict() == {
        "smurf": 280_790,
        "neptune": 107_201,
        "normal": 97_278,
    }
    assert set(kdd[CATEGORY]) == {"normal", "dos", "probe", "r2l", "u2r"}
    assert all(kdd[c].dtype == np.float64 for c in KDD_COLUMNS if c not in SYMBOLIC)
    assert len(ATTACK_CATEGORIES) == 23
    schema = record_schema()
    assert [f.name for f in schema.fields] == list(KDD_COLUMNS) and all(f.nullable for f in schema.fields)
    assert {f.name for f in schema.fields if f.dataType.simpleString() == "string"} == set(SYMBOLIC)


# --- scores -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native_scores(model, event_frame) -> pd.DataFrame:
    return scores_by_id(score_events(event_frame, model).select("id", "anomaly_score", "is_anomaly", "top_features"))


def test_compiled_score_equals_sklearn_with_unseen_values_and_nulls(model, events, native_scores):
    got = native_scores
    expected = model.score_numpy(model.inputs_numpy(events))
    np.testing.assert_allclose(got["anomaly_score"], expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(got["is_anomaly"], expected > model.threshold)
    assert np.isfinite(expected).all()
    unseen = model.inputs_numpy(events.iloc[400:410])[:, KDD_COLUMNS.index("service")]
    assert (unseen == 0.0).all()


def test_udf_path_equals_native_path(model, event_frame, native_scores):
    native = native_scores
    udf = scores_by_id(score_events(event_frame, model, native=False).select("id", "anomaly_score", "top_features"))
    np.testing.assert_allclose(udf["anomaly_score"], native["anomaly_score"], rtol=0, atol=TOLERANCE)
    assert udf["top_features"].map(str).tolist() == native["top_features"].map(str).tolist()


def test_native_plan_has_no_python_udf(model, event_frame, capsys):
    score_events(event_frame, model).select("anomaly_score", "top_features").explain(extended=True)
    plan = capsys.readouterr().out
    assert "CASE WHEN" in plan
    assert "ArrowEvalPython" not in plan and "BatchEvalPython" not in plan
    score_events(event_frame, model, native=False).select("anomaly_score").explain(extended=True)
    assert "ArrowEvalPython" in capsys.readouterr().out  # the check sees a UDF where there is one


def test_top_features_name_the_column_pushed_out(spark, model, split):
    row = split[0].head(1).copy()
    row["dst_bytes"] = 1e9
    frame = spark.createDataFrame(row[list(KDD_COLUMNS)]).select(
        *[F.col(c).cast("string" if c in SYMBOLIC else "double") for c in KDD_COLUMNS]
    )
    top = score_events(frame, model).select("top_features").first()[0]
    assert 1 <= len(top) <= 3 and top[0]["feature"] == "dst_bytes" and top[0]["deviation"] > 1e3
    magnitudes = [abs(t["deviation"]) for t in top]
    assert magnitudes == sorted(magnitudes, reverse=True) and min(magnitudes) >= 1.0


# --- registry -----------------------------------------------------------------------------------------------------


def test_registry_round_trip(spark, model, events, event_frame, tmp_path):
    registry = ModelRegistry(spark, f"file://{tmp_path}")
    version = registry.save(model, model.feature_set, GRANULARITY, {"evaluation": {"f1": 0.5}})
    loaded, meta = registry.load("kddcup99", GRANULARITY, kind=EventModel)
    assert isinstance(loaded, EventModel) and loaded.family is model.family and loaded.threshold == model.threshold
    x = model.inputs_numpy(events)
    np.testing.assert_array_equal(loaded.score_numpy(x), model.score_numpy(x))
    assert meta["version"] == version and meta["granularity"] == "event" and meta["trip_type"] == "kddcup99"
    assert meta["family"] == model.family.value and meta["features"] == list(KDD_COLUMNS)
    assert meta["training"]["rows"] == 3_000 and meta["evaluation"] == {"f1": 0.5}
    with pytest.raises(ModelRegistryError, match="holds a EventModel, not a ModelBundle"):
        registry.load("kddcup99", GRANULARITY)
    pointer = registry.promote("kddcup99", GRANULARITY, version, "test")
    assert pointer["previous"] is None and registry.promoted_version("kddcup99", GRANULARITY) == version
    assert registry.promote("kddcup99", GRANULARITY, version, "again")["previous"] == version


def test_training_entry_point_saves_evaluates_and_promotes(spark, kdd, tmp_path):
    from run_event_training import main, parse_args

    source = tmp_path / "kdd-sample.csv.gz"
    sample = pd.concat([kdd[kdd[LABEL] == "normal"].head(2_000), kdd[kdd[LABEL] != "normal"].head(500)])
    sample.assign(**{LABEL: sample[LABEL] + "."}).drop(columns=[CATEGORY]).to_csv(source, header=False, index=False)
    models = f"file://{tmp_path}/models"
    argv = ["--feature-set", "kddcup99", "--family", "isolation_forest", "--source", str(source)]
    argv += ["--models-uri", models, "--seed", "3", "--params", '{"n_estimators": 5}', "--promote"]
    summary = main(spark, parse_args(argv))
    registry = ModelRegistry(spark, models)
    assert registry.promoted_version("kddcup99", "event") == summary["version"]
    meta = registry.metadata("kddcup99", "event", summary["version"])
    assert meta["training"]["rows"] == 1_000 and meta["training"]["params"]["n_estimators"] == 5
    assert meta["training"]["evaluation"]["counts"] == summary["evaluation"]["counts"]
    assert summary["evaluation"]["counts"]["rows"] == 1_500 and meta["data"]["source_rows"] == 2_500
    with pytest.raises(SystemExit):
        parse_args([*argv[:-1], "--train-share", "1.5"])


# --- detection ----------------------------------------------------------------------------------------------------

# The default models fitted on 10,000 normal rows (seeds 1-3), on the 4,000 evaluation rows at the training q99:
# isolation forest precision 0.992-0.998, recall 0.285-0.979; unsupervised forest precision 0.998-0.999, recall
# 0.727-0.919. Recall swings because whether the smurf rows (most attacks) are flagged flips with the seed
# (bench/README "Per-event detection on KDD Cup 99"). The floors sit a little below the worst seed; seed 1 is tested.
FLOORS = {EventFamily.ISOLATION_FOREST: (0.98, 0.25), EventFamily.UNSUPERVISED_FOREST: (0.98, 0.65)}


@pytest.mark.parametrize("family", list(EventFamily), ids=[f.value for f in EventFamily])
def test_detection_floor(family, kdd, split):
    training, _ = normal_training_split(kdd, seed=0)
    evaluation = split[1]
    detector = fit_event_model(training.sample(10_000, random_state=0), family, seed=1)
    scores = detector.score_numpy(detector.inputs_numpy(evaluation))
    result = evaluate(evaluation[LABEL], evaluation[CATEGORY], scores, detector.threshold)
    precision_floor, recall_floor = FLOORS[family]
    assert result["precision"] >= precision_floor and result["recall"] >= recall_floor, result
    assert result["counts"]["rows"] == 4_000 and set(result["recall_by_category"]) <= {"dos", "probe", "r2l", "u2r"}


# --- errors -------------------------------------------------------------------------------------------------------


def test_bad_input_is_refused_with_the_parameter_named(split, model, spark, tmp_path):
    training = split[0]
    with pytest.raises(ValueError, match="family must be one of isolation_forest, unsupervised_forest"):
        fit_event_model(training, "random_cut_forest", seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="records: missing column.*src_bytes"):
        fit_event_model(training.drop(columns=["src_bytes"]), EventFamily.ISOLATION_FOREST, seed=0)
    with pytest.raises(ValueError, match="params: n_trees not settable"):
        fit_event_model(training, EventFamily.ISOLATION_FOREST, seed=0, params={"n_trees": 5})
    with pytest.raises(ValueError, match="threshold_quantile"):
        fit_event_model(training, EventFamily.ISOLATION_FOREST, seed=0, threshold_quantile=99)
    with pytest.raises(ValueError, match="records: missing column.*service"):
        model.input_columns(spark.range(1).withColumnRenamed("id", "duration"))
    with pytest.raises(ValueError, match="lengths differ"):
        evaluate(["normal"], ["normal", "dos"], [0.1], 0.5)
    bad = tmp_path / "bad.csv"
    bad.write_text("0,tcp,http,SF,not-a-number\n")
    with pytest.raises(ValueError, match="bad.csv: not a KDD Cup 99 file"):
        read_kdd(bad)
