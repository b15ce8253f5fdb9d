"""The DAGs' trigger parameters: typed, described, validated by JSON schema in the trigger form.

Every value the form accepts is checked again by nothing else: the schemas below are the contract (enums for
trip types and granularity, a YYYY-MM pattern for months, bounds for the model options). What one schema cannot
express (a month range that ends before it starts) is checked by `RunOptions.from_params`, the first thing the
DAGs' planning task does, with a message that names the parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param

from taxi_anomaly.orchestration.jobspec import DEFAULT_CONTAMINATION, DEFAULT_N_ESTIMATORS

TRIP_TYPES = ("yellow", "green", "fhv", "fhvhv")
GRANULARITIES = ("city", "borough", "zone")
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
NAMESPACE_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
PREFIX_PATTERN = r"^([a-z0-9][a-z0-9_.-]{0,62}/)?$"
# "promoted" (the pointer written by the weekly retraining), "latest" (newest trained) or a registry version.
MODEL_VERSION_PATTERN = r"^(promoted|latest|v[0-9]{8}T[0-9]{6}-[0-9a-f]{6})$"
MAX_BACKFILL_MONTHS = 36

SECTION_DATA = "What to process"
SECTION_MODEL = "Model"
SECTION_SANDBOX = "Sandbox (tests and demos; leave empty in production)"

_MONTH = re.compile(MONTH_PATTERN)


def trip_types_param(default: list[str] | None = None) -> Param:
    return Param(
        default if default is not None else ["yellow", "green", "fhv", "fhvhv"],
        type="array",
        items={"type": "string", "enum": list(TRIP_TYPES)},
        minItems=1,
        uniqueItems=True,
        title="Trip types",
        description="TLC trip record types to process: yellow, green, fhv (for-hire) and/or fhvhv (high-volume "
        "for-hire: Uber, Lyft...).",
        section=SECTION_DATA,
    )


def month_param(default: str | None, title: str, description: str, nullable: bool = False) -> Param:
    # `pattern` constrains strings only, so null stays allowed when the type lists it.
    return Param(
        default,
        type=["null", "string"] if nullable else "string",
        pattern=MONTH_PATTERN,
        title=title,
        description=f"{description} Format YYYY-MM, e.g. 2024-01.",
        section=SECTION_DATA,
    )


def granularity_param(default: str = "city") -> Param:
    return Param(
        default,
        type="string",
        enum=list(GRANULARITIES),
        title="Granularity",
        description="Spatial level of the 30-minute windows: the whole city, each borough, or each taxi zone.",
        section=SECTION_DATA,
    )


def force_download_param() -> Param:
    return Param(
        False,
        type="boolean",
        title="Force re-download",
        description="Download and check the months again even if the raw zone already has an unchanged copy.",
        section=SECTION_DATA,
    )


def model_version_param(default: str = "promoted") -> Param:
    return Param(
        default,
        type="string",
        pattern=MODEL_VERSION_PATTERN,
        title="Model version",
        description="Model to score with: 'promoted' (the version the weekly retraining promoted), 'latest' (the "
        "newest trained version) or a version name such as v20260105T060000-1a2b3c.",
        section=SECTION_MODEL,
    )


def contamination_param(default: float | None = None) -> Param:
    defaults = ", ".join(f"{g} {c}" for g, c in DEFAULT_CONTAMINATION.items())
    return Param(
        default,
        type=["null", "number"],
        exclusiveMinimum=0,
        maximum=0.2,
        title="Contamination",
        description="Share of training windows expected to be anomalous; sets the model's decision threshold. "
        f"Between 0 (exclusive) and 0.2; empty = the granularity's default ({defaults}).",
        section=SECTION_MODEL,
    )


def n_estimators_param(default: int = DEFAULT_N_ESTIMATORS) -> Param:
    return Param(
        default,
        type="integer",
        minimum=10,
        maximum=2000,
        title="Number of trees",
        description="Trees of the IsolationForest (10-2000); more trees, steadier scores, slower training.",
        section=SECTION_MODEL,
    )


def sandbox_params() -> dict[str, Param]:
    """Where a run reads and writes: production defaults; tests and the demo point them somewhere private."""
    return {
        "namespace": Param(
            "taxi",
            type="string",
            pattern=NAMESPACE_PATTERN,
            title="Iceberg namespace",
            description="Namespace of the output tables (iceberg.<namespace>.anomaly_scores...). The dashboards "
            "read 'taxi'.",
            section=SECTION_SANDBOX,
        ),
        "storage_prefix": Param(
            "",
            type="string",
            pattern=PREFIX_PATTERN,
            title="Storage key prefix",
            description="Prefix of every object key in the raw, models and reports buckets, ending with '/' "
            "(empty in production).",
            section=SECTION_SANDBOX,
        ),
        "tlc_base_url": Param(
            None,
            type=["null", "string"],
            pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
            title="TLC download base URL",
            description="Where the monthly files are downloaded from; empty = Airflow Variable tap_tlc_base_url, "
            "else the TLC's CDN. The local mirror is http://127.0.0.1:<port>.",
            section=SECTION_SANDBOX,
        ),
    }


def backfill_params() -> dict[str, Param]:
    return {
        "trip_types": trip_types_param(["green"]),
        "first_month": month_param("2024-01", "First month", "First month of the range to process (inclusive)."),
        "last_month": month_param("2024-01", "Last month", "Last month of the range to process (inclusive)."),
        "granularity": granularity_param(),
        "score": Param(
            True,
            type="boolean",
            title="Score the months",
            description="Run the anomaly job on the months after they landed. Off: only download, check and "
            "validate (e.g. to load the history a first training needs).",
            section=SECTION_DATA,
        ),
        "force_download": force_download_param(),
        "model_version": model_version_param(),
        **sandbox_params(),
    }


def daily_params() -> dict[str, Param]:
    return {
        "trip_types": trip_types_param(),
        "lookback_months": Param(
            4,
            type="integer",
            minimum=1,
            maximum=12,
            title="Months to look back",
            description="How many months before the current one to check for newly published files (the TLC "
            "publishes a month about two months after its end).",
            section=SECTION_DATA,
        ),
        "force_download": force_download_param(),
        **sandbox_params(),
    }


def scoring_params() -> dict[str, Param]:
    return {
        "granularity": granularity_param(),
        "model_version": model_version_param(),
        **sandbox_params(),
    }


def retrain_params() -> dict[str, Param]:
    return {
        "trip_types": trip_types_param(),
        "granularity": granularity_param(),
        "holdout_month": month_param(
            None,
            "Evaluation month",
            "Month the candidate and the promoted model are compared on; empty = the newest landed month. The "
            "model trains on the landed months just before it.",
            nullable=True,
        ),
        "train_window_months": Param(
            3,
            type="integer",
            minimum=1,
            maximum=24,
            title="Training window (months)",
            description="How many landed months before the evaluation month to train on (1-24).",
            section=SECTION_MODEL,
        ),
        "contamination": contamination_param(),
        "n_estimators": n_estimators_param(),
        "tolerance": Param(
            0.002,
            type="number",
            minimum=0,
            maximum=0.05,
            title="Promotion tolerance",
            description="The candidate is promoted if its calibration error on the evaluation month is at most "
            "the promoted model's plus this (0-0.05).",
            section=SECTION_MODEL,
        ),
        **sandbox_params(),
    }


@dataclass(frozen=True)
class Sandbox:
    """Where a run reads and writes (production: namespace taxi, no prefix, the TLC's CDN or the Variable)."""

    namespace: str = "taxi"
    storage_prefix: str = ""
    tlc_base_url: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Sandbox:
        return cls(
            namespace=params.get("namespace") or "taxi",
            storage_prefix=params.get("storage_prefix") or "",
            tlc_base_url=params.get("tlc_base_url") or None,
        )


def check_month_range(first: str, last: str) -> list[str]:
    """The months first..last; raises ValueError naming the parameters if the range is wrong."""
    for name, value in (("first_month", first), ("last_month", last)):
        if not isinstance(value, str) or not _MONTH.match(value):
            raise ValueError(f"{name} must be a month as YYYY-MM, got {value!r}")
    if last < first:
        raise ValueError(f"last_month ({last}) is before first_month ({first}): swap them")
    months = [first]
    while months[-1] < last:
        year, month = map(int, months[-1].split("-"))
        months.append(f"{year + month // 12:04d}-{month % 12 + 1:02d}")
    if len(months) > MAX_BACKFILL_MONTHS:
        raise ValueError(
            f"the range {first}..{last} has {len(months)} months; at most {MAX_BACKFILL_MONTHS} per run "
            "(trigger several runs)"
        )
    return months
