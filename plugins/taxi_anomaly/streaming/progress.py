"""The streaming job's progress as a Kafka consumer group, and its lag, readable by any Kafka tool.

Spark's Kafka source keeps its offsets in its checkpoint, not in Kafka. The job therefore commits the offsets
each query has processed to a consumer group of its own (`tap-streaming-<trip type>-<granularity>-<query>`)
every few seconds, with the time of the commit in the commit's metadata. The health DAG reads them back:
lag = end offsets - committed offsets, and alive = a commit younger than a bound.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import GROUP_PREFIX


def progress_group(trip_type: str, granularity: str, query: str) -> str:
    return f"{GROUP_PREFIX['streaming']}-{trip_type}-{granularity}-{query}"


def processed_offsets(progress: dict | None, topic: str) -> dict[int, int] | None:
    """partition -> next offset to read, from a streaming query's progress as JSON data (None before its first
    batch). Spark reports `endOffset` as an object, or as its JSON text in some renderings."""
    if not progress or not progress.get("sources"):
        return None
    end = progress["sources"][0].get("endOffset")
    if isinstance(end, str):
        end = json.loads(end)
    if not end or topic not in end:
        return None
    return {int(p): int(o) for p, o in end[topic].items()}


def commit_progress(settings: KafkaSettings, group: str, topic: str, offsets: dict[int, int], note: dict) -> None:
    """Commit `offsets` (partition -> next offset to read) for `group`, with `note` and the time as metadata."""
    from confluent_kafka import Consumer, TopicPartition

    metadata = json.dumps({**note, "committed_at": time.time()})
    consumer = Consumer({**settings.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(topic, p, o, metadata=metadata) for p, o in offsets.items()]
        consumer.commit(offsets=partitions, asynchronous=False)
    finally:
        consumer.close()


@dataclass(frozen=True)
class LagReport:
    group: str
    topic: str
    end_offsets: dict[int, int]
    committed: dict[int, int]
    committed_at: float | None

    @property
    def lag(self) -> int:
        return sum(max(0, end - self.committed.get(p, 0)) for p, end in self.end_offsets.items())

    def age_s(self, now: float | None = None) -> float | None:
        return None if self.committed_at is None else (now or time.time()) - self.committed_at


def read_lag(settings: KafkaSettings, group: str, topic: str, timeout: float = 15.0) -> LagReport:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
        committed, committed_at = {}, None
        for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout):
            if tp.offset >= 0:
                committed[tp.partition] = tp.offset
            if tp.metadata:
                stamp = json.loads(tp.metadata).get("committed_at")
                committed_at = max(committed_at or 0.0, float(stamp)) if stamp else committed_at
        return LagReport(group, topic, ends, committed, committed_at)
    finally:
        consumer.close()


def check_stream(report: LagReport, max_lag: int, max_silence_s: float) -> str:
    """Raise if the query is not alive (no commit for max_silence_s) or lags by more than max_lag events."""
    age = report.age_s()
    if age is None:
        raise RuntimeError(f"{report.group}: no progress ever committed: is the streaming job running?")
    if age > max_silence_s:
        raise RuntimeError(f"{report.group}: last progress {age:.0f} s ago (bound {max_silence_s:.0f} s): job down?")
    if report.lag > max_lag:
        raise RuntimeError(f"{report.group}: {report.lag} events behind {report.topic} (bound {max_lag})")
    return f"{report.group}: alive ({age:.0f} s ago), {report.lag} events behind"
