"""Detection quality against labelled episodes, and the seasonal robust z-score baseline to compare with.

Windows are judged as 30-minute buckets: bucket precision = flagged buckets inside an episode / flagged buckets;
an episode is found when at least one of its buckets is flagged (episode recall).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Episode:
    episode_id: str
    kind: str
    start: datetime
    end: datetime  # exclusive

    def buckets(self, minutes: int = 30) -> set[datetime]:
        out, bucket = set(), self.start
        while bucket < self.end:
            out.add(bucket)
            bucket += timedelta(minutes=minutes)
        return out


@dataclass(frozen=True)
class Quality:
    bucket_precision: float
    bucket_recall: float
    bucket_f1: float
    episode_recall: float
    flagged: int
    episodes_found: dict[str, bool]
    recall_by_kind: dict[str, float]

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def evaluate(flagged: set[datetime], episodes: list[Episode], minutes: int = 30) -> Quality:
    truth = set().union(*(e.buckets(minutes) for e in episodes)) if episodes else set()
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    found = {e.episode_id: bool(e.buckets(minutes) & flagged) for e in episodes}
    kinds = sorted({e.kind for e in episodes})
    by_kind = {k: float(np.mean([found[e.episode_id] for e in episodes if e.kind == k])) for k in kinds}
    episode_recall = float(np.mean(list(found.values()))) if found else 0.0
    return Quality(precision, recall, f1, episode_recall, len(flagged), found, by_kind)


def seasonal_zscore_baseline(
    history: pd.DataFrame, current: pd.DataFrame, threshold: float = 3.5, column: str = "trips"
) -> set[datetime]:
    """Flag buckets whose count is more than `threshold` robust z away from the same weekday + half-hour slot
    of the history (median / 1.4826·MAD). Frames need `bucket_start` and `column`."""

    def slot_keys(frame: pd.DataFrame) -> pd.DataFrame:
        ts = pd.to_datetime(frame["bucket_start"])
        return frame.assign(weekday=ts.dt.weekday, slot=ts.dt.hour * 2 + (ts.dt.minute >= 30))

    hist = slot_keys(history)
    stats = (
        hist.groupby(["weekday", "slot"])[column]
        .agg(median="median", mad=lambda s: float(np.median(np.abs(s - np.median(s)))))
        .reset_index()
    )
    cur = slot_keys(current).merge(stats, on=["weekday", "slot"], how="left")
    scale = np.maximum(cur["mad"] * 1.4826, 1e-9)
    z = (cur[column] - cur["median"]) / scale
    return set(pd.to_datetime(cur.loc[z.abs() > threshold, "bucket_start"]).astype(object))
