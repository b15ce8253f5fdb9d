"""Replay a month of trips from the raw zone (or a local file) into the trips topic, in pickup-time order.

Each trip becomes one JSON event (topics.EVENT_FIELDS): a deterministic event id (the source and row, so a
second replay of the same file produces the same ids and the stream drops them as duplicates), a sequence
number, the source file and row, the production time, and the row itself (`trip`, column name in lower case ->
value, timestamps as New York wall-clock text). Pacing: a speed-up factor (event time per wall time) and/or a
token-bucket rate in events/s; one pass or a loop (each further pass shifted by whole weeks, with ids of its own).

    python -m taxi_anomaly.streaming.replay --trip-type fhvhv --month 2024-03 --rate 5000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import TRIPS

CHUNK_ROWS = 20_000
WEEK = timedelta(days=7)
# acks=all + idempotence make retries safe. Measured on this 2-core machine (2026-12-02, 200 k fhvhv events,
# lz4, acks=all): linger 5 ms 28.9 k events/s acknowledged, 20 ms 26.9 k/s, 100 ms 26.1 k/s; the replay's own
# Python (row to JSON) tops out near 30 k/s without a broker, so batching beyond a few ms buys nothing.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.size": 512 * 1024,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 200_000,
}


class ReplayError(ValueError):
    """A source that cannot be replayed; the message names it and says why."""


def pickup_column(names: list[str]) -> str:
    """The pickup timestamp column of any TLC file (tpep_/lpep_/plain pickup_datetime, Trip_Pickup_DateTime)."""
    found = [n for n in names if n.lower().endswith("pickup_datetime")]
    if not found:
        raise ReplayError(f"no pickup timestamp column (…pickup_datetime) among {names}")
    return found[0]


def event_id(source: str, row: int, loop_pass: int = 0) -> str:
    return hashlib.blake2b(f"{source}#{row}#{loop_pass}".encode(), digest_size=12).hexdigest()


@dataclass
class ReplayStats:
    produced: int = 0
    failed: int = 0
    passes: int = 0
    started: float = field(default_factory=time.monotonic)
    errors: list[str] = field(default_factory=list)
    # (pickup text, wall-clock time of production) every `mark_every` events, for latency measurements.
    marks: list[tuple[str, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.produced / max(time.monotonic() - self.started, 1e-9)


class TokenBucket:
    """At most `rate` events a second on average, bursts of up to `burst` events."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 events/s, got {rate}")
        self.rate, self.capacity, self.clock = rate, burst or max(rate / 10, 1.0), clock
        self.tokens, self.last = self.capacity, clock()

    def wait_time(self, n: int = 1) -> float:
        """Take n tokens; return how long the caller must sleep first (0 if they were there)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        return max(0.0, -self.tokens / self.rate)


def read_table(source: str, s3: Any | None = None):
    """A month's file as an Arrow table sorted by pickup: a local path, or s3://bucket/key through `s3`."""
    import pyarrow.parquet as pq

    if source.startswith("s3://"):
        if s3 is None:
            raise ReplayError(f"{source}: an s3:// source needs the object store settings (tap_s3)")
        bucket, _, key = source.removeprefix("s3://").partition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(key).name
            try:
                s3.download(bucket, key, local)
            except Exception as exc:
                raise ReplayError(f"{source}: cannot download ({type(exc).__name__}: {exc})") from exc
            return read_table(str(local))
    try:
        table = pq.read_table(source)
    except Exception as exc:
        raise ReplayError(f"{source}: cannot read as parquet ({type(exc).__name__}: {exc})") from exc
    pickup = pickup_column(table.column_names)
    return table.sort_by([(pickup, "ascending")])


def _text_columns(table, shift: timedelta):
    """Timestamps as wall-clock text, YYYY-MM-DD HH:MM:SS.ffffff (shifted by `shift`); other columns unchanged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            if shift:
                column = pc.add(column, pa.scalar(shift, pa.duration(column.type.unit)))
            column = pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def trip_events(
    table,
    trip_type: str,
    source: str,
    first_seq: int = 0,
    loop_pass: int = 0,
    shift: timedelta = timedelta(0),
    first_row: int = 0,
) -> Iterator[tuple[str, int, dict[str, Any], Any]]:
    """(event id, seq, event, pickup text) for every row, in the table's (pickup) order. `first_row`: the row
    number of the table's first row in the source (when replaying a slice of it)."""
    pickup = pickup_column(table.column_names).lower()
    seq = first_seq
    for start in range(0, table.num_rows, CHUNK_ROWS):
        chunk = _text_columns(table.slice(start, CHUNK_ROWS), shift)
        names = [name.lower() for name in chunk.column_names]
        rows = (dict(zip(names, values, strict=True)) for values in zip(*chunk.to_pydict().values(), strict=True))
        for offset, row in enumerate(rows):
            index = first_row + start + offset
            eid = event_id(source, index, loop_pass)
            event = {
                "event_id": eid,
                "seq": seq,
                "trip_type": trip_type,
                "source": source,
                "row": index,
                "produced_at_ms": 0,
                "trip": row,
            }
            yield eid, seq, event, row[pickup]
            seq += 1


