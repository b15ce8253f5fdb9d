"""The compiled forests against scikit-learn itself: the same scores to 1e-9 on real KDD Cup 99 rows and on
random rows built to hit the edges (values at and beside every threshold, far out of range, ±inf, NaN, null)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F
from sklearn.ensemble import ExtraTreesClassifier, IsolationForest, RandomForestClassifier

from anomaly_detection import compiled_trees
from anomaly_detection.compiled_trees import (
    _float32_cut,
    forest_probability,
    isolation_forest_decision,
    isolation_forest_score,
)
from taxi_anomaly.ingest.settings import shared_data_dir

pytestmark = [
    pytest.mark.spark,
    # the rows far out of range overflow float32 on purpose, in sklearn as in these tests
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning"),  # fits on NaN
]

KDD = shared_data_dir() / "kddcup99" / "kddcup.data_10_percent.gz"
KDD_SYMBOLIC = (1, 2, 3)  # protocol_type, service, flag; column 41 is the label
TOLERANCE = 1e-9


def float32_le(x: np.ndarray, threshold: float) -> np.ndarray:
    """sklearn's split test: X converted to float32, compared with the float64 threshold as doubles."""
    with np.errstate(over="ignore"):
        return x.astype(np.float32).astype(np.float64) <= threshold


def test_float32_cut_is_the_float32_comparison_on_doubles():
    rng = np.random.default_rng(7)
    f32_max = float(np.finfo(np.float32).max)
    thresholds = [
        *(rng.normal(size=400) * 10.0 ** rng.integers(-40, 39, size=400)),
        *(float(np.float32(t)) for t in rng.normal(size=100)),  # thresholds that are float32 values
        0.0, -0.0, 1e-46, -1e-46, 78.99999894946814, f32_max, -f32_max, 1e39, -1e39, np.inf,
    ]  # fmt: skip
    for threshold in thresholds:
        cut = _float32_cut(threshold)
        f32 = np.float32(threshold)
        near = [cut, threshold, float(f32)]
        near += [float(np.nextafter(v, d)) for v in near for d in (-np.inf, np.inf)]
        near += [float(np.nextafter(f32, np.float32(d))) for d in (-np.inf, np.inf)]
        x = np.array(near + [np.inf, -np.inf, 1e300, -1e300])
        np.testing.assert_array_equal(x <= cut, float32_le(x, threshold), err_msg=f"threshold {threshold!r}")


# --- data -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kdd_rows() -> np.ndarray:
    """3,000 numeric rows of the KDD Cup 99 10% file (every 20th of the first 60,000: normal and attack traffic)."""
    if not KDD.exists():
        pytest.skip(f"the KDD Cup 99 file is not at {KDD}")
    frame = pd.read_csv(KDD, header=None, nrows=60_000).iloc[::20]
    return frame.drop(columns=[*KDD_SYMBOLIC, 41]).to_numpy(dtype=np.float64)


def split_rows(model_trees: list, base: np.ndarray, per_tree: int, seed: int) -> np.ndarray:
    """Rows that sit on split thresholds: a base row with one feature set to the threshold, to its float32
    neighbours and to the doubles either side of them."""
    rng = np.random.default_rng(seed)
    rows = []
    for tree, feature_map in model_trees:
        # (a split that sends only the missing values right has an infinite threshold: no rows sit on it)
        splits = np.flatnonzero((tree.children_left >= 0) & np.isfinite(tree.threshold))
        for node in rng.choice(splits, size=min(per_tree, len(splits)), replace=False):
            threshold, feature = float(tree.threshold[node]), int(feature_map[tree.feature[node]])
            f32 = np.float32(threshold)
            values = {threshold, float(f32), float(np.nextafter(f32, np.float32(np.inf)))}
            values |= {float(np.nextafter(f32, np.float32(-np.inf))), _float32_cut(threshold)}
            values |= {float(np.nextafter(v, d)) for v in list(values) for d in (-np.inf, np.inf)}
            for value in values:
                row = base[rng.integers(len(base))].copy()
                row[feature] = value
                rows.append(row)
    return np.array(rows)


def extreme_rows(base: np.ndarray, seed: int, missing: bool, infinite: bool) -> np.ndarray:
    """Base rows with single features set far beyond any training value (and ±inf, NaN if asked)."""
    rng = np.random.default_rng(seed)
    values = [1e300, -1e300, 1e39, -1e39, 3.5e38, -3.5e38, 1e-300]
    values += [np.inf, -np.inf] if infinite else []
    values += [np.nan] if missing else []
    rows = []
    for feature in range(base.shape[1]):
        for value in values:
            row = base[rng.integers(len(base))].copy()
            row[feature] = value
            rows.append(row)
    if missing:  # rows with many missing values
        many = base[rng.integers(len(base), size=50)].copy()
        many[rng.random(many.shape) < 0.5] = np.nan
        rows.extend(many)
    return np.array(rows)


