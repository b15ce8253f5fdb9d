"""Every detector family on a local Spark: fit, flag an incident, explain it natively exactly as the numpy
reference does, and survive the registry (pickle + artifacts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomaly_detection.features import DEVIATION_FEATURES, MODEL_FEATURES
from anomaly_detection.model import ModelBundle, fit_detector, score_windows
from anomaly_detection.registry import ModelRegistry, ModelRegistryError
from taxi_anomaly.detectors import resolve_spec, spec_names
from taxi_anomaly.detectors.base import NO_SIGNAL, explain, shrink
from taxi_anomaly.detectors.isolation_forest import tree_sample_size

pytestmark = pytest.mark.spark


def normal_windows(n: int, seed: int = 0) -> pd.DataFrame:
    """Heavy-tailed noise on the deviation features, with z_max_abs derived as the feature pipeline does."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_t(5, size=(n, len(DEVIATION_FEATURES))), columns=list(DEVIATION_FEATURES))
    return with_max_abs(frame)


def with_max_abs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(z_max_abs=frame[list(DEVIATION_FEATURES)].abs().max(axis=1))[list(MODEL_FEATURES)]


def history_with_incidents(n: int = 3000, incidents: int = 60) -> pd.DataFrame:
    """Ordinary windows plus incidents of the kinds the history has: one signal 10-40 sd off."""
    rng = np.random.default_rng(4)
    history = normal_windows(n)
    odd = history.sample(incidents, random_state=1).copy()
    for row, feature in zip(odd.index, rng.choice(list(DEVIATION_FEATURES), size=incidents), strict=True):
        odd.loc[row, feature] = rng.choice([-1, 1]) * rng.uniform(10, 40)
    return with_max_abs(pd.concat([history, odd], ignore_index=True))


@pytest.fixture(scope="module")
def training(spark):
    frame = spark.createDataFrame(history_with_incidents()).cache()
    yield frame
    frame.unpersist()


def probe_rows() -> pd.DataFrame:
    """Quiet windows, moderate scatter inside the dead zone, and three incidents."""
    quiet = pd.DataFrame(np.zeros((4, len(DEVIATION_FEATURES))), columns=list(DEVIATION_FEATURES))
    scatter = pd.DataFrame([[4.5, -4.5, 4.5, -4.5, 0.0]], columns=list(DEVIATION_FEATURES))
    drop = quiet.iloc[:1].assign(z_log_rate=-15.2)
    surge = quiet.iloc[:1].assign(z_log_fare_per_mile=22.0, z_log_speed=-6.5, z_pay_share=2.0)
    shift = quiet.iloc[:1].assign(z_log_distance=-30.0)
    rows = with_max_abs(pd.concat([quiet, scatter, drop, surge, shift], ignore_index=True))
    return rows.assign(key=[f"k{i}" for i in range(len(rows))])


@pytest.mark.parametrize("name", spec_names())
def test_each_family_flags_the_incidents_and_explains_them_natively(spark, training, name):
    spec = resolve_spec(name, "city", {"threshold_rule": "contamination", "threshold_value": 0.02})
    detector = fit_detector(training, spec, MODEL_FEATURES)
    assert detector.training_rows == 3060 and np.isfinite(detector.threshold)
    rows = probe_rows()
    scored = score_windows(spark.createDataFrame(rows), detector).toPandas().set_index("key").loc[rows["key"]]
    flagged = scored["is_anomaly"].to_numpy()
    assert flagged[5:].all(), f"{name}: incidents scored {scored['anomaly_score'].tolist()[5:]}"
    assert not flagged[:5].any(), f"{name}: quiet or in-dead-zone windows flagged"
    assert scored.loc["k5", "explanation"] == "trip count below usual (-15.2 sd)"
    assert scored.loc["k6", "explanation"] == "fare per mile above usual (+22.0 sd); speed below usual (-6.5 sd)"
    assert scored["explanation"][~flagged].isna().all()
    # The native explanations and top features are the numpy reference's, row by row.
    deviations = rows[list(detector.features)].to_numpy()
    order, sentences = explain(deviations, flagged, detector.features, detector.explanation_limit())
    assert [list(t) for t in scored["top_features"]] == [[detector.features[i] for i in r] for r in order]
    assert scored["explanation"].where(flagged, None).tolist() == sentences
    try:
        on_driver = detector.score_pandas(rows)
    except NotImplementedError:
        return
    np.testing.assert_allclose(scored["anomaly_score"].to_numpy(), on_driver, rtol=0, atol=1e-12)


