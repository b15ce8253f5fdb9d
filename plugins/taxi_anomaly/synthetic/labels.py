"""The labels written next to a synthetic month (episodes and dirt counts; the faulty rows), and the helpers that
score detections against them: by 30-minute bucket (episodes) or by row (trip faults)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from taxi_anomaly.synthetic.dirt import FAULT_KINDS, TRIP_FEATURE_FAULTS
from taxi_anomaly.synthetic.episodes import Episode
from taxi_anomaly.synthetic.timeline import SLOT_MINUTES
from taxi_anomaly.tlc import YearMonth, check_trip_type, file_name

LABELS_FORMAT = "taxi-anomaly-synthetic-labels/1"


TRIP_LABEL_COLUMNS = ("row", "fault")  # the trip labels: row index in the month's parquet file, its fault kind


def labels_file_name(trip_type: str, month: YearMonth) -> str:
    return file_name(check_trip_type(trip_type), month, ".labels.json")


def trip_labels_file_name(trip_type: str, month: YearMonth) -> str:
    return file_name(check_trip_type(trip_type), month, ".trip_labels.parquet")


def trip_labels_table(chunks: Iterable[tuple[int, dict[str, np.ndarray]]]) -> pa.Table:
    """The trip labels: one row per (faulty row, fault kind), ordered by row then FAULT_KINDS order.

    :param chunks: (first row of the chunk in the file, fault kind -> the chunk's row indices) per chunk.
    """
    rows, codes = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int8)]
    for first_row, faults in chunks:
        for kind, chunk_rows in faults.items():
            rows.append(np.asarray(chunk_rows, dtype=np.int64) + first_row)
            codes.append(np.full(len(chunk_rows), FAULT_KINDS.index(kind), dtype=np.int8))
    row, code = np.concatenate(rows), np.concatenate(codes)
    order = np.lexsort((code, row))
    fault = pa.DictionaryArray.from_arrays(pa.array(code[order]), pa.array(FAULT_KINDS, pa.string()))
    return pa.table({"row": pa.array(row[order]), "fault": fault})


def load_trip_labels(path: str | os.PathLike) -> pd.DataFrame:
    """The labelled rows of a month: `row` (index in its parquet file, int64) and `fault` (a FAULT_KINDS name);
    a row carrying two kinds appears twice."""
    import pyarrow.parquet as pq

    frame = pq.read_table(path).to_pandas()
    if list(frame.columns) != list(TRIP_LABEL_COLUMNS):
        raise ValueError(f"{path}: not trip labels (columns {list(frame.columns)}, expected {TRIP_LABEL_COLUMNS})")
    frame["fault"] = frame["fault"].astype(str)
    return frame


def faulty_rows(labels: pd.DataFrame, rows: int, kinds: Iterable[str] = TRIP_FEATURE_FAULTS) -> np.ndarray:
    """A boolean per row of the month: it carries one of `kinds` (by default those per-trip features can see)."""
    kinds = list(kinds)
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"kinds: {', '.join(unknown)} not in FAULT_KINDS")
    faulty = np.zeros(rows, dtype=bool)
    faulty[labels["row"].to_numpy()[labels["fault"].isin(kinds).to_numpy()]] = True
    return faulty


def score_trip_faults(labels: pd.DataFrame, flagged: np.ndarray | pd.Series) -> dict[str, object]:
    """Per-trip detections against the trip labels. Positives: rows carrying a TRIP_FEATURE_FAULTS kind; every
    other row (stray pickups and null blocks included) is a negative. Precision, recall, F1, the share of
    negatives flagged, recall per fault kind (for every kind labelled, whether features can see it or not), counts.

    :param flagged: one boolean per row of the month, in file order.
    """
    flagged = np.asarray(flagged, dtype=bool)
    faulty = faulty_rows(labels, len(flagged))
    true_positives = int(np.sum(flagged & faulty))
    precision = true_positives / int(flagged.sum()) if flagged.any() else 0.0
    recall = true_positives / int(faulty.sum()) if faulty.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    by_kind = labels.groupby("fault")["row"]
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "negatives_flagged_share": float(flagged[~faulty].mean()) if (~faulty).any() else 0.0,
        "recall_by_fault": {
            kind: float(flagged[rows.to_numpy()].mean()) for kind, rows in by_kind if kind in FAULT_KINDS
        },
        "counts": {
            "rows": len(flagged),
            "faulty": int(faulty.sum()),
            "flagged": int(flagged.sum()),
            "true_positives": true_positives,
            "false_positives": int(np.sum(flagged & ~faulty)),
            "by_fault": {str(kind): int(len(rows)) for kind, rows in by_kind},
        },
    }


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
