"""Model specs: a YAML file per detector in include/models/ names its family, parameters (per granularity),
dead zone, seed and threshold rule. This module reads and checks them; it imports no pyspark, numpy or sklearn
(the DAGs list the spec names when their files are parsed)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from taxi_anomaly.contract import DETECTOR_PATTERN, Granularity

# include/models of the repository, or where TAP_MODEL_SPECS points (the Spark image copies the specs elsewhere).
SPEC_DIR = Path(os.environ.get("TAP_MODEL_SPECS") or Path(__file__).resolve().parents[3] / "include" / "models")
# Keys of a spec file, and those a granularity section may override.
SPEC_KEYS = {"family", "description", "seed", "dead_zone_sd", "params", "threshold", "granularities", "search"}
# A spec's search space for the tuning (mode tune): lists of values to try.
SEARCH_KEYS = {"params", "dead_zone_sd", "threshold"}
GRANULARITY_KEYS = {"params", "threshold", "dead_zone_sd"}
# Run-time overrides (the job's detector_params) may name a family parameter or one of these.
GENERIC_OVERRIDES = {"seed", "dead_zone_sd", "threshold_rule", "threshold_value"}


class SpecError(ValueError):
    """A spec or an override that cannot be used; the message names the file or parameter."""


class ThresholdRule(StrEnum):
    """How a trained detector turns its training scores into a decision threshold.

    contamination: the training-score quantile that flags `value` (a share, 0-0.5) of the training windows. The
        share of flags stays about `value` whatever happens, so recall is capped in a month with more incidents.
    tail: q99 + value * (q99 - q50) of the training scores (value >= 0): a margin beyond the training scores'
        tail, so a month with more incidents than the history gets more flags.
    score: the score `value` itself (a fixed number, meaningful only for one family's score scale).
    """

    CONTAMINATION = "contamination"
    TAIL = "tail"
    SCORE = "score"


@dataclass(frozen=True)
class Threshold:
    rule: ThresholdRule
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", ThresholdRule(self.rule))
        value = float(self.value)
        object.__setattr__(self, "value", value)
        if not math.isfinite(value):
            raise SpecError(f"threshold value must be a finite number, got {self.value!r}")
        if self.rule is ThresholdRule.CONTAMINATION and not 0 < value < 0.5:
            raise SpecError(f"threshold rule contamination takes a share in (0, 0.5), got {value}")
        if self.rule is ThresholdRule.TAIL and value < 0:
            raise SpecError(f"threshold rule tail takes a margin >= 0, got {value}")

    def as_dict(self) -> dict[str, Any]:
        return {"rule": str(self.rule), "value": self.value}


@dataclass(frozen=True)
class DetectorSpec:
    """A spec resolved for one granularity, with any run-time overrides applied: what the family is fitted with.

    :param name: the spec's name (its file name without .yaml).
    :param family: the detector family (a class in taxi_anomaly.detectors).
    :param granularity: the window key the model is for.
    :param params: the family's parameters.
    :param threshold: how the decision threshold is set from the training scores.
    :param dead_zone_sd: deviations up to this many robust sd count as noise (moved to 0).
    :param seed: every random draw of the fit.
    """

    name: str
    family: str
    granularity: Granularity
    params: Mapping[str, Any]
    threshold: Threshold
    dead_zone_sd: float = 5.0
    seed: int = 42
    description: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dead_zone_sd < 0:
            raise SpecError(f"{self.name}: dead_zone_sd must be >= 0 sd, got {self.dead_zone_sd}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "granularity": str(self.granularity),
            "params": dict(self.params),
            "threshold": self.threshold.as_dict(),
            "dead_zone_sd": self.dead_zone_sd,
            "seed": self.seed,
            "overrides": dict(self.overrides),
        }


def spec_names(spec_dir: Path = SPEC_DIR) -> list[str]:
    """The detectors one can choose (the trigger forms' choices): include/models/*.yaml, sorted."""
    return sorted(p.stem for p in spec_dir.glob("*.yaml") if re.fullmatch(DETECTOR_PATTERN, p.stem))


def read_spec_file(name: str, spec_dir: Path = SPEC_DIR) -> dict[str, Any]:
    import yaml

    if not re.fullmatch(DETECTOR_PATTERN, name):
        raise SpecError(f"detector must be a spec name such as isolation_forest, got {name!r}")
    path = spec_dir / f"{name}.yaml"
    if not path.exists():
        raise SpecError(
            f"no model spec {name!r}: {path} does not exist; choose one of {', '.join(spec_names(spec_dir))}"
        )
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise SpecError(f"{path}: expected a mapping of spec keys, got {type(document).__name__}")
    unknown = set(document) - SPEC_KEYS
    if unknown:
        raise SpecError(f"{path}: unknown keys {sorted(unknown)}; a spec has {sorted(SPEC_KEYS)}")
    for granularity, section in (document.get("granularities") or {}).items():
        if granularity not in {g.value for g in Granularity}:
            raise SpecError(f"{path}: granularities.{granularity} is not a granularity")
        extra = set(section or {}) - GRANULARITY_KEYS
        if extra:
            raise SpecError(
                f"{path}: granularities.{granularity} may set {sorted(GRANULARITY_KEYS)}, not {sorted(extra)}"
            )
    if "family" not in document:
        raise SpecError(f"{path}: no family")
    extra = set(document.get("search") or {}) - SEARCH_KEYS
    if extra:
        raise SpecError(f"{path}: search may list {sorted(SEARCH_KEYS)}, not {sorted(extra)}")
    return document


@dataclass(frozen=True)
class SearchSpace:
    """What the tuning tries: every combination of the listed parameter values and dead zones (each fitted on
    every fold), each with every threshold (cheap: thresholds only read the fit's training scores)."""

    params: Mapping[str, tuple[Any, ...]]
    dead_zones: tuple[float, ...]
    thresholds: tuple[Threshold, ...]

    def fits(self) -> list[dict[str, Any]]:
        """The overrides of each fit: one per combination of parameter values and dead zone."""
        import itertools

        names = sorted(self.params)
        combos = itertools.product(*[self.params[n] for n in names], self.dead_zones)
        return [{**dict(zip(names, values[:-1], strict=True)), "dead_zone_sd": values[-1]} for values in combos]


def search_space(document: Mapping[str, Any], spec: DetectorSpec) -> SearchSpace:
    """The spec file's `search` section, defaulting to the resolved spec's own values (a one-point space)."""
    search = document.get("search") or {}
    params = {name: tuple(values) for name, values in (search.get("params") or {}).items()}
    dead_zones = tuple(float(v) for v in search.get("dead_zone_sd") or [spec.dead_zone_sd])
    thresholds: list[Threshold] = []
    for item in search.get("threshold") or [spec.threshold.as_dict()]:
        listed = item["value"] if isinstance(item["value"], list) else [item["value"]]
        thresholds += [Threshold(ThresholdRule(item["rule"]), v) for v in listed]
    for name, values in params.items():
        if not values:
            raise SpecError(f"{spec.name}: search.params.{name} lists no value")
    return SearchSpace(params, dead_zones, tuple(thresholds))


def resolve(
    document: Mapping[str, Any],
    name: str,
    granularity: Granularity | str,
    overrides: Mapping[str, Any] | None = None,
) -> DetectorSpec:
    """The spec for one granularity: top-level values, the granularity's section over them, then the overrides
    (a family parameter by name, or seed / dead_zone_sd / threshold_rule / threshold_value). The family checks
    its parameters when it is built (taxi_anomaly.detectors.family_of(...).check_params)."""
    granularity = Granularity(granularity)
    section = (document.get("granularities") or {}).get(granularity.value) or {}
    params = {**(document.get("params") or {}), **(section.get("params") or {})}
    threshold = {**(document.get("threshold") or {}), **(section.get("threshold") or {})}
    dead_zone = section.get("dead_zone_sd", document.get("dead_zone_sd", 5.0))
    seed = document.get("seed", 42)
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key == "seed":
            seed = value
        elif key == "dead_zone_sd":
            dead_zone = value
        elif key == "threshold_rule":
            threshold["rule"] = value
        elif key == "threshold_value":
            threshold["value"] = value
        else:
            params[key] = value
    if "rule" not in threshold or "value" not in threshold:
        raise SpecError(f"{name}: threshold needs a rule and a value, got {threshold}")
    try:
        rule = ThresholdRule(threshold["rule"])
    except ValueError:
        choices = ", ".join(r.value for r in ThresholdRule)
        raise SpecError(f"{name}: threshold rule must be one of {choices}, got {threshold['rule']!r}") from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpecError(f"{name}: seed must be an integer, got {seed!r}")
    return DetectorSpec(
        name=name,
        family=str(document["family"]),
        granularity=granularity,
        params=params,
        threshold=Threshold(rule, threshold["value"]),
        dead_zone_sd=float(dead_zone),
        seed=seed,
        description=str(document.get("description") or "").strip(),
        overrides=overrides,
    )


def load_spec(
    name: str,
    granularity: Granularity | str,
    overrides: Mapping[str, Any] | None = None,
    spec_dir: Path = SPEC_DIR,
) -> DetectorSpec:
    return resolve(read_spec_file(name, spec_dir), name, granularity, overrides)
