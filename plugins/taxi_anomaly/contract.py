"""The anomaly job's contract, stated once: fields, modes, granularities, bounds, defaults and the argv round trip.

One `AnomalyJob` describes a run of spark_jobs/run_anomaly_detection.py. The orchestration builds it and hands
`to_argv()` to spark-submit, or `template_params()` to include/spark/sparkapplication.yaml (whose `arguments:`
is that same list); the job reads it back with `AnomalyJob.from_argv`; the DAGs' trigger forms take their JSON
schemas from `json_schema`. Nothing here imports pyspark, pandas or numpy: the Airflow side imports it at parse
time.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar

from taxi_anomaly.tlc import TRIP_TYPES

__all__ = ["TRIP_TYPES", "AnomalyJob", "ContractError", "Granularity", "InputLayout", "Mode"]


class Mode(StrEnum):
    """What a run does: fit a new model version, score months with an existing one, both (train, then score the
    score months with the version just trained), or tune a detector's spec on labelled months (train_months:
    every month to fold over; each labelled one is scored by a model trained on the history_months before it)."""

    TRAIN = "train"
    SCORE = "score"
    TRAIN_AND_SCORE = "train-and-score"
    TUNE = "tune"

    @property
    def trains(self) -> bool:
        return self in (Mode.TRAIN, Mode.TRAIN_AND_SCORE)

    @property
    def scores(self) -> bool:
        return self in (Mode.SCORE, Mode.TRAIN_AND_SCORE)


class Granularity(StrEnum):
    """Spatial key of the 30-minute windows: the whole city, each borough, or each taxi zone."""

    CITY = "city"
    BOROUGH = "borough"
    ZONE = "zone"


class InputLayout(StrEnum):
    """How raw months are found under raw_uri: the raw zone's partitioned keys, or a flat folder of TLC files."""

    PARTITIONED = "partitioned"
    FLAT = "flat"


# Patterns every entry checks (trigger forms, asset events, the job's argv): the same expressions everywhere.
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
# Lower-case SQL identifier: safe to place unquoted in Spark, Trino and Hive statements.
NAMESPACE_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
# A registry version name (UTC creation time + random suffix), see taxi_anomaly.layout.new_version_name.
VERSION_PATTERN = r"^v[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$"
# What a scoring request may name: the promotion pointer, the newest version, or a version.
VERSION_REF_PATTERN = r"^(promoted|latest|v[0-9]{8}T[0-9]{6}-[0-9a-f]{6})$"
# A model spec name (include/models/<name>.yaml).
DETECTOR_PATTERN = r"^[a-z][a-z0-9_]{0,40}$"
# Airflow run ids (manual__2026-01-05T06:00:00+00:00, scheduled__..., a uuid): printable, no spaces or quotes.
RUN_ID_PATTERN = r"^[A-Za-z0-9_.:+\-]{1,250}$"
# URIs the job reads and writes: a Hadoop filesystem scheme and no whitespace.
URI_PATTERN = r"^(s3a|s3|hdfs|file|gs|abfss?)://[^\s'\"]+$"

DEFAULT_NAMESPACE = "taxi"
DEFAULT_DETECTOR = "isolation_forest"


class ContractError(ValueError):
    """A job description that cannot run; the message names the parameter and what is wrong."""


def _check(name: str, value: str, pattern: str, what: str) -> None:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise ContractError(f"{name} must be {what}, got {value!r}")


def check_month(name: str, value: str) -> str:
    _check(name, value, MONTH_PATTERN, "a month as YYYY-MM (2009 onwards)")
    return value


def check_namespace(value: str, name: str = "namespace") -> str:
    _check(name, value, NAMESPACE_PATTERN, "a lower-case identifier (letters, digits, _; at most 63)")
    return value


