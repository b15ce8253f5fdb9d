"""Benchmark of the synthetic TLC generator: one fhvhv-sized month → rows/s, wall time, file size, peak RSS.

    .venv/bin/python bench/bench_generator.py [--trips 15000000] [--trip-type fhvhv] [--month 2024-03]

The month is written to a temporary folder and deleted afterwards. Results go to bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trip-type", default="fhvhv")
    parser.add_argument("--month", default="2024-03")
    parser.add_argument("--trips", type=int, default=15_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT / "plugins"))
    from taxi_anomaly.synthetic import generate_month

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as folder:
        cpu_started, started = time.process_time(), time.perf_counter()
        result = generate_month(args.trip_type, args.month, folder, trips=args.trips, seed=args.seed)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        size = result.data_path.stat().st_size
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    print(f"| trip type, month | {args.trip_type} {args.month} (seed {args.seed}) |")
    print("| --- | --- |")
    print(f"| rows | {result.rows:,} |")
    print(f"| wall time | {wall:.1f} s |")
    print(f"| throughput | {result.rows / wall:,.0f} rows/s |")
    print(f"| CPU time (both threads) | {cpu:.1f} s ({cpu / wall:.2f} cores busy) |")
    print(f"| file size | {size / 2**20:,.1f} MiB ({size / result.rows:.1f} bytes/row) |")
    print(f"| peak RSS | {peak_rss_mib:,.0f} MiB |")
    print(f"| episodes | {len(result.episodes)} |")
    print(f"| 1-min load average before | {load_before:.2f} on {os.cpu_count()} cores |")


if __name__ == "__main__":
    main()
