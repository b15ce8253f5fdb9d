"""What the DAGs' tasks hand each other, typed: one frozen dataclass per chain, filled in task by task.

A month goes download -> checks -> model -> Spark -> tables -> record as one `MonthRun` (each task returns a copy
with its own fields set); a retraining goes plan -> candidate -> incumbent -> decision as one `Retraining`. XCom
carries them as JSON (`to_xcom`), so the UI shows them and no class has to be allowed for deserialisation;
`from_xcom` rebuilds and re-checks them (a Sandbox checks its values, the contract checks months and modes).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any, Self

from taxi_anomaly import contract
from taxi_anomaly.contract import DEFAULT_DETECTOR, Granularity
from taxi_anomaly.orchestration.params import Sandbox


class Payload:
    """to_xcom / from_xcom for the dataclasses below (nested dataclasses, tuples, enums)."""

    def to_xcom(self) -> dict[str, Any]:
        document: dict[str, Any] = _dump(self)
        return document

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any] | Self) -> Self:
        if isinstance(data, cls):
            return data
        loaded: Self = _load(cls, data)
        return loaded

    @classmethod
    def all_from_xcom(cls, value: Any) -> list[Self]:
        """The payloads of a task inside a mapped task group, as a task after the group receives them: Airflow
        hands over None when no instance pushed one, the value itself when one did, a list when several did."""
        if value is None:
            return []
        if isinstance(value, (Mapping, cls)):
            return [cls.from_xcom(value)]
        return [cls.from_xcom(item) for item in value if item]

    def with_(self, **changes: Any) -> Self:
        return replace(self, **changes)  # type: ignore[type-var]


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _dump(v) for k, v in value.items()}
    return value


def _load(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _load(options[0], value) if len(options) == 1 else value
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise ValueError(f"{kind.__name__}: expected an object, got {value!r}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in fields(kind)}
        return kind(**{k: _load(hints[k], v) for k, v in value.items() if k in names})
    if origin is tuple:
        (item, *_rest) = typing.get_args(kind) or (Any,)
        return tuple(_load(item, v) for v in value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    return value


@dataclass(frozen=True)
class MonthRun(Payload):
    """One (trip type, month) through the pipeline; the fields after `granularity` are set by later tasks.

    :param trip_type: yellow, green, fhv or fhvhv.
    :param month: YYYY-MM.
    :param sandbox: where the run reads and writes.
    :param granularity: window key the month is scored at.
    :param status: the ingestion outcome (landed, skipped_unchanged, quarantined, not_published).
    :param message: what the ingestion said.
    :param file_name: the source file's name.
    :param url: where it was downloaded from.
    :param key: the landed (or quarantined) object key.
    :param reason: why a file was quarantined.
    :param warnings: soft validation findings.
    :param rows: rows of the landed file.
    :param sha256: digest of the landed bytes (a month is scored again only if it changes).
    :param official_rows: rows of the TLC listing, if it knows the file.
    :param validation: the Great Expectations summary (suite, passed, report).
    :param quarantine: the quarantine report's summary.
    :param model_version: the version the month is scored with.
    :param run_id: the Airflow run that scored it.
    :param backend: where Spark ran (local, kubernetes).
    :param tables: rows and snapshots of the job's tables, as the catalog reports them.
    :param windows: windows Trino reads for the month.
    :param anomalies: flagged windows Trino reads.
    :param top: the month's top anomalies, one line each.
    """

    trip_type: str
    month: str
    sandbox: Sandbox = field(default_factory=Sandbox)
    granularity: Granularity = Granularity.CITY
    status: str | None = None
    message: str | None = None
    file_name: str | None = None
    url: str | None = None
    key: str | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    rows: int | None = None
    sha256: str | None = None
    official_rows: int | None = None
    validation: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None
    model_version: str | None = None
    run_id: str | None = None
    backend: str | None = None
    tables: dict[str, Any] | None = None
    windows: int | None = None
    anomalies: int | None = None
    top: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        contract.check_month("month", self.month)
        if self.trip_type not in contract.TRIP_TYPES:
            raise ValueError(f"trip_type must be one of {', '.join(contract.TRIP_TYPES)}, got {self.trip_type!r}")
        object.__setattr__(self, "granularity", Granularity(self.granularity))

    @property
    def label(self) -> str:
        return f"{self.trip_type} {self.month}"


@dataclass(frozen=True)
class Retraining(Payload):
    """One (trip type, granularity) through the weekly retraining.

    :param trip_type: yellow, green, fhv or fhvhv.
    :param granularity: window key of the model.
    :param sandbox: where the run reads and writes.
    :param train_months: landed months the candidate trains on.
    :param holdout_month: the month candidate and incumbent are compared on.
    :param incumbent: the promoted version when the run started (None: nothing promoted yet).
    :param detector: the candidate's model spec.
    :param detector_params: overrides of the spec.
    :param candidate: the version the candidate training saved.
    :param incumbent_scored: whether the incumbent scored the holdout month.
    """

    trip_type: str
    granularity: Granularity
    sandbox: Sandbox
    train_months: tuple[str, ...]
    holdout_month: str
    incumbent: str | None = None
    detector: str = DEFAULT_DETECTOR
    detector_params: dict[str, Any] = field(default_factory=dict)
    candidate: str | None = None
    incumbent_scored: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "granularity", Granularity(self.granularity))
        object.__setattr__(self, "train_months", contract.check_months("train_months", self.train_months))
        contract.check_month("holdout_month", self.holdout_month)

    @property
    def label(self) -> str:
        return f"{self.trip_type} {self.granularity}"