def replay(
    table,
    producer: Any,
    trip_type: str,
    source: str,
    topic: str = TRIPS.name,
    rate: float | None = None,
    speedup: float | None = None,
    loop: bool = False,
    limit: int | None = None,
    progress: Callable[[ReplayStats], None] | None = None,
    progress_every_s: float = 5.0,
    first_row: int = 0,
    mark_every: int = 0,
    first_pass: int = 0,
) -> ReplayStats:
    """Produce the table's events to `topic` (confluent-kafka Producer); return counts once every one is acked."""
    from datetime import datetime

    stats = ReplayStats()
    bucket = TokenBucket(rate) if rate else None
    span = _span(table)
    next_report = time.monotonic() + progress_every_s

    def delivered(err, _msg) -> None:
        if err is not None:
            stats.failed += 1
            if len(stats.errors) < 10:
                stats.errors.append(str(err))

    loop_pass = first_pass
    while True:
        shift = WEEK * (loop_pass * max(1, -(-span // WEEK))) if loop_pass else timedelta(0)
        first_pickup = None
        wall_start = time.monotonic()
        for eid, _seq, event, pickup in trip_events(
            table, trip_type, source, stats.produced, loop_pass, shift, first_row
        ):
            if limit is not None and stats.produced >= limit:
                break
            if speedup and pickup is not None:
                moment = datetime.fromisoformat(pickup)
                first_pickup = first_pickup or moment
                ahead = (moment - first_pickup).total_seconds() / speedup - (time.monotonic() - wall_start)
                if ahead > 0:
                    time.sleep(ahead)
            if bucket is not None:
                pause = bucket.wait_time()
                if pause:
                    time.sleep(pause)
            now = time.time()
            event["produced_at_ms"] = int(now * 1000)
            if mark_every and stats.produced % mark_every == 0:
                stats.marks.append((pickup, now))
            payload = orjson.dumps(event, default=str)
            while True:
                try:
                    producer.produce(topic, key=eid.encode(), value=payload, on_delivery=delivered)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.05)
            stats.produced += 1
            if stats.produced % 1000 == 0:  # serve delivery reports in bulk, not after every event
                producer.poll(0)
            if progress and time.monotonic() >= next_report:
                progress(stats)
                next_report = time.monotonic() + progress_every_s
        stats.passes += 1
        loop_pass += 1
        if not loop or (limit is not None and stats.produced >= limit):
            break
    remaining = producer.flush(60)
    if remaining:
        stats.failed += remaining
        stats.errors.append(f"{remaining} events not acknowledged within 60 s")
    if progress:
        progress(stats)
    return stats


def _span(table) -> timedelta:
    import pyarrow.compute as pc

    pickup = table.column(pickup_column(table.column_names))
    low, high = pc.min(pickup).as_py(), pc.max(pickup).as_py()
    return (high - low) if low is not None and high is not None else timedelta(days=28)


def producer_for(settings: KafkaSettings, **overrides: Any):
    from confluent_kafka import Producer

    return Producer({**settings.client_config(), **PRODUCER_DEFAULTS, **overrides})


def _print_progress(stats: ReplayStats) -> None:
    print(
        f"replay: {stats.produced:,} events produced ({stats.rate:,.0f}/s), {stats.failed} failed, "
        f"pass {stats.passes + 1}",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxi_anomaly.streaming.replay", description=__doc__)
    parser.add_argument("--trip-type", required=True, choices=["yellow", "green", "fhv", "fhvhv"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--month", help="YYYY-MM: the landed file of that month in the raw zone (tap_s3)")
    where.add_argument("--file", help="a local parquet file or s3://bucket/key")
    parser.add_argument("--topic", default=TRIPS.name)
    parser.add_argument("--rate", type=float, help="events per second (token bucket); default: as fast as possible")
    parser.add_argument("--speedup", type=float, help="event time per wall time, e.g. 4464 = a month in 10 minutes")
    parser.add_argument("--loop", action="store_true", help="replay forever, each pass shifted by whole weeks")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    args = parser.parse_args(argv)

    s3 = None
    source = args.file
    if args.month or (source or "").startswith("s3://"):
        from taxi_anomaly import layout, tlc
        from taxi_anomaly.ingest.settings import S3Settings
        from taxi_anomaly.ingest.storage import ObjectStore

        s3 = ObjectStore(S3Settings.from_env())
        if args.month:
            raw_bucket = json.loads(os.environ["AIRFLOW_CONN_TAP_S3"])["extra"]["raw_bucket"]
            source = f"s3://{raw_bucket}/{layout.raw_key(args.trip_type, tlc.YearMonth.parse(args.month))}"
    try:
        table = read_table(source, s3)
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    producer = producer_for(KafkaSettings.for_role("replay"))
    print(f"replay: {table.num_rows:,} trips from {source} to {args.topic}", file=sys.stderr)
    stats = replay(
        table,
        producer,
        args.trip_type,
        source,
        args.topic,
        rate=args.rate,
        speedup=args.speedup,
        loop=args.loop,
        limit=args.limit,
        progress=_print_progress,
    )
    if stats.failed:
        print(f"replay: {stats.failed} events failed: {stats.errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
