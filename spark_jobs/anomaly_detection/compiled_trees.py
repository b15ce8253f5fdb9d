"""scikit-learn tree ensembles compiled into native Spark Column expressions, so rows are scored in the JVM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from pyspark import SparkContext
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.utils import is_remote

if TYPE_CHECKING:
    from sklearn.ensemble import ExtraTreesClassifier, IsolationForest, RandomForestClassifier

__all__ = ["forest_probability", "isolation_forest_decision", "isolation_forest_score"]

# float32 rounding sends everything from FLT_MAX + half an ulp upwards to infinity, as if 2**128 were the next float32.
_FLOAT32_END = 2.0**128


@dataclass(frozen=True)
class _Split:
    feature: int
    cut: float
    missing_left: bool
    left: _Node
    right: _Node


_Node = _Split | float


def _float32_cut(threshold: float) -> float:
    """The largest double x with float32(x) <= threshold.

    sklearn's trees test `float32(x) <= threshold` (X is converted to float32, thresholds are float64); on the raw
    double that is exactly `x <= cut`, so the expression needs no cast at each split."""
    with np.errstate(over="ignore"):
        below = np.float32(threshold)
        if float(below) > threshold:  # compared as doubles: a float32 and a Python float compare in float32
            below = np.nextafter(below, np.float32(-np.inf))
        above = np.nextafter(below, np.float32(np.inf))
        low = -_FLOAT32_END if np.isneginf(below) else float(below)
        high = _FLOAT32_END if np.isposinf(above) else float(above)
        middle = (low + high) / 2  # exact: 24 mantissa bits and one more fit in a double's 53
        return middle if np.float32(middle) == below else float(np.nextafter(middle, -np.inf))


def _build(tree: Any, feature_map: Sequence[int], leaf_value: Callable[[int, int], float]) -> _Node:
    """The fitted `tree_` as nested splits, with `leaf_value(node, depth)` (root depth 1) at the leaves; a split
    whose two sides hold the same value becomes that value."""
    left, right, feature, threshold = tree.children_left, tree.children_right, tree.feature, tree.threshold
    missing_left = tree.missing_go_to_left

    def node(i: int, depth: int) -> _Node:
        if left[i] == right[i]:  # both -1: a leaf
            return leaf_value(i, depth)
        low, high = node(int(left[i]), depth + 1), node(int(right[i]), depth + 1)
        if isinstance(low, float) and low == high:
            return low
        return _Split(feature_map[int(feature[i])], _float32_cut(float(threshold[i])), bool(missing_left[i]), low, high)

    return node(0, 1)


class _Emitter:
    """Each tree as nested CASE WHEN, from pyspark's Column API (the way for a Spark Connect session).

    A split whose missing values go right is `x <= cut`: NaN compares above every double in Spark, and a null
    condition takes the ELSE branch. One whose missing values go left is `nanvl(x, -inf) > cut`, which sends NaN
    left and null to the ELSE branch, the left side there."""

    def __init__(self, functions: Any, features: Sequence[Any]) -> None:
        self._f = functions  # pyspark's F, or the JVM's: the functions used here have the same names
        self._x = [self._f.col(f) if isinstance(f, str) else f for f in features]
        self._nan_low: dict[int, Any] = {}

    def _le(self, x: Any, cut: float) -> Any:
        return x <= cut

    def _gt(self, x: Any, cut: float) -> Any:
        return x > cut

    def _add(self, a: Any, b: Any) -> Any:
        return a + b

    def _column(self, column: Any) -> Column:
        return cast(Column, column)

    def _emit(self, node: _Node) -> Any:
        if isinstance(node, float):
            return node
        low, high = self._emit(node.left), self._emit(node.right)
        if node.missing_left:
            if node.feature not in self._nan_low:
                self._nan_low[node.feature] = self._f.nanvl(self._x[node.feature], self._f.lit(float("-inf")))
            return self._f.when(self._gt(self._nan_low[node.feature], node.cut), high).otherwise(low)
        return self._f.when(self._le(self._x[node.feature], node.cut), low).otherwise(high)

    def tree(self, root: _Node) -> Any:
        return self._f.lit(root) if isinstance(root, float) else self._emit(root)

    def sum(self, trees: Sequence[Any]) -> Column:
        """Balanced, so that 200 trees make an addition 8 deep rather than 200 deep."""

        def add(terms: Sequence[Any]) -> Any:
            middle = len(terms) // 2
            return terms[0] if len(terms) == 1 else self._add(add(terms[:middle]), add(terms[middle:]))

        return self._column(add(trees))


class _JvmEmitter(_Emitter):
    """The same from the JVM's Column API: in a classic session every call of pyspark's Column API also sends its
    Python call site to the JVM, about 30 py4j round trips a split (measured); this takes 3."""

    def __init__(self, jvm: Any, features: Sequence[Column | str]) -> None:
        super().__init__(jvm.org.apache.spark.sql.functions, [f if isinstance(f, str) else f._jc for f in features])

    def _le(self, x: Any, cut: float) -> Any:
        return x.leq(cut)

    def _gt(self, x: Any, cut: float) -> Any:
        return x.gt(cut)

    def _add(self, a: Any, b: Any) -> Any:
        return a.plus(b)

    def _column(self, column: Any) -> Column:
        from pyspark.sql.classic.column import Column as ClassicColumn

        return ClassicColumn(column)


def _emitter(features: Sequence[Column | str], n_features: int) -> _Emitter:
    if isinstance(features, str) or not all(isinstance(f, str | Column) for f in features):
        raise TypeError("features must be a sequence of column names or Columns")
    if len(features) != n_features:
        raise ValueError(f"the model was fitted on {n_features} features, got {len(features)}")
    context = None if is_remote() else SparkContext._active_spark_context
    return _Emitter(F, features) if context is None else _JvmEmitter(context._jvm, features)


def _average_path_lengths(n_samples: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n keys (0 for n <= 1)."""
    n = np.asarray(n_samples, dtype=np.float64)
    lengths = np.where(n == 2, 1.0, 0.0)
    more = n > 2
    lengths[more] = 2.0 * (np.log(n[more] - 1.0) + np.euler_gamma) - 2.0 * (n[more] - 1.0) / n[more]
    return lengths


