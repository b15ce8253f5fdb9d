"""Command line: python -m taxi_anomaly.synthetic --trip-type fhvhv --month 2024-03 --out DIR [--trips N] ...

From a checkout, put plugins/ on the path first: `PYTHONPATH=plugins .venv/bin/python -m taxi_anomaly.synthetic`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from taxi_anomaly.synthetic.generator import generate_month
from taxi_anomaly.tlc import TRIP_TYPES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m taxi_anomaly.synthetic",
        description="Write a synthetic TLC month (raw TLC parquet schema) and its anomaly labels.",
    )
    parser.add_argument("--trip-type", required=True, choices=TRIP_TYPES)
    parser.add_argument("--month", required=True, help="YYYY-MM")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--trips", type=int, help="rows to write (default: a realistic month for the trip type)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", action="store_true", help="no anomaly episodes (training history)")
    parser.add_argument("--no-dirt", action="store_true", help="no out-of-month, negative, absurd or null rows")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = generate_month(
            args.trip_type,
            args.month,
            args.out,
            trips=args.trips,
            seed=args.seed,
            anomalies="none" if args.clean else "default",
            dirt=not args.no_dirt,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size_mib = result.data_path.stat().st_size / 2**20
    print(
        f"wrote {result.data_path} ({result.rows:,} rows, {size_mib:.1f} MiB) in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s)"
    )
    print(f"wrote {result.labels_path} ({len(result.episodes)} episodes)")
    print(f"wrote {result.trip_labels_path} (the faulty rows)")
    for episode in result.episodes:
        window = f"{episode.start} .. {episode.end}"
        print(f"  {episode.episode_id} {episode.type:<14} {window} x{episode.magnitude} ({episode.scope})")
    dirt = ", ".join(f"{name} {count:,}" for name, count in result.dirt.items())
    print(f"  dirt: {dirt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
