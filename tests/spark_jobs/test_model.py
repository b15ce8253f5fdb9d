"""The IsolationForest model: training, vectorised scoring with explanations, and the versioned registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from anomaly_detection.evaluation import Episode, evaluate, seasonal_zscore_baseline
from anomaly_detection.features import DEVIATION_FEATURES, MODEL_FEATURES
from anomaly_detection.model import ModelBundle, pack_positions, score_windows, shrink, train, tree_sample_size
from anomaly_detection.registry import ModelRegistry, ModelRegistryError


def normal_windows(n: int, seed: int = 0) -> pd.DataFrame:
    """Heavy-tailed noise on the deviation features, with z_max_abs derived as the feature pipeline does."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_t(5, size=(n, len(DEVIATION_FEATURES))), columns=list(DEVIATION_FEATURES))
    return with_max_abs(frame)


def with_max_abs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(z_max_abs=frame[list(DEVIATION_FEATURES)].abs().max(axis=1))[list(MODEL_FEATURES)]


def test_train_sets_the_threshold_at_the_contamination_quantile():
    model = train(normal_windows(2000), contamination=0.01, n_estimators=50)
    flagged = (model.anomaly_scores(normal_windows(2000)) > model.threshold).mean()
    assert 0.0 < flagged < 0.03
    assert model.training_rows == 2000


def test_trees_grow_on_a_thirty_second_of_the_history_between_256_and_1024_windows():
    assert [tree_sample_size(n) for n in (100, 4_366, 16_384, 34_928, 1_100_000)] == [100, 256, 512, 1024, 1024]
    model = train(normal_windows(20_000), contamination=0.01, n_estimators=10)
    assert model.params["max_samples"] == 625 and model.forest.max_samples_ == 625


def test_train_rejects_empty_input_and_bad_contamination():
    with pytest.raises(ValueError, match="no training windows"):
        train(normal_windows(0))
    with pytest.raises(ValueError, match="contamination must be in"):
        train(normal_windows(100), contamination=0.7)


def test_an_obvious_outlier_is_flagged_and_explained_by_the_right_feature():
    model = train(normal_windows(3000), contamination=0.005, n_estimators=100)
    odd = normal_windows(1, seed=9)
    odd["z_log_rate"] = -12.0  # an outage-like count
    odd = with_max_abs(odd)
    scores = model.anomaly_scores(odd)
    assert scores[0] > model.threshold
    order, sentences = model.explain(model.deviations(odd), scores > model.threshold)
    assert model.features[order[0][0]] == "z_log_rate"
    assert "z_max_abs" not in [model.features[i] for i in order[0]]  # a summary, never a reason
    assert sentences[0].startswith("trip count below usual (-")


def test_deviations_inside_the_dead_zone_count_as_noise_and_incidents_outrank_moderate_scatter():
    assert shrink(np.array([7.0, -7.0, 3.0, -5.0]), 5.0).tolist() == [2.0, -2.0, 0.0, 0.0]
    rng = np.random.default_rng(4)
    history = normal_windows(3000)
    incidents = history.sample(60, random_state=1).copy()  # history has incidents too: one signal far off
    for row, feature in zip(incidents.index, rng.choice(list(DEVIATION_FEATURES), size=60), strict=True):
        incidents.loc[row, feature] = rng.choice([-1, 1]) * rng.uniform(10, 40)
    model = train(
        with_max_abs(pd.concat([history, incidents], ignore_index=True)), contamination=0.02, n_estimators=100
    )
    assert model.dead_zone == 5.0 and model.params["dead_zone_sd"] == 5.0
    scatter = pd.DataFrame([[4.5, -4.5, 4.5, -4.5, 0.0]], columns=list(DEVIATION_FEATURES))
    quiet = pd.DataFrame([[0.0] * len(DEVIATION_FEATURES)], columns=list(DEVIATION_FEATURES))
    incident = quiet.assign(z_log_rate=-15.0)
    scores = model.anomaly_scores(with_max_abs(pd.concat([scatter, quiet, incident], ignore_index=True)))
    assert scores[0] == pytest.approx(scores[1])  # four 4.5-sd deviations look like none at all
    assert scores[2] > model.threshold > scores[0]
    with pytest.raises(ValueError, match="dead_zone"):
        train(normal_windows(100), dead_zone=-1.0)


def test_rows_inside_the_dead_zone_get_exactly_the_forest_score_of_a_quiet_row():
    model = train(normal_windows(2000), contamination=0.01, n_estimators=50, dead_zone=2.0)
    rows = normal_windows(300, seed=5)
    deviations = model.deviations(rows)
    every_row_through_the_forest = -model.forest.score_samples(model.forest_inputs(deviations))
    quiet = (np.abs(deviations) <= 2.0).all(axis=1)
    assert 0 < quiet.sum() < len(rows)  # both kinds in the batch
    np.testing.assert_array_equal(model.scores_of(deviations), every_row_through_the_forest)
    for subset in (quiet, ~quiet):  # batches of one kind only
        np.testing.assert_array_equal(model.scores_of(deviations[subset]), every_row_through_the_forest[subset])


def test_top_feature_positions_pack_into_decimal_digits_most_first():
    assert pack_positions(np.array([[4, 0, 2], [0, 1, 3]])).tolist() == [402, 13]


