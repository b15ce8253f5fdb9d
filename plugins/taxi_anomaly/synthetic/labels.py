"""The labels file written next to a synthetic month, and the bucket helpers that score detections against it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from taxi_anomaly.synthetic.episodes import Episode
from taxi_anomaly.synthetic.timeline import SLOT_MINUTES
from taxi_anomaly.tlc import YearMonth, check_trip_type, file_name

LABELS_FORMAT = "taxi-anomaly-synthetic-labels/1"


def labels_file_name(trip_type: str, month: YearMonth) -> str:
    return file_name(check_trip_type(trip_type), month, ".labels.json")


@dataclass(frozen=True)
class Labels:
    """Everything needed to score a detector on one generated month, and to generate it again.

    :param trip_type: yellow, green, fhv or fhvhv.
    :param month: YYYY-MM.
    :param data_file: the parquet file the labels describe (same folder).
    :param seed: the generator seed.
    :param rows: rows written, dirt included.
    :param options: the generation options (anomalies, dirt shares, chunk size...).
    :param dirt: how many rows of each kind of dirt were written; dirt is never an episode.
    :param episodes: the labelled anomaly episodes, ordered by start.
    """

    trip_type: str
    month: str
    data_file: str
    seed: int
    rows: int
    options: dict
    dirt: dict[str, int]
    episodes: list[Episode] = field(default_factory=list)

    def to_json(self) -> str:
        document = {
            "format": LABELS_FORMAT,
            "trip_type": self.trip_type,
            "month": self.month,
            "data_file": self.data_file,
            "bucket_minutes": SLOT_MINUTES,
            "generation": {"seed": self.seed, "rows": self.rows, "options": self.options, "dirt": self.dirt},
            "episodes": [episode.to_json() for episode in self.episodes],
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Labels:
        document = json.loads(text)
        if document.get("format") != LABELS_FORMAT:
            raise ValueError(f"not a synthetic labels document (format {document.get('format')!r})")
        generation = document["generation"]
        return cls(
            trip_type=document["trip_type"],
            month=document["month"],
            data_file=document["data_file"],
            seed=generation["seed"],
            rows=generation["rows"],
            options=generation["options"],
            dirt=generation["dirt"],
            episodes=[Episode.from_json(item) for item in document["episodes"]],
        )


def load_labels(path: str | os.PathLike) -> Labels:
    return Labels.from_json(Path(path).read_text())


def labelled_buckets(episodes: Iterable[Episode] | Labels, minutes: int = SLOT_MINUTES) -> set[datetime]:
    """Start (tz-naive wall clock) of every `minutes`-long bucket that overlaps a labelled episode."""
    if isinstance(episodes, Labels):
        episodes = episodes.episodes
    return {start for episode in episodes for start in episode.bucket_starts(minutes)}


def episode_at(
    episodes: Iterable[Episode] | Labels, bucket_start: datetime, minutes: int = SLOT_MINUTES
) -> Episode | None:
    """The episode the bucket starting at `bucket_start` belongs to, if any (episodes never overlap)."""
    if isinstance(episodes, Labels):
        episodes = episodes.episodes
    bucket_end = bucket_start + timedelta(minutes=minutes)
    return next((e for e in episodes if e.start < bucket_end and bucket_start < e.end), None)
