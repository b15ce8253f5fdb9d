"""Model specs: the files in include/models, their resolution per granularity and overrides, and every family's
parameter checks (no Spark)."""

from __future__ import annotations

import pytest

from taxi_anomaly.contract import Granularity
from taxi_anomaly.detectors import SpecError, families, family_of, resolve_spec, spec_names
from taxi_anomaly.detectors.base import threshold_of
from taxi_anomaly.detectors.spec import Threshold, ThresholdRule, load_spec


def test_every_spec_file_resolves_for_every_granularity_and_names_a_known_family():
    assert {"isolation_forest", "kmeans", "unsupervised_forest"} <= set(spec_names())
    for name in spec_names():
        for granularity in Granularity:
            spec = resolve_spec(name, granularity)
            assert spec.family in families() and spec.granularity is granularity
            assert spec.description


def test_granularity_sections_and_overrides_apply_in_order():
    city = load_spec("isolation_forest", "city")
    zone = load_spec("isolation_forest", "zone")
    assert (city.threshold.value, zone.threshold.value) == (0.03, 0.004)
    run = load_spec("isolation_forest", "zone", {"n_estimators": 50, "threshold_rule": "tail", "threshold_value": 2})
    assert run.params["n_estimators"] == 50 and run.threshold == Threshold(ThresholdRule.TAIL, 2.0)
    assert run.overrides == {"n_estimators": 50, "threshold_rule": "tail", "threshold_value": 2}


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("nope", {}, "no model spec 'nope'"),
        ("Bad Name", {}, "detector must be a spec name"),
        ("isolation_forest", {"n_estimators": 5}, "n_estimators must be between 10 and 2000, got 5"),
        ("isolation_forest", {"n_estimators": 10.5}, "n_estimators must be an integer"),
        ("isolation_forest", {"trees": 100}, r"unknown parameter\(s\) \['trees'\]"),
        ("kmeans", {"k": 1}, "k must be between 2 and 200"),
        ("isolation_forest", {"threshold_value": 0.7}, r"contamination takes a share in \(0, 0.5\)"),
        ("isolation_forest", {"threshold_rule": "magic"}, "threshold rule must be one of contamination, tail, score"),
        ("isolation_forest", {"dead_zone_sd": -1}, "dead_zone_sd must be >= 0"),
        ("isolation_forest", {"seed": "x"}, "seed must be an integer"),
    ],
)
def test_wrong_specs_and_overrides_are_refused_naming_the_parameter(name, overrides, message):
    with pytest.raises(SpecError, match=message):
        resolve_spec(name, "city", overrides)


def test_an_unknown_family_or_key_in_a_spec_file_is_named(tmp_path):
    (tmp_path / "odd.yaml").write_text("family: magic\nthreshold: {rule: score, value: 1}\n")
    (tmp_path / "typo.yaml").write_text("family: kmeans\nparamz: {}\n")
    spec = load_spec("odd", "city", spec_dir=tmp_path)
    with pytest.raises(SpecError, match="unknown detector family 'magic'"):
        family_of(spec.family)
    with pytest.raises(SpecError, match=r"unknown keys \['paramz'\]"):
        load_spec("typo", "city", spec_dir=tmp_path)


def test_threshold_rules_on_training_scores():
    import numpy as np

    scores = np.concatenate([np.full(980, 0.4), np.linspace(0.5, 0.9, 20)])
    assert threshold_of(scores, Threshold(ThresholdRule.CONTAMINATION, 0.01)) == pytest.approx(
        np.quantile(scores, 0.99)
    )
    q50, q99 = np.quantile(scores, [0.5, 0.99])
    assert threshold_of(scores, Threshold(ThresholdRule.TAIL, 2.0)) == pytest.approx(q99 + 2 * (q99 - q50))
    assert threshold_of(scores, Threshold(ThresholdRule.SCORE, 0.61)) == 0.61
