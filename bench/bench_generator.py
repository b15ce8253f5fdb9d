"""Benchmark of the synthetic TLC generator: one fhvhv-sized month → rows/s, CPU per row, file size, peak RSS.

    .venv/bin/python bench/bench_generator.py [--trips 15000000] [--trip-type fhvhv] [--month 2024-03] [--runs 1]

The month is written to a temporary folder and deleted afterwards. Results go to bench/README.md by hand.

The machine is often shared, so besides the wall clock the CPU time is reported, split into drawing (numpy, worker
thread) and encoding (pyarrow, calling thread); both release the GIL and overlap. With two free cores a run takes
about max(encode, (draw + encode) / 2) CPU seconds: that estimate is printed as "2 free cores" (not a measurement).
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
    parser.add_argument("--runs", type=int, default=1, help="generate the month this many times, one row each")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT / "plugins"))
    from taxi_anomaly.synthetic import generate_month

    print(f"{args.trip_type} {args.month}, seed {args.seed}, {args.trips:,} rows, {os.cpu_count()} cores")
    print()
    print(
        "| load (1 min) before | wall | rows/s | CPU µs/row (draw + encode) | cores busy | 2 free cores (estimate) "
        "| bytes/row | peak RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for _ in range(args.runs):
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="bench-generator-") as folder:
            cpu_started, started = time.process_time(), time.perf_counter()
            result = generate_month(args.trip_type, args.month, folder, trips=args.trips, seed=args.seed)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            size = result.data_path.stat().st_size
        peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        rows = result.rows
        draw, encode = result.draw_cpu_seconds, result.encode_cpu_seconds
        two_cores = max(encode, (draw + encode) / 2)
        print(
            f"| {load_before:.2f} | {wall:.1f} s | {rows / wall:,.0f} "
            f"| {cpu / rows * 1e6:.2f} ({draw / rows * 1e6:.2f} + {encode / rows * 1e6:.2f}) "
            f"| {cpu / wall:.2f} | {rows / two_cores:,.0f} rows/s | {size / rows:.1f} | {peak_rss_mib:,.0f} MiB |"
        )


if __name__ == "__main__":
    main()
