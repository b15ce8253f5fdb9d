"""Synthetic TLC months in the real raw schema, with labelled anomaly episodes to measure detection against.

`generate_month` writes `{trip_type}_tripdata_{YYYY-MM}.parquet`, `{...}.labels.json` and
`{...}.trip_labels.parquet`; `load_labels`, `labelled_buckets` and `episode_at` turn the labels into the 30-minute
buckets detections are scored on; `load_trip_labels` and `score_trip_faults` score per-trip detections.
Command line: `python -m taxi_anomaly.synthetic --help`.
"""

from taxi_anomaly.synthetic.dirt import FAULT_KINDS, TRIP_FAULTS, TRIP_FEATURE_FAULTS, DirtOptions
from taxi_anomaly.synthetic.episodes import EPISODE_KINDS, EPISODE_TYPES, Episode, EpisodeRequest
from taxi_anomaly.synthetic.generator import OBSERVABLE_TYPES, GenerationResult, generate_month
from taxi_anomaly.synthetic.labels import (
    Labels,
    episode_at,
    faulty_rows,
    labelled_buckets,
    labels_file_name,
    load_labels,
    load_trip_labels,
    score_trip_faults,
    trip_labels_file_name,
)
from taxi_anomaly.synthetic.plan import DEFAULT_CHUNK_ROWS
from taxi_anomaly.synthetic.schemas import DISTANCE_COLUMN, FARE_COLUMN, PICKUP_COLUMN, TLC_SCHEMAS

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DISTANCE_COLUMN",
    "EPISODE_KINDS",
    "EPISODE_TYPES",
    "FARE_COLUMN",
    "FAULT_KINDS",
    "TRIP_FAULTS",
    "OBSERVABLE_TYPES",
    "PICKUP_COLUMN",
    "TLC_SCHEMAS",
    "TRIP_FEATURE_FAULTS",
    "DirtOptions",
    "Episode",
    "EpisodeRequest",
    "GenerationResult",
    "Labels",
    "episode_at",
    "faulty_rows",
    "generate_month",
    "labelled_buckets",
    "labels_file_name",
    "load_labels",
    "load_trip_labels",
    "score_trip_faults",
    "trip_labels_file_name",
]
