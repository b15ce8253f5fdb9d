"""Replay KDD Cup 99 connection records into the events topic, one JSON event per record, throttled by a token
bucket (the IoT system's generator, with a rate of our choosing).

An event: a deterministic event id (source and row, so a second replay of the same rows carries the same ids),
a sequence number, the source and row, the production time (wall clock, ms) and `record`, the row's 41 features
(the label stays out: it is what the detectors are measured against).

    python -m taxi_anomaly.streaming.event_replay --rate 5000 --limit 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from taxi_anomaly import kdd
from taxi_anomaly.streaming.replay import ReplayStats, TokenBucket, event_id, producer_for
from taxi_anomaly.streaming.settings import KafkaSettings
from taxi_anomaly.streaming.topics import EVENTS


def kdd_events(frame: Any, source: str, rows: Sequence[int] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event id, event) of each row of a read_kdd frame (or of `rows`, positions in it), in order; the caller
    stamps produced_at_ms."""
    numeric = frame[list(kdd.NUMERIC)].to_numpy(dtype="float64").tolist()
    symbolic = frame[list(kdd.SYMBOLIC)].to_numpy(dtype=object).tolist()
    positions = range(len(frame)) if rows is None else rows
    for seq, position in enumerate(positions):
        record = dict(zip(kdd.NUMERIC, numeric[position], strict=True))
        record.update(zip(kdd.SYMBOLIC, symbolic[position], strict=True))
        row = int(frame.index[position])
        yield (
            event_id(source, row),
            {"event_id": event_id(source, row), "seq": seq, "source": source, "row": row, "record": record},
        )


def prepared_events(events: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, bytes]]:
    """(event id, the event's JSON up to its production time): serialised before the clock runs, completed by
    replay_events with `<ms>}` as it hands each event to the producer."""
    for eid, event in events:
        event.pop("produced_at_ms", None)
        yield eid, orjson.dumps(event)[:-1] + b',"produced_at_ms":'


def replay_events(
    events: Iterable[tuple[str, bytes]],
    producer: Any,
    topic: str = EVENTS.name,
    rate: float | None = None,
    limit: int | None = None,
    on_produced: Callable[[str, float], None] | None = None,
) -> ReplayStats:
    """Produce `events` (from prepared_events) to `topic` at most `rate` a second (confluent-kafka Producer),
    stamping each with its production time; `on_produced(event id, wall time)` is called as each is handed to the
    producer. Returns once every event is acknowledged."""
    stats = ReplayStats()
    bucket = TokenBucket(rate) if rate else None

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            stats.failed += 1
            if len(stats.errors) < 10:
                stats.errors.append(str(err))

    for eid, head in events:
        if limit is not None and stats.produced >= limit:
            break
        if bucket is not None:
            pause = bucket.wait_time()
            if pause:
                time.sleep(pause)
        now = time.time()
        payload = head + str(int(now * 1000)).encode() + b"}"
        while True:
            try:
                producer.produce(topic, key=eid.encode(), value=payload, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
        if on_produced is not None:
            on_produced(eid, now)
        stats.produced += 1
        if stats.produced % 500 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        stats.failed += remaining
        stats.errors.append(f"{remaining} events not acknowledged within 60 s")
    stats.passes = 1
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxi_anomaly.streaming.event_replay", description=__doc__)
    parser.add_argument("--file", help="the KDD Cup 99 10%% file (default: the shared data directory's)")
    parser.add_argument("--topic", default=EVENTS.name)
    parser.add_argument("--rate", type=float, help="events per second (token bucket); default: as fast as possible")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    parser.add_argument("--first-row", type=int, default=0, help="start at this row of the file")
    args = parser.parse_args(argv)
    path = args.file or str(kdd.default_file())
    try:
        frame = kdd.read_kdd(path)
    except (OSError, ValueError) as exc:
        print(f"event replay: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    rows = range(min(args.first_row, len(frame)), len(frame))
    producer = producer_for(KafkaSettings.for_role("replay"))
    print(f"event replay: {len(rows):,} records from {path} to {args.topic}", file=sys.stderr)
    source = Path(path).name  # ids do not depend on where the file is
    events = prepared_events(kdd_events(frame, source, rows))
    stats = replay_events(events, producer, args.topic, rate=args.rate, limit=args.limit)
    print(f"event replay: {stats.produced:,} events produced ({stats.rate:,.0f}/s)", file=sys.stderr)
    if stats.failed:
        print(f"event replay: {stats.failed} events failed: {stats.errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