def spark_frame(spark, x: np.ndarray, null_rows: frozenset[int] = frozenset()):
    """Rows with an id; in `null_rows` NaN becomes null (the same missing value for sklearn), elsewhere it stays NaN
    (an Arrow table keeps the two apart; a pandas frame would turn every NaN into null)."""
    names = [f"f{i}" for i in range(x.shape[1])]
    as_null = np.zeros(x.shape, dtype=bool)
    rows = sorted(null_rows)
    as_null[rows] = np.isnan(x[rows])
    table = pa.table(
        {"id": pa.array(np.arange(len(x))), **{n: pa.array(x[:, i], mask=as_null[:, i]) for i, n in enumerate(names)}}
    )
    return spark.createDataFrame(table), names


def scored(frame, **columns) -> dict[str, np.ndarray]:
    got = frame.select("id", *(c.alias(n) for n, c in columns.items())).toPandas().sort_values("id")
    return {name: got[name].to_numpy() for name in columns}


@contextmanager
def whole_stage_codegen(spark, enabled: bool) -> Iterator[None]:
    key = "spark.sql.codegen.wholeStage"
    previous = spark.conf.get(key)
    spark.conf.set(key, str(enabled).lower())
    try:
        yield
    finally:
        spark.conf.set(key, previous)


def trees_of(model) -> list:
    features = getattr(model, "estimators_features_", None)
    identity = np.arange(model.n_features_in_)
    return [
        (e.tree_, features[i] if features is not None and len(features[i]) != model.n_features_in_ else identity)
        for i, e in enumerate(model.estimators_)
    ]


# --- isolation forest -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_trees", [10, 200])
def test_isolation_forest_on_kdd_rows(spark, kdd_rows, n_trees):
    model = IsolationForest(n_estimators=n_trees, random_state=3).fit(kdd_rows)
    x = np.vstack(
        [
            kdd_rows,
            split_rows(trees_of(model)[:10], kdd_rows, per_tree=6, seed=1),
            extreme_rows(kdd_rows, seed=2, missing=True, infinite=True),
        ]
    )
    nan_rows = np.flatnonzero(np.isnan(x).any(axis=1))
    frame, names = spark_frame(spark, x, null_rows=frozenset(nan_rows[::2].tolist()))
    columns = {"score": isolation_forest_score(model, names)}
    if n_trees == 10:  # one 200-tree expression per query: compiling it is most of this test's time
        columns["decision"] = isolation_forest_decision(model, names)
    # 200 trees are far beyond whole-stage codegen's 64 KB method limit: Spark would spend most of this test
    # failing to compile them before it falls back to the per-expression code that this runs directly
    with whole_stage_codegen(spark, enabled=n_trees < 100):
        got = scored(frame, **columns)
    np.testing.assert_allclose(got["score"], model.score_samples(x), rtol=0, atol=TOLERANCE)
    if "decision" in got:
        np.testing.assert_allclose(got["decision"], model.decision_function(x), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    "params",
    [
        {"max_features": 0.5},  # each tree sees its own features
        {"contamination": 0.05},  # an offset_ from the training scores
        {"max_samples": 64, "bootstrap": True},
    ],
    ids=["feature-subsets", "contamination", "small-samples"],
)
def test_isolation_forest_on_random_rows_with_missing_values(spark, params):
    rng = np.random.default_rng(11)
    train = rng.normal(size=(2_000, 6)) * [1, 10, 1e-3, 1e4, 1, 1] + [0, 0, 0, 0, 50, -7]
    train[:, 5] = rng.integers(0, 4, size=len(train))  # a discrete feature: thresholds between integers
    train[rng.random(train.shape) < 0.05] = np.nan  # missing values in training: missing_go_to_left varies
    model = IsolationForest(n_estimators=10, random_state=5, **params).fit(train)
    base = rng.normal(size=(500, 6)) * [1, 10, 1e-3, 1e4, 1, 1] + [0, 0, 0, 0, 50, -7]
    x = np.vstack([base, split_rows(trees_of(model), base, per_tree=8, seed=3), extreme_rows(base, 4, True, True)])
    nan_rows = np.flatnonzero(np.isnan(x).any(axis=1))
    frame, names = spark_frame(spark, x, null_rows=frozenset(nan_rows[1::2].tolist()))
    got = scored(frame, score=isolation_forest_score(model, names), decision=isolation_forest_decision(model, names))
    np.testing.assert_allclose(got["score"], model.score_samples(x), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got["decision"], model.decision_function(x), rtol=0, atol=TOLERANCE)


def test_isolation_forest_of_single_leaves_scores_like_sklearn(spark):
    model = IsolationForest(n_estimators=3, max_samples=1, random_state=0).fit(np.arange(20.0).reshape(10, 2))
    frame, names = spark_frame(spark, np.array([[0.0, 1.0], [np.nan, 1e300]]))
    got = scored(frame, score=isolation_forest_score(model, names))
    np.testing.assert_allclose(got["score"], model.score_samples([[0.0, 1.0], [np.nan, 1e300]]), rtol=0, atol=0)


