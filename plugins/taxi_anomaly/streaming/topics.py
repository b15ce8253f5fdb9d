"""The stream contract: Kafka topics (partitions, retention), what each role may do on them, the event fields.

Topics are created by the project (`python -m taxi_anomaly.streaming.provision`), never auto-created. The same
names are used by the replay, the streaming job (its arguments default to them) and the Kubernetes values.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int
    retention_bytes: int  # per partition

    @property
    def configs(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "retention.bytes": str(self.retention_bytes),
            "cleanup.policy": "delete",
            "min.insync.replicas": "1",
        }


# Trips: 2 partitions, one per core of the streaming job; a week of events, at most 4 GiB a partition.
TRIPS = Topic("tap.trips", partitions=2, retention_ms=7 * DAY_MS, retention_bytes=4 << 30)
ALERTS = Topic("tap.alerts", partitions=1, retention_ms=30 * DAY_MS, retention_bytes=1 << 30)
DEAD_LETTERS = Topic("tap.dead-letters", partitions=1, retention_ms=14 * DAY_MS, retention_bytes=1 << 30)
# Every scored window, published by the windows query as it scores (no table write on the alert path) and
# written into the Iceberg tables by the job's sink query; a week, like the trips it comes from.
WINDOW_SCORES = Topic("tap.window-scores", partitions=1, retention_ms=7 * DAY_MS, retention_bytes=1 << 30)
# Per-event scoring (any event stream, e.g. KDD Cup 99 connection records): events in, one alert per anomalous
# event out; malformed events go to DEAD_LETTERS like malformed trips.
EVENTS = Topic("tap.events", partitions=2, retention_ms=7 * DAY_MS, retention_bytes=4 << 30)
EVENT_ALERTS = Topic("tap.event-alerts", partitions=1, retention_ms=30 * DAY_MS, retention_bytes=1 << 30)
TOPICS = (TRIPS, ALERTS, DEAD_LETTERS, WINDOW_SCORES, EVENTS, EVENT_ALERTS)

# The streaming job's queries and the topic each reads (its progress and lag are measured against it).
QUERY_TOPICS = {"events": TRIPS.name, "windows": TRIPS.name, "sink": WINDOW_SCORES.name}

# Consumer-group prefix of each reading role (Spark's Kafka source names its groups `<prefix>-<uuid>`).
GROUP_PREFIX = {"streaming": "tap-streaming", "reader": "tap-reader"}

# Role -> operations per topic. DESCRIBE comes with every grant (metadata and offsets lookups need it).
GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "replay": {TRIPS.name: ("WRITE",), EVENTS.name: ("WRITE",)},
    "streaming": {
        TRIPS.name: ("READ",),
        ALERTS.name: ("WRITE",),
        DEAD_LETTERS.name: ("WRITE",),
        WINDOW_SCORES.name: ("READ", "WRITE"),
        EVENTS.name: ("READ",),
        EVENT_ALERTS.name: ("WRITE",),
    },
    "reader": {topic.name: ("READ",) for topic in TOPICS},
}

# Fields of a per-event message (JSON object; the key is the event id): `record` holds the event's own fields.
SCORED_EVENT_FIELDS = ("event_id", "seq", "source", "row", "produced_at_ms", "record")

# Fields of a trip event (JSON object, one per Kafka message value; the message key is the event id).
EVENT_FIELDS = ("event_id", "seq", "trip_type", "source", "row", "produced_at_ms", "trip")
