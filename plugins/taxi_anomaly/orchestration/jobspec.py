"""One description of a Spark anomaly-job run, and the one function that turns it into the job's arguments.

Both backends start the same entry file (spark_jobs/run_anomaly_detection.py) with the same arguments: the
local one passes `job_arguments(job)` to spark-submit, the Kubernetes one renders
include/spark/sparkapplication.yaml from `template_params(job)`, whose `arguments:` list is the same list in
the same order (tests/dags/test_orchestration_units.py renders the template and compares).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The job's own defaults (anomaly_detection.args, a different image); the trigger forms offer the same.
DEFAULT_CONTAMINATION = {"city": 0.03, "borough": 0.01, "zone": 0.004}
DEFAULT_N_ESTIMATORS = 100

MODES = ("train", "score", "train-and-score")
MODELS_ROOT = "isolation-forest"


@dataclass(frozen=True)
class Locations:
    """Where the data is, from the Airflow connection tap_s3 (bucket names in its extra) and a key prefix.

    :param raw_bucket: raw zone bucket (TLC files, manifests, validation reports).
    :param models_bucket: model registry bucket (versions and the promoted pointer).
    :param reports_bucket: run records and evaluation reports.
    :param prefix: prepended to every key ('' in production, 'name/' in tests and demos).
    :param raw_root: the raw zone's root as Spark reads it (the connection's extra `raw_root`): s3a://{raw_bucket}
        by default, hdfs://namenode:port/{raw_bucket} when the raw zone is in HDFS.
    """

    raw_bucket: str = "tap-raw"
    models_bucket: str = "tap-models"
    reports_bucket: str = "tap-reports"
    prefix: str = ""
    raw_root: str = ""

    def __post_init__(self) -> None:
        if self.prefix and not self.prefix.endswith("/"):
            raise ValueError(f"a key prefix must end with '/', got {self.prefix!r}")

    @classmethod
    def from_connection(cls, conn: Any, prefix: str = "") -> Locations:
        extra = getattr(conn, "extra_dejson", None) or {}
        defaults = cls()
        return cls(
            raw_bucket=extra.get("raw_bucket", defaults.raw_bucket),
            models_bucket=extra.get("models_bucket", defaults.models_bucket),
            reports_bucket=extra.get("reports_bucket", defaults.reports_bucket),
            prefix=prefix,
            raw_root=extra.get("raw_root", ""),
        )

    @property
    def raw_uri(self) -> str:
        return f"{self.raw_root or f's3a://{self.raw_bucket}'}/{self.prefix}tlc"

    @property
    def models_uri(self) -> str:
        return f"s3a://{self.models_bucket}/{self.prefix}{MODELS_ROOT}"

    @property
    def zones_uri(self) -> str:
        return f"{self.raw_uri}/misc/taxi_zone_lookup.csv"

    def models_key(self, trip_type: str, granularity: str, *parts: str) -> str:
        """Key in the models bucket under the registry root, e.g. (yellow, city, 'promoted.json')."""
        return "/".join([f"{self.prefix}{MODELS_ROOT}", trip_type, granularity, *parts])

    def report_key(self, *parts: str) -> str:
        return "/".join([f"{self.prefix}pipeline", *parts])


@dataclass(frozen=True)
class SparkJob:
    """The arguments of one run of the anomaly job (see spark_jobs/anomaly_detection/args.py for each).

    :param trip_type: yellow, green, fhv or fhvhv.
    :param granularity: city, borough or zone.
    :param mode: train, score or train-and-score.
    :param score_months: months to score (score modes).
    :param train_months: months to train on (train modes).
    :param raw_uri: raw zone root, e.g. s3a://tap-raw/tlc.
    :param models_uri: model registry root.
    :param namespace: Iceberg namespace of the output tables.
    :param run_id: recorded with every output row; the Airflow run id, as the Kubernetes template renders it.
    :param model_version: version to score with (a registry name or 'latest'; never 'promoted', resolve first).
    :param contamination: share of training windows above the threshold (None: the granularity's default).
    :param n_estimators: trees of the IsolationForest.
    :param zones_uri: taxi_zone_lookup.csv; required for borough granularity.
    :param input_layout: 'partitioned' (the raw zone) or 'flat'.
    :param write_trips: also write the normalised trips table.
    """

    trip_type: str
    granularity: str
    mode: str
    score_months: tuple[str, ...]
    train_months: tuple[str, ...]
    raw_uri: str
    models_uri: str
    namespace: str
    run_id: str
    model_version: str = "latest"
    contamination: float | None = None
    n_estimators: int = DEFAULT_N_ESTIMATORS
    zones_uri: str | None = None
    input_layout: str | None = None
    write_trips: bool = False
    sizing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.granularity not in DEFAULT_CONTAMINATION:
            raise ValueError(f"granularity must be one of {', '.join(DEFAULT_CONTAMINATION)}, got {self.granularity!r}")
        if self.model_version == "promoted":
            raise ValueError("model_version 'promoted' must be resolved to a version before building the job")
        if self.mode != "train" and not self.score_months:
            raise ValueError(f"mode {self.mode} needs score_months")
        if self.mode != "score" and not self.train_months:
            raise ValueError(f"mode {self.mode} needs train_months")
        if self.granularity == "borough" and not self.zones_uri:
            raise ValueError("granularity borough needs zones_uri (the taxi zone lookup)")
        if self.contamination is None:
            object.__setattr__(self, "contamination", DEFAULT_CONTAMINATION[self.granularity])

    @classmethod
    def build(cls, locations: Locations, **fields: Any) -> SparkJob:
        """A job reading and writing where `locations` says (borough jobs get the zone lookup)."""
        fields.setdefault("raw_uri", locations.raw_uri)
        fields.setdefault("models_uri", locations.models_uri)
        if fields.get("granularity") == "borough":
            fields.setdefault("zones_uri", locations.zones_uri)
        for name in ("score_months", "train_months"):
            fields[name] = tuple(sorted(set(fields.get(name) or ())))
        return cls(**fields)

    def with_(self, **changes: Any) -> SparkJob:
        return replace(self, **changes)

    @property
    def name(self) -> str:
        return f"tap-anomaly-{self.trip_type}-{self.granularity}-{self.mode}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_arguments(job: SparkJob) -> list[str]:
    """The job's command-line arguments, in the order include/spark/sparkapplication.yaml writes them."""
    args = [
        "--trip-type",
        job.trip_type,
        "--score-months",
        ",".join(job.score_months),
        "--train-months",
        ",".join(job.train_months),
        "--granularity",
        job.granularity,
        "--mode",
        job.mode,
        "--model-version",
        job.model_version,
        "--contamination",
        str(job.contamination),
        "--n-estimators",
        str(job.n_estimators),
        "--run-id",
        job.run_id,
        "--raw-uri",
        job.raw_uri,
        "--models-uri",
        job.models_uri,
        "--namespace",
        job.namespace,
    ]
    if job.zones_uri:
        args += ["--zones-uri", job.zones_uri]
    if job.input_layout:
        args += ["--input-layout", job.input_layout]
    if job.write_trips:
        args.append("--write-trips")
    return args


def template_params(job: SparkJob) -> dict[str, Any]:
    """The `params` include/spark/sparkapplication.yaml renders the same arguments from (run id: the context's)."""
    params: dict[str, Any] = {
        "trip_type": job.trip_type,
        "score_months": ",".join(job.score_months),
        "train_months": ",".join(job.train_months),
        "granularity": job.granularity,
        "mode": job.mode,
        "model_version": job.model_version,
        "contamination": job.contamination,
        "n_estimators": job.n_estimators,
        "raw_uri": job.raw_uri,
        "models_uri": job.models_uri,
        "namespace": job.namespace,
        "zones_uri": job.zones_uri,
        "input_layout": job.input_layout,
        "write_trips": job.write_trips,
    }
    params.update(job.sizing)
    return params