# --- classifiers ------------------------------------------------------------------------------------------------


def traversal_probability(model, x: np.ndarray, class_index: int) -> np.ndarray:
    """What predict_proba computes, without its input check (it rejects ±inf and values beyond float32)."""
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    total = np.zeros(len(x))
    for estimator in model.estimators_:
        total += estimator.tree_.predict(x32)[:, class_index]
    return total / len(model.estimators_)


@pytest.mark.parametrize(
    ("family", "n_trees", "max_depth"),
    [(RandomForestClassifier, 10, None), (ExtraTreesClassifier, 10, None), (RandomForestClassifier, 200, 3)],
    ids=["random-forest-10", "extra-trees-10", "random-forest-200-shallow"],
)
def test_forest_probability(spark, kdd_rows, family, n_trees, max_depth):
    rng = np.random.default_rng(13)
    train = kdd_rows.copy()
    labels = (train[:, 19] > 100).astype(int) + (train[:, 1] > 1000).astype(int)  # three classes
    train[rng.random(train.shape) < 0.02] = np.nan
    model = family(n_estimators=n_trees, max_depth=max_depth, random_state=1).fit(train, labels)
    finite = np.vstack([kdd_rows, split_rows(trees_of(model)[:5], kdd_rows, per_tree=6, seed=5)])
    finite[rng.random(finite.shape) < 0.01] = np.nan
    beyond = extreme_rows(kdd_rows, seed=6, missing=False, infinite=True)
    nan_rows = np.flatnonzero(np.isnan(finite).any(axis=1))
    frame, names = spark_frame(spark, np.vstack([finite, beyond]), null_rows=frozenset(nan_rows[::3].tolist()))
    got = scored(frame, p1=forest_probability(model, names), p2=forest_probability(model, names, class_index=2))
    # sklearn itself for the rows it accepts; its trees' traversal for ±inf and values beyond float32
    expected = model.predict_proba(finite)
    np.testing.assert_allclose(got["p1"][: len(finite)], expected[:, 1], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got["p2"][: len(finite)], expected[:, 2], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got["p1"][len(finite) :], traversal_probability(model, beyond, 1), atol=TOLERANCE)
    with pytest.raises(ValueError, match="infinity"):
        model.predict_proba(beyond)


# --- the public Column API path and the plan ------------------------------------------------------------------


def test_public_column_api_builds_the_same_scores(spark, monkeypatch):
    """Spark Connect sessions build the expression with pyspark's Column API; a classic session can too."""
    rng = np.random.default_rng(17)
    train = rng.normal(size=(300, 3))
    train[rng.random(train.shape) < 0.1] = np.nan
    model = IsolationForest(n_estimators=3, max_samples=16, random_state=0).fit(train)
    x = np.vstack([rng.normal(size=(200, 3)), extreme_rows(train[:20], 1, True, True)])
    frame, names = spark_frame(spark, x, null_rows=frozenset(range(0, len(x), 7)))
    monkeypatch.setattr(compiled_trees, "is_remote", lambda: True)
    columns = [F.col(n) for n in names]
    got = scored(frame, score=isolation_forest_score(model, [names[0], *columns[1:]]))
    np.testing.assert_allclose(got["score"], model.score_samples(x), rtol=0, atol=TOLERANCE)


def test_the_plan_has_no_python_udf(spark, capsys):
    rng = np.random.default_rng(19)
    model = IsolationForest(n_estimators=10, random_state=0).fit(rng.normal(size=(500, 4)))
    frame, names = spark_frame(spark, rng.normal(size=(10, 4)))
    frame.select(isolation_forest_score(model, names).alias("score")).explain(extended=True)
    plan = capsys.readouterr().out
    assert "CASE WHEN" in plan
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan

    @F.pandas_udf("double")
    def score(*columns: pd.Series) -> pd.Series:
        return pd.Series(model.score_samples(pd.concat(columns, axis=1).to_numpy()))

    frame.select(score(*names).alias("score")).explain(extended=True)
    assert "ArrowEvalPython" in capsys.readouterr().out  # what the check would see in a UDF's plan


def test_wrong_inputs_are_refused():
    rng = np.random.default_rng(23)
    forest = IsolationForest(n_estimators=2, random_state=0).fit(rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match="fitted on 3 features, got 2"):
        isolation_forest_score(forest, ["a", "b"])
    with pytest.raises(TypeError):
        isolation_forest_score(forest, "abc")
    classifier = RandomForestClassifier(n_estimators=2, random_state=0).fit(rng.normal(size=(50, 3)), [0, 1] * 25)
    with pytest.raises(ValueError, match="class_index 2"):
        forest_probability(classifier, ["a", "b", "c"], class_index=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multi = RandomForestClassifier(n_estimators=2).fit(rng.normal(size=(50, 3)), np.ones((50, 2)))
    with pytest.raises(ValueError, match="single-output"):
        forest_probability(multi, ["a", "b", "c"])
