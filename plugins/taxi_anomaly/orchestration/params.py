"""The DAGs' trigger parameters: typed, described, validated by JSON schema in the trigger form.

The schemas come from the job contract (taxi_anomaly.contract: enums, patterns) and the model specs (the
detector choices). The form is not the only entry: a run conf sent to the REST API with the form's checks
skipped, or an asset event's extra, reach the tasks too, so the planning tasks check every value again with the
same rules (`Sandbox`, `check_month_range`, the contract), naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param

from taxi_anomaly import contract
from taxi_anomaly.contract import DEFAULT_DETECTOR, DEFAULT_NAMESPACE, Granularity, json_schema
from taxi_anomaly.tlc import TRIP_TYPES

GRANULARITIES = tuple(g.value for g in Granularity)
MONTH_PATTERN = contract.MONTH_PATTERN
NAMESPACE_PATTERN = contract.NAMESPACE_PATTERN
PREFIX_PATTERN = r"^([a-z0-9][a-z0-9_.-]{0,62}/)?$"
BASE_URL_PATTERN = r"^https?://[^\s/]+(/[^\s]*)?$"
MAX_BACKFILL_MONTHS = 36

SECTION_DATA = "What to process"
SECTION_MODEL = "Model"
SECTION_SANDBOX = "Sandbox (tests and demos; leave empty in production)"


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
        **json_schema("granularity"),
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
        **json_schema("model_version"),
        title="Model version",
        description="Model to score with: 'promoted' (the version the weekly retraining promoted), 'latest' (the "
        "newest trained version) or a version name such as v20260105T060000-1a2b3c.",
        section=SECTION_MODEL,
    )


def detector_params() -> dict[str, Param]:
    """The model spec to train (include/models/*.yaml, read when the DAG file is parsed) and run-time overrides."""
    from taxi_anomaly.detectors.spec import spec_names

    return {
        "detector": Param(
            DEFAULT_DETECTOR,
            type="string",
            enum=spec_names(),
            title="Detector",
            description="Model spec to train (include/models/<name>.yaml: family, parameters per granularity, dead "
            "zone, seed, threshold rule). docs/detectors.md describes each.",
            section=SECTION_MODEL,
        ),
        "detector_params": Param(
            {},
            **json_schema("detector_params"),
            title="Detector overrides",
            description='Overrides of the spec for this run, e.g. {"n_estimators": 200} or {"threshold_rule": '
            '"tail", "threshold_value": 1.0}: a parameter of the spec\'s family, or seed, dead_zone_sd, '
            "threshold_rule, threshold_value. Checked against the family's bounds before Spark starts.",
            section=SECTION_MODEL,
        ),
    }


def sandbox_params() -> dict[str, Param]:
    """Where a run reads and writes: production defaults; tests and the demo point them somewhere private."""
    return {
        "namespace": Param(
            DEFAULT_NAMESPACE,
            **json_schema("namespace"),
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
            pattern=BASE_URL_PATTERN,
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
        **detector_params(),
        "tolerance": Param(
            0.002,
            type="number",
            minimum=0,
            maximum=0.05,
            title="Promotion tolerance",
            description="The candidate is promoted if its score on the evaluation month is at most this much "
            "worse than the promoted model's (bucket F1 where labels exist, else calibration error; 0-0.05).",
            section=SECTION_MODEL,
        ),
        **sandbox_params(),
    }


def tuning_params() -> dict[str, Param]:
    return {
        "trip_type": Param(
            "fhvhv",
            **json_schema("trip_type"),
            title="Trip type",
            description="The trip type whose labelled months the detector is tuned on.",
            section=SECTION_DATA,
        ),
        "first_month": month_param("2024-01", "First month", "First month to fold over (history included)."),
        "last_month": month_param("2024-06", "Last month", "Last month to fold over (inclusive)."),
        "granularity": granularity_param(),
        **detector_params(),
        "history_months": Param(
            3,
            **json_schema("history_months"),
            title="History (months)",
            description="Each labelled month is scored by a model trained on this many months just before it.",
            section=SECTION_MODEL,
        ),
        "max_trials": Param(
            24,
            **json_schema("max_trials"),
            title="Trials at most",
            description="(fit, threshold) pairs to try; a larger search space is sampled at random (seeded).",
            section=SECTION_MODEL,
        ),
        **sandbox_params(),
    }


@dataclass(frozen=True)
class Sandbox:
    """Where a run reads and writes (production: namespace taxi, no prefix, the TLC's CDN or the Variable).

    Every entry builds it (trigger params, asset-event extras, the REST API's confs all pass through
    `from_params`), and it checks each value with the trigger form's own patterns: a value the form would
    refuse is refused here too, naming the parameter (the form is not the only way in).
    """

    namespace: str = DEFAULT_NAMESPACE
    storage_prefix: str = ""
    tlc_base_url: str | None = None

    def __post_init__(self) -> None:
        contract.check_namespace(self.namespace)
        if not isinstance(self.storage_prefix, str) or not re.fullmatch(PREFIX_PATTERN, self.storage_prefix):
            raise ValueError(
                f"storage_prefix must be empty or a lower-case name ending with '/', got {self.storage_prefix!r}"
            )
        if self.tlc_base_url is not None and (
            not isinstance(self.tlc_base_url, str) or not re.fullmatch(BASE_URL_PATTERN, self.tlc_base_url)
        ):
            raise ValueError(f"tlc_base_url must be an http(s) URL, got {self.tlc_base_url!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Sandbox:
        return cls(
            namespace=params.get("namespace") or DEFAULT_NAMESPACE,
            storage_prefix=params.get("storage_prefix") or "",
            tlc_base_url=params.get("tlc_base_url") or None,
        )


def check_month_range(first: str, last: str) -> list[str]:
    """The months first..last; raises ValueError naming the parameters if the range is wrong."""
    for name, value in (("first_month", first), ("last_month", last)):
        contract.check_month(name, value)
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