def isolation_forest_score(model: IsolationForest, features: Sequence[Column | str]) -> Column:
    """`model.score_samples(X)` of a fitted IsolationForest, X being `features` (numeric columns, in the order the
    model was fitted on): -2 ** (-mean path length / c(max_samples_)), each tree a nested CASE WHEN whose leaves
    hold depth - 1 + c(rows in the leaf).

    Columns are compared as sklearn compares them (rounded to float32, against float64 thresholds). NaN goes
    where the tree sends missing values (`missing_go_to_left`), as in sklearn, which accepts NaN and ±inf here;
    null is taken as NaN. Plain column names keep the plan smallest: a Column expression is repeated at every
    split on its feature.

    Score with spark.sql.codegen.wholeStage=false (or hugeMethodLimit=8000): whole-stage code of a 10-tree forest
    is already beyond HotSpot's 8,000-byte JIT limit (6x slower), and of a 100-tree one beyond Java's 64 KB method
    limit, which Spark fails to compile again in every query before it falls back (bench/README.md)."""
    emitter = _emitter(features, int(model.n_features_in_))
    denominator = len(model.estimators_) * float(_average_path_lengths(np.array([model.max_samples_]))[0])
    if denominator == 0:  # every tree is a single leaf of one row: sklearn's score is then 2 ** -1
        return F.lit(-0.5)
    # score_samples selects each tree's drawn features only when fewer than all were drawn.
    subsampled = len(model.estimators_features_[0]) != len(features)
    trees = []
    for estimator, drawn in zip(model.estimators_, model.estimators_features_, strict=True):
        tree = estimator.tree_
        feature_map = [int(f) for f in drawn] if subsampled else range(len(features))
        below_leaf = _average_path_lengths(tree.n_node_samples)

        def path_length(leaf: int, depth: int, below_leaf: np.ndarray[Any, Any] = below_leaf) -> float:
            return float(depth + below_leaf[leaf] - 1.0)

        trees.append(emitter.tree(_build(tree, feature_map, path_length)))
    return -F.pow(F.lit(2.0), -(emitter.sum(trees) / F.lit(denominator)))


def isolation_forest_decision(model: IsolationForest, features: Sequence[Column | str]) -> Column:
    """`model.decision_function(X)`: the score minus the model's offset_ (negative for outliers)."""
    return isolation_forest_score(model, features) - F.lit(float(model.offset_))


def forest_probability(
    model: RandomForestClassifier | ExtraTreesClassifier, features: Sequence[Column | str], class_index: int = 1
) -> Column:
    """`model.predict_proba(X)[:, class_index]` of a fitted single-output RandomForestClassifier or
    ExtraTreesClassifier: the mean over the trees of the class's fraction in the leaf (sklearn >= 1.4 stores
    fractions in `tree_.value`), compared and NaN-routed as `isolation_forest_score` does.

    sklearn rejects ±inf and doubles beyond float32's range for these forests; the expression sends them where
    the trees' own traversal would (+inf right, -inf left)."""
    if int(model.n_outputs_) != 1:
        raise ValueError("only single-output classifiers are supported")
    if not 0 <= class_index < int(model.n_classes_):
        raise ValueError(f"class_index {class_index} is not one of the model's {model.n_classes_} classes")
    emitter = _emitter(features, int(model.n_features_in_))
    trees = []
    for estimator in model.estimators_:
        value = estimator.tree_.value

        def fraction(leaf: int, depth: int, value: np.ndarray[Any, Any] = value) -> float:
            return float(value[leaf, 0, class_index])

        trees.append(emitter.tree(_build(estimator.tree_, range(len(features)), fraction)))
    return emitter.sum(trees) / F.lit(float(len(trees)))