def test_the_driver_scores_the_windows_outside_the_dead_zone_as_spark_does(spark, training):
    detector = fit_detector(training, resolve_spec("isolation_forest", "city"), MODEL_FEATURES)
    rows = pd.concat([probe_rows(), with_max_abs(normal_windows(300, seed=7)).assign(key="n")], ignore_index=True)
    rows = rows.assign(granularity="city", bucket_start=pd.date_range("2024-01-01", periods=len(rows), freq="30min"))
    frame = spark.createDataFrame(rows)
    outside = int((rows[list(DEVIATION_FEATURES)].abs() > detector.dead_zone).any(axis=1).sum())
    assert 3 <= outside < len(rows)

    def plan(scored):
        return scored._jdf.queryExecution().executedPlan().toString()

    in_workers = score_windows(frame, detector)
    on_driver = score_windows(frame, detector, on_driver_up_to=outside)
    assert "ArrowEvalPython" in plan(in_workers) and "ArrowEvalPython" not in plan(on_driver)
    assert on_driver.columns == in_workers.columns
    expected = in_workers.toPandas().sort_values("bucket_start", ignore_index=True)
    got = on_driver.toPandas().sort_values("bucket_start", ignore_index=True)
    np.testing.assert_allclose(got["anomaly_score"], expected["anomaly_score"], rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(got.drop(columns="anomaly_score"), expected.drop(columns="anomaly_score"))
    # One row more outside than allowed: scored in the workers, the same numbers.
    fallback = score_windows(frame, detector, on_driver_up_to=outside - 1)
    assert "ArrowEvalPython" in plan(fallback)


def test_the_dead_zone_makes_moderate_scatter_look_like_no_deviation(spark, training):
    assert shrink(np.array([7.0, -7.0, 3.0, -5.0]), 5.0).tolist() == [2.0, -2.0, 0.0, 0.0]
    detector = fit_detector(training, resolve_spec("isolation_forest", "city"), MODEL_FEATURES)
    scores = detector.score_pandas(probe_rows())
    assert scores[4] == scores[0]  # four 4.5-sd deviations look like none at all
    assert scores[5] > detector.threshold > scores[4]


def test_isolation_forest_trees_grow_on_a_thirty_second_of_the_history(spark):
    assert [tree_sample_size(n) for n in (100, 4_366, 16_384, 34_928, 1_100_000)] == [100, 256, 512, 1024, 1024]
    big = spark.createDataFrame(normal_windows(20_000))
    detector = fit_detector(big, resolve_spec("isolation_forest", "borough", {"n_estimators": 10}), MODEL_FEATURES)
    assert detector.forest.max_samples_ == 625 and detector.metadata()["params"]["max_samples_used"] == 625


def test_explanations_without_a_deviation_beyond_the_limits():
    features = list(MODEL_FEATURES)
    rows = np.zeros((3, len(features)))
    rows[0, features.index("z_log_distance")] = 3.2  # nothing beyond the dead zone: the largest one alone
    rows[1, features.index("z_log_speed")] = -0.4  # nothing of 1 sd or more
    _order, sentences = explain(rows, np.array([True, True, True]), features, limit=5.0)
    assert sentences == ["trip distance above usual (+3.2 sd)", NO_SIGNAL, NO_SIGNAL]
    assert not any("+0.0" in s for s in sentences)


@pytest.mark.parametrize("name", ["isolation_forest", "unsupervised_forest"])
def test_registry_versions_keep_every_family_whole(spark, training, tmp_path, name):
    registry = ModelRegistry(spark, f"file://{tmp_path}/models")
    with pytest.raises(ModelRegistryError, match="run with --mode train first"):
        registry.resolve("fhvhv", "city")
    detector = fit_detector(training, resolve_spec(name, "city", {"n_estimators": 10}), MODEL_FEATURES)
    profile = pd.DataFrame({"key": ["NYC", "NYC"], "slot": np.array([0, 1], dtype="int32"), "med_log_rate": [4.2, 4.5]})
    bundle = ModelBundle(detector, profile)
    first = registry.save(bundle, "fhvhv", "city", {"training_months": ["2024-01"]})
    second = registry.save(bundle, "fhvhv", "city", {"training_months": ["2024-02"]})
    assert registry.versions("fhvhv", "city") == sorted([first, second])
    assert registry.resolve("fhvhv", "city") == max(first, second)
    loaded, meta = registry.load("fhvhv", "city", first)
    # The seasonal profile is read by Spark from its Parquet copy beside the model (no rows shipped in tasks).
    assert loaded.profile_uri == f"{registry.uri('fhvhv', 'city', first)}/profile.parquet"
    pd.testing.assert_frame_equal(loaded.profile_frame(spark).toPandas(), profile)
    assert meta["family"] == name and meta["spec"]["name"] == name and meta["training_months"] == ["2024-01"]
    assert meta["threshold"] == detector.threshold and meta["libraries"]["scikit-learn"]
    rows = spark.createDataFrame(probe_rows())
    before = score_windows(rows, detector).select("key", "anomaly_score").toPandas()
    after = score_windows(rows, loaded.detector).select("key", "anomaly_score").toPandas()
    pd.testing.assert_frame_equal(before, after)
    with pytest.raises(ModelRegistryError, match="not found; available"):
        registry.load("fhvhv", "city", "v20990101T000000-abcdef")
