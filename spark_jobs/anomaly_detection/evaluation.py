"""How well a model version did on a month it scored: against labelled episodes where the month has them, and
calibration everywhere. One row per (version, month, run) in the model_evaluations table.

Labelled: flags are judged per (key, 30-minute bucket). A pair is under an episode when the episode covers the
bucket and the key (city: every episode; borough: city-wide episodes and those of that borough; zone: city-wide
episodes and those listing the zone). precision = flagged pairs under an episode / flagged pairs; recall = those /
pairs under an episode; an episode is found when any of its pairs is flagged. At city level a pair is a bucket.
Calibration: the flagged share against the share of its training windows the version flags, the score
distribution, and the share of windows whose every deviation lies inside the dead zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from taxi_anomaly.contract import Granularity
from taxi_anomaly.synthetic.episodes import Episode

CITY_KEY = "NYC"
BUCKET_MINUTES = 30


@dataclass(frozen=True)
class LabelledQuality:
    """Flags against labelled episodes (see the module's rules)."""

    bucket_precision: float
    bucket_recall: float
    bucket_f1: float
    episodes: int
    episodes_found: int
    flagged: int
    found: dict[str, bool] = field(default_factory=dict)
    recall_by_type: dict[str, float] = field(default_factory=dict)

    @property
    def every_episode_found(self) -> bool:
        return self.episodes_found == self.episodes

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def episode_keys(episode: Episode, granularity: Granularity | str, keys: Iterable[str]) -> set[str]:
    """The keys of `keys` an episode covers at a granularity."""
    granularity = Granularity(granularity)
    keys = set(keys)
    if granularity is Granularity.CITY or episode.scope == "city":
        return keys
    if granularity is Granularity.BOROUGH:
        return {episode.scope} & keys
    return {str(z) for z in episode.zone_ids or ()} & keys


def judge(
    flagged: Iterable[tuple[str, datetime]],
    episodes: Iterable[Episode],
    granularity: Granularity | str,
    keys: Iterable[str],
    minutes: int = BUCKET_MINUTES,
) -> LabelledQuality:
    """Flagged (key, bucket start) pairs against the episodes, over the scored keys."""
    flagged = {(str(k), _naive(b)) for k, b in flagged}
    keys = set(keys)
    covered: dict[str, set[tuple[str, datetime]]] = {}
    for episode in episodes:
        buckets = episode.bucket_starts(minutes)
        covered[episode.episode_id] = {(k, b) for k in episode_keys(episode, granularity, keys) for b in buckets}
    truth = set().union(*covered.values()) if covered else set()
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    found = {e.episode_id: bool(covered[e.episode_id] & flagged) for e in episodes}
    types = sorted({e.type for e in episodes})
    by_type = {t: float(np.mean([found[e.episode_id] for e in episodes if e.type == t])) for t in types}
    return LabelledQuality(precision, recall, f1, len(found), sum(found.values()), len(flagged), found, by_type)


def _naive(moment: Any) -> datetime:
    value = pd.Timestamp(moment).to_pydatetime()
    return value.replace(tzinfo=None)


def seasonal_zscore_baseline(
    history: pd.DataFrame, current: pd.DataFrame, threshold: float = 8.0, column: str = "trips"
) -> set[tuple[str, datetime]]:
    """The baseline every detector must beat: flag (key, bucket) whose count is more than `threshold` robust z
    from the same key, weekday and half-hour slot of the history (median, 1.4826 x MAD). Frames need `key`,
    `bucket_start` and `column`."""

    def slot_keys(frame: pd.DataFrame) -> pd.DataFrame:
        ts = pd.to_datetime(frame["bucket_start"])
        return frame.assign(weekday=ts.dt.weekday, slot=ts.dt.hour * 2 + (ts.dt.minute >= 30))

    group = ["key", "weekday", "slot"]
    stats = (
        slot_keys(history)
        .groupby(group)[column]
        .agg(median="median", mad=lambda s: float(np.median(np.abs(s - np.median(s)))))
        .reset_index()
    )
    cur = slot_keys(current).merge(stats, on=group, how="left")
    scale = np.maximum(cur["mad"] * 1.4826, 1e-9)
    z = (cur[column] - cur["median"]) / scale
    hits = cur.loc[z.abs() > threshold, ["key", "bucket_start"]]
    return {(str(k), _naive(b)) for k, b in zip(hits["key"], hits["bucket_start"], strict=True)}


def calibration(
    windows: int, anomalies: int, expected_share: float, scores: Mapping[str, float], dead_zone_windows: int
) -> dict[str, Any]:
    flagged_share = anomalies / windows if windows else 0.0
    return {
        "windows": windows,
        "anomalies": anomalies,
        "flagged_share": flagged_share,
        "expected_share": expected_share,
        "calibration_error": abs(flagged_share - expected_share),
        "score_p50": scores.get("p50"),
        "score_p90": scores.get("p90"),
        "score_p99": scores.get("p99"),
        "dead_zone_share": dead_zone_windows / windows if windows else 0.0,
    }


def month_bounds(month: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(month, "%Y-%m")
    return start, (start + timedelta(days=32)).replace(day=1)
