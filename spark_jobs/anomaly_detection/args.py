"""Command-line arguments of the anomaly-detection job, parsed into a typed, validated JobArgs."""

from __future__ import annotations

import argparse
import re
import uuid
from dataclasses import dataclass

from anomaly_detection.windows import GRANULARITIES

TRIP_TYPES = ("yellow", "green", "fhv", "fhvhv")
MODES = ("train", "score", "train-and-score")
# Contamination by granularity: the share of windows expected under an incident. City-wide, 0.03 is about the
# labelled share in generated months. Most incidents touch one borough or a few zones, so a finer key is under an
# incident in fewer of its windows. Measured, before the model's dead zone, on generated months with borough-wide
# episodes (bench/README.md): borough, 0.03 flagged 6x more windows than were under an incident (precision
# 0.15), 0.01 gave 0.72-0.76 with every episode found; zone (15 M trips a month), 0.004 gave 0.76 with every
# episode found, 0.005 0.68.
# 100 trees is scikit-learn's default (scores are steady well before; scoring cost grows linearly with trees).
DEFAULT_CONTAMINATION = {"city": 0.03, "borough": 0.01, "zone": 0.004}
DEFAULT_N_ESTIMATORS = 100
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class JobArgs:
    trip_type: str
    granularity: str
    mode: str
    train_months: tuple[str, ...]
    score_months: tuple[str, ...]
    raw_uri: str
    models_uri: str
    namespace: str
    model_version: str = "latest"
    contamination: float | None = None  # None: DEFAULT_CONTAMINATION of the granularity
    n_estimators: int = DEFAULT_N_ESTIMATORS
    run_id: str = ""
    input_layout: str = "partitioned"
    zones_uri: str | None = None
    write_trips: bool = False

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}")
        if self.contamination is None:
            object.__setattr__(self, "contamination", DEFAULT_CONTAMINATION[self.granularity])

    def raw_path(self, month: str) -> str:
        """Where a month's raw file is: the raw zone's partitioned layout, or a flat directory of TLC files."""
        name = f"{self.trip_type}_tripdata_{month}.parquet"
        if self.input_layout == "flat":
            return f"{self.raw_uri.rstrip('/')}/{name}"
        year, mm = month.split("-")
        return f"{self.raw_uri.rstrip('/')}/{self.trip_type}/year={year}/month={mm}/{name}"


def _months(value: str) -> tuple[str, ...]:
    months = tuple(m.strip() for m in value.split(",") if m.strip())
    bad = [m for m in months if not _MONTH.match(m)]
    if bad:
        raise argparse.ArgumentTypeError(f"months must be YYYY-MM, comma separated; got {', '.join(bad)}")
    return tuple(sorted(set(months)))


def _contamination(value: str) -> float:
    number = float(value)
    if not 0 < number < 0.5:
        raise argparse.ArgumentTypeError(f"contamination must be in (0, 0.5), got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_anomaly_detection", description="TLC window anomaly detection")
    p.add_argument("--trip-type", required=True, choices=TRIP_TYPES)
    p.add_argument("--granularity", default="city", choices=GRANULARITIES)
    p.add_argument("--mode", default="train-and-score", choices=MODES)
    p.add_argument("--train-months", type=_months, default=(), help="YYYY-MM,... to train on (train modes)")
    p.add_argument("--score-months", type=_months, default=(), help="YYYY-MM,... to score (score modes)")
    p.add_argument("--raw-uri", required=True, help="raw zone root, e.g. s3a://tap-raw/tlc")
    p.add_argument("--models-uri", required=True, help="model registry root, e.g. s3a://tap-models/isolation-forest")
    p.add_argument("--namespace", default="taxi", help="Iceberg namespace of the output tables")
    p.add_argument("--model-version", default="latest", help="version to score with (score mode)")
    p.add_argument(
        "--contamination",
        type=_contamination,
        default=None,
        help="share of training windows above the decision threshold (default by granularity: "
        + ", ".join(f"{g} {c}" for g, c in DEFAULT_CONTAMINATION.items())
        + ")",
    )
    p.add_argument("--n-estimators", type=int, default=DEFAULT_N_ESTIMATORS, help="trees of the IsolationForest")
    p.add_argument("--run-id", default="", help="recorded with every output row (default: a new uuid)")
    p.add_argument("--input-layout", default="partitioned", choices=("partitioned", "flat"))
    p.add_argument("--zones-uri", default=None, help="taxi_zone_lookup.csv (needed for borough granularity)")
    p.add_argument("--write-trips", action="store_true", help="also write the normalised trips table")
    return p


def parse_args(argv: list[str]) -> JobArgs:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.mode in ("train", "train-and-score") and not ns.train_months:
        parser.error(f"--train-months is required with --mode {ns.mode}")
    if ns.mode in ("score", "train-and-score") and not ns.score_months:
        parser.error(f"--score-months is required with --mode {ns.mode}")
    if ns.mode == "train-and-score" and set(ns.train_months) & set(ns.score_months):
        parser.error("--train-months and --score-months overlap: train on past months, score new ones")
    if ns.n_estimators < 10:
        parser.error(f"--n-estimators must be at least 10, got {ns.n_estimators}")
    if ns.granularity == "borough" and not ns.zones_uri:
        parser.error("--zones-uri is required with --granularity borough")
    return JobArgs(
        trip_type=ns.trip_type,
        granularity=ns.granularity,
        mode=ns.mode,
        train_months=ns.train_months,
        score_months=ns.score_months,
        raw_uri=ns.raw_uri,
        models_uri=ns.models_uri,
        namespace=ns.namespace,
        model_version=ns.model_version,
        contamination=ns.contamination,
        n_estimators=ns.n_estimators,
        run_id=ns.run_id or uuid.uuid4().hex,
        input_layout=ns.input_layout,
        zones_uri=ns.zones_uri,
        write_trips=ns.write_trips,
    )