@pytest.mark.spark
def test_score_windows_runs_vectorised_on_spark_and_keeps_every_row(spark):
    model = train(normal_windows(2000), contamination=0.01, n_estimators=50)
    frame = normal_windows(500, seed=3)
    frame.loc[7, "z_log_fare_per_mile"] = 15.0
    frame = with_max_abs(frame)
    frame.insert(0, "key", [f"k{i}" for i in range(len(frame))])
    scored = score_windows(spark.createDataFrame(frame), model).toPandas().set_index("key")
    assert len(scored) == 500
    assert bool(scored.loc["k7", "is_anomaly"]) is True
    assert list(scored.loc["k7", "top_features"])[0] == "z_log_fare_per_mile"
    assert "fare per mile above usual" in scored.loc["k7", "explanation"]
    assert scored.loc[~scored["is_anomaly"], "explanation"].isna().all()
    # Same numbers, labels and explanations as on the driver: the UDF path and the packing change nothing.
    driver = frame.set_index("key").loc[scored.index]
    expected = model.anomaly_scores(driver)
    np.testing.assert_allclose(scored["anomaly_score"].to_numpy(), expected)
    assert (scored["is_anomaly"].to_numpy() == (expected > model.threshold)).all()
    order, sentences = model.explain(model.deviations(driver), expected > model.threshold)
    assert [list(t) for t in scored["top_features"]] == [[model.features[i] for i in row] for row in order]
    assert scored["explanation"].where(scored["is_anomaly"], None).tolist() == sentences


@pytest.mark.spark
def test_registry_versions_never_overwrite_and_latest_is_newest(spark, tmp_path):
    registry = ModelRegistry(spark, f"file://{tmp_path}/models")
    with pytest.raises(ModelRegistryError, match="run with --mode train first"):
        registry.resolve("fhvhv", "city")
    bundle = ModelBundle(train(normal_windows(500), n_estimators=20), pd.DataFrame({"key": ["NYC"]}))
    first = registry.save(bundle, "fhvhv", "city", {"training_months": ["2024-01"]})
    second = registry.save(bundle, "fhvhv", "city", {"training_months": ["2024-02"]})
    assert first != second
    assert registry.versions("fhvhv", "city") == sorted([first, second])
    assert registry.resolve("fhvhv", "city") == max(first, second)
    loaded, meta = registry.load("fhvhv", "city", first)
    assert meta["training_months"] == ["2024-01"] and meta["libraries"]["scikit-learn"]
    assert loaded.model.threshold == bundle.model.threshold
    meta_file = tmp_path / "models" / "fhvhv" / "city" / first / "metadata.json"
    assert json.loads(meta_file.read_text())["version"] == first
    with pytest.raises(ModelRegistryError, match="not found; available"):
        registry.load("fhvhv", "city", "v-nope")


def test_evaluate_counts_buckets_and_episodes():
    from datetime import datetime, timedelta

    start = datetime(2024, 3, 5, 10, 0)
    episodes = [
        Episode("e1", "drop", start, start + timedelta(hours=2)),
        Episode("e2", "spike", start + timedelta(days=1), start + timedelta(days=1, hours=1)),
    ]
    flagged = {start, start + timedelta(minutes=30), start + timedelta(days=3)}
    q = evaluate(flagged, episodes)
    assert q.bucket_precision == pytest.approx(2 / 3)
    assert q.bucket_recall == pytest.approx(2 / 6)
    assert q.episode_recall == 0.5 and q.recall_by_kind == {"drop": 1.0, "spike": 0.0}


def test_seasonal_baseline_flags_a_count_far_from_its_slot_history():
    history = pd.DataFrame({"bucket_start": pd.date_range("2024-01-01", periods=48 * 28, freq="30min")})
    history["trips"] = 100 + (np.arange(len(history)) % 5)
    current = pd.DataFrame({"bucket_start": pd.date_range("2024-01-29", periods=48, freq="30min")})
    current["trips"] = 102
    current.loc[20, "trips"] = 10
    flagged = seasonal_zscore_baseline(history, current)
    assert flagged == {current.loc[20, "bucket_start"].to_pydatetime()}


def test_explanations_name_only_deviations_that_matter_with_the_right_direction():
    model = train(normal_windows(2000), contamination=0.01, n_estimators=20)
    features = list(model.features)
    rows = np.zeros((4, len(features)))
    rows[0, features.index("z_log_rate")] = -15.2  # an incident in one signal, the rest exactly usual
    rows[1, features.index("z_log_rate")] = 9.0
    rows[1, features.index("z_log_speed")] = -6.5
    rows[1, features.index("z_pay_share")] = 2.0  # inside the dead zone: not a reason
    rows[2, features.index("z_log_distance")] = 3.2  # nothing beyond the dead zone: the largest one alone
    order, sentences = model.explain(rows, np.array([True, True, True, True]))
    assert sentences[0] == "trip count below usual (-15.2 sd)"
    assert sentences[1] == "trip count above usual (+9.0 sd); speed below usual (-6.5 sd)"
    assert sentences[2] == "trip distance above usual (+3.2 sd)"
    assert sentences[3] == "no signal is 1 sd or more from its seasonal usual"
    assert not any("+0.0" in s or "-0.0" in s for s in sentences)