def check_months(name: str, values: Sequence[str]) -> tuple[str, ...]:
    """Sorted, without repeats; every element checked."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    return tuple(sorted({check_month(name, v.strip()) for v in values}))


def _schema(**schema: Any) -> dict[str, Any]:
    return schema


@dataclass(frozen=True)
class AnomalyJob:
    """One run of the anomaly-detection job. Every field is validated on construction (ContractError).

    :param trip_type: yellow, green, fhv or fhvhv.
    :param granularity: city, borough or zone.
    :param mode: train, score or train-and-score.
    :param train_months: months to train on (train modes), YYYY-MM.
    :param score_months: months to score (score modes), YYYY-MM.
    :param raw_uri: raw zone root, e.g. s3a://tap-raw/tlc (see taxi_anomaly.layout).
    :param models_uri: model registry root, e.g. s3a://tap-models/registry.
    :param namespace: Iceberg namespace of the output tables.
    :param run_id: recorded with every output row (the Airflow run id; a new uuid if the command line has none).
    :param model_version: version to score with: 'latest' or a version name ('promoted' is resolved before).
    :param detector: the model spec to train (include/models/<name>.yaml).
    :param detector_params: overrides of the spec's parameters for this run, checked by the detector family.
    :param zones_uri: taxi_zone_lookup.csv; required for borough granularity.
    :param labels_uri: root of the labelled episodes (taxi_anomaly.layout); a scored month with a labels file there
        is evaluated against it.
    :param evaluations_namespace: Iceberg namespace of the model_evaluations table (default: namespace).
    :param history_months: tune mode: months of history each scored month's model trains on.
    :param max_trials: tune mode: at most this many parameter combinations (a random subset of a larger grid).
    :param input_layout: partitioned (the raw zone) or flat (a folder of TLC files).
    :param write_trips: also write the normalised trips table.
    """

    trip_type: str
    raw_uri: str
    models_uri: str
    run_id: str
    granularity: Granularity = Granularity.CITY
    mode: Mode = Mode.TRAIN_AND_SCORE
    train_months: tuple[str, ...] = ()
    score_months: tuple[str, ...] = ()
    namespace: str = DEFAULT_NAMESPACE
    model_version: str = "latest"
    detector: str = DEFAULT_DETECTOR
    detector_params: Mapping[str, Any] = field(default_factory=dict)
    zones_uri: str | None = None
    labels_uri: str | None = None
    evaluations_namespace: str | None = None
    history_months: int = 3
    max_trials: int = 24
    input_layout: InputLayout = InputLayout.PARTITIONED
    write_trips: bool = False

    # The argv flag and JSON schema of each field (Airflow Params take their type, pattern, enum and bounds).
    SCHEMAS: ClassVar[dict[str, dict[str, Any]]] = {
        "trip_type": _schema(type="string", enum=list(TRIP_TYPES)),
        "granularity": _schema(type="string", enum=[g.value for g in Granularity]),
        "mode": _schema(type="string", enum=[m.value for m in Mode]),
        "train_months": _schema(type="array", items={"type": "string", "pattern": MONTH_PATTERN}),
        "score_months": _schema(type="array", items={"type": "string", "pattern": MONTH_PATTERN}),
        "raw_uri": _schema(type="string", pattern=URI_PATTERN),
        "models_uri": _schema(type="string", pattern=URI_PATTERN),
        "run_id": _schema(type="string", pattern=RUN_ID_PATTERN),
        "namespace": _schema(type="string", pattern=NAMESPACE_PATTERN),
        "model_version": _schema(type="string", pattern=VERSION_REF_PATTERN),
        "detector": _schema(type="string", pattern=DETECTOR_PATTERN),
        "detector_params": _schema(type="object"),
        "zones_uri": _schema(type=["null", "string"], pattern=URI_PATTERN),
        "labels_uri": _schema(type=["null", "string"], pattern=URI_PATTERN),
        "evaluations_namespace": _schema(type=["null", "string"], pattern=NAMESPACE_PATTERN),
        "history_months": _schema(type="integer", minimum=1, maximum=12),
        "max_trials": _schema(type="integer", minimum=1, maximum=500),
        "input_layout": _schema(type="string", enum=[x.value for x in InputLayout]),
        "write_trips": _schema(type="boolean"),
    }

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.trip_type not in TRIP_TYPES:
            raise ContractError(f"trip_type must be one of {', '.join(TRIP_TYPES)}, got {self.trip_type!r}")
        set_(self, "granularity", _member(Granularity, "granularity", self.granularity))
        set_(self, "mode", _member(Mode, "mode", self.mode))
        set_(self, "input_layout", _member(InputLayout, "input_layout", self.input_layout))
        set_(self, "train_months", check_months("train_months", self.train_months))
        set_(self, "score_months", check_months("score_months", self.score_months))
        for name in ("raw_uri", "models_uri"):
            _check(name, getattr(self, name), URI_PATTERN, "a URI such as s3a://bucket/path")
        for name in ("zones_uri", "labels_uri"):
            if getattr(self, name) is not None:
                _check(name, getattr(self, name), URI_PATTERN, "a URI such as s3a://bucket/path")
        if self.evaluations_namespace is not None:
            check_namespace(self.evaluations_namespace, "evaluations_namespace")
        _check("run_id", self.run_id, RUN_ID_PATTERN, "a run id without spaces or quotes")
        check_namespace(self.namespace)
        if self.model_version == "promoted":
            raise ContractError("model_version 'promoted' must be resolved to a version before building the job")
        _check("model_version", self.model_version, VERSION_REF_PATTERN, "'latest' or a version name")
        _check("detector", self.detector, DETECTOR_PATTERN, "a model spec name (include/models/<name>.yaml)")
        if not isinstance(self.detector_params, Mapping) or not all(isinstance(k, str) for k in self.detector_params):
            raise ContractError(f"detector_params must be an object of named values, got {self.detector_params!r}")
        set_(self, "detector_params", dict(self.detector_params))
        mode = self.mode
        if mode.trains and not self.train_months:
            raise ContractError(f"mode {mode} needs train_months")
        if mode.scores and not self.score_months:
            raise ContractError(f"mode {mode} needs score_months")
        if mode is Mode.TRAIN_AND_SCORE and set(self.train_months) & set(self.score_months):
            raise ContractError("train_months and score_months overlap: train on past months, score new ones")
        for name in ("history_months", "max_trials"):
            value, schema = getattr(self, name), self.SCHEMAS[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not schema["minimum"] <= value <= schema["maximum"]
            ):
                raise ContractError(
                    f"{name} must be an integer from {schema['minimum']} to {schema['maximum']}, got {value!r}"
                )
        if mode is Mode.TUNE:
            if len(self.train_months) <= self.history_months:
                raise ContractError(
                    f"mode tune needs more train_months than history_months ({self.history_months}): each scored "
                    f"month trains on the months before it; got {len(self.train_months)}"
                )
            if not self.labels_uri:
                raise ContractError("mode tune needs labels_uri: the labelled episodes it scores trials against")
        if self.granularity is Granularity.BOROUGH and not self.zones_uri:
            raise ContractError("granularity borough needs zones_uri (the taxi zone lookup)")

    # The command line ---------------------------------------------------------------------------------------
    def to_argv(self) -> list[str]:
        """The job's command-line arguments: one `--flag value` per field that is not at its default."""
        argv: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default
            if f.name not in ALWAYS_ON_ARGV and value == default:
                continue
            flag = _flag(f.name)
            if isinstance(value, bool):
                argv += [flag] if value else []
            elif isinstance(value, tuple):
                argv += [flag, ",".join(value)]
            elif isinstance(value, Mapping):
                argv += [flag, json.dumps(value, sort_keys=True, separators=(",", ":"))]
            else:
                argv += [flag, str(value)]
        return argv

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="run_anomaly_detection", description="TLC window anomaly detection")
        for f in fields(cls):
            schema = cls.SCHEMAS[f.name]
            kwargs: dict[str, Any] = {"help": _help(f.name), "dest": f.name}
            if schema["type"] == "boolean":
                kwargs["action"] = "store_true"
            elif schema["type"] == "object":
                kwargs["type"] = _json_object
            elif schema["type"] == "integer":
                kwargs["type"] = int
            if "enum" in schema:
                kwargs["choices"] = schema["enum"]
            if f.name in REQUIRED_ON_ARGV:
                kwargs["required"] = True
            p.add_argument(_flag(f.name), **kwargs)
        return p

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> AnomalyJob:
        """Parse and validate; a wrong argument exits with status 2 and a message that names it."""
        parser = cls.parser()
        namespace = parser.parse_args(list(argv))
        given = {k: v for k, v in vars(namespace).items() if v is not None and v is not False}
        if namespace.write_trips:
            given["write_trips"] = True
        given.setdefault("run_id", uuid.uuid4().hex)  # a run by hand gets an id of its own
        try:
            return cls(**given)
        except ContractError as err:
            parser.error(str(err))
            raise  # unreachable: parser.error exits

    # Other views --------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"tap-anomaly-{self.trip_type}-{self.granularity}-{self.mode}"

    @property
    def evaluations_in(self) -> str:
        return self.evaluations_namespace or self.namespace

    def with_(self, **changes: Any) -> AnomalyJob:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: enums as their values, months as lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        document: dict[str, Any] = json.loads(json.dumps(out))
        return document

    def template_params(self, sizing: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What include/spark/sparkapplication.yaml renders from: the argument list and the labels' values."""
        return {
            "arguments": self.to_argv(),
            "trip_type": self.trip_type,
            "granularity": str(self.granularity),
            "mode": str(self.mode),
            **(sizing or {}),
        }


# Fields that always appear on the command line (no sensible default in the job itself).
REQUIRED_ON_ARGV = ("trip_type", "raw_uri", "models_uri")
ALWAYS_ON_ARGV = (*REQUIRED_ON_ARGV, "run_id", "granularity", "mode")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(name: str) -> str:
    """The field's line of AnomalyJob's docstring (one description, used by --help and the trigger forms)."""
    doc = AnomalyJob.__doc__ or ""
    match = re.search(rf":param {name}: (.+)", doc)
    return match.group(1).strip() if match else name


def field_description(name: str) -> str:
    return _help(name)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _member(enum: type[StrEnum], name: str, value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise ContractError(f"{name} must be one of {choices}, got {value!r}") from None


def json_schema(name: str) -> dict[str, Any]:
    """The JSON schema of one job field (for Airflow Params), a copy the caller may change."""
    schema: dict[str, Any] = json.loads(json.dumps(AnomalyJob.SCHEMAS[name]))
    return schema
