"""Benchmark of month validation: `validate_file` on an fhvhv-shaped month beside a bare scan of the same file.

An fhvhv-shaped parquet month (all 24 canonical columns, plausible values, --rows rows, 20 M by default: a real
fhvhv month holds 12-20 M) is written once; then, each in a fresh process so that time and peak memory are its own:
- floor: a bare pyarrow scan of every column, batch by batch, with a null count per column (what any check of
  every row must at least pay);
- import: `import great_expectations` alone (what a task pays before validating);
- validation: `validate_file` with the fhvhv suite, default settings (1 M-row chunks), imports included (what the
  ingest task pays per month; it must not import GX);
- data docs: the Data Docs page rendered from that result JSON, GX import included (what the render_data_docs task
  pays once per DAG run).

    PYTHONPATH=plugins:. .venv/bin/python -m bench.bench_validation [--rows 20000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = """
import sys, time, resource
import pyarrow.parquet as pq
started = time.perf_counter()
nulls = 0
for batch in pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=1_000_000):
    nulls += sum(column.null_count for column in batch.columns)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
IMPORT = """
import time, resource
started = time.perf_counter()
import great_expectations
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
VALIDATE = """
import sys, time, resource
from pathlib import Path
started = time.perf_counter()
from taxi_anomaly.ingest.settings import IngestSettings, S3Settings
from taxi_anomaly.ingest.validation import validate_file
from taxi_anomaly.tlc import YearMonth
settings = IngestSettings(S3Settings("http://127.0.0.1:9"), metadata_dir=None)
report = validate_file(Path(sys.argv[1]), "fhvhv", YearMonth(2024, 3), settings)
assert report.passed, report.describe_failures()
assert not any(m.startswith("great_expectations") for m in sys.modules), "validation imported GX"
elapsed = time.perf_counter() - started
import json
Path(sys.argv[1]).with_suffix(".json").write_text(json.dumps(report.result))
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, report.chunks)
"""
RENDER = """
import json, sys, time, resource
from pathlib import Path
started = time.perf_counter()
from taxi_anomaly.ingest.data_docs import render_page
page = render_page(json.loads(Path(sys.argv[1]).with_suffix(".json").read_text()))
assert "tlc_fhvhv" in page
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def write_month(path: Path, rows: int) -> None:
    """An fhvhv month of `rows` rows with every canonical column, in 1 M-row row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taxi_anomaly.ingest.schema import canonical_schema

    schema = canonical_schema("fhvhv")
    rng = np.random.default_rng(1)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            request = np.datetime64("2024-03-01") + rng.integers(0, 31 * 86_400 * 10**6, n).astype("timedelta64[us]")
            pickup = request + rng.integers(60, 600, n).astype("timedelta64[s]")
            seconds = rng.integers(60, 3_600, n)
            columns = {
                "hvfhs_license_num": rng.choice(["HV0003", "HV0005"], n),
                "dispatching_base_num": rng.choice(["B03404", "B03406"], n),
                "originating_base_num": rng.choice(["B03404", "B03406"], n),
                "request_datetime": request,
                "on_scene_datetime": pickup,
                "pickup_datetime": pickup,
                "dropoff_datetime": pickup + seconds.astype("timedelta64[s]"),
                "PULocationID": rng.integers(1, 266, n).astype("int32"),
                "DOLocationID": rng.integers(1, 266, n).astype("int32"),
                "trip_miles": rng.exponential(4, n),
                "trip_time": seconds,
                "cbd_congestion_fee": np.zeros(n),
            }
            for money in ("base_passenger_fare", "tolls", "bcf", "sales_tax", "congestion_surcharge", "airport_fee",
                          "tips", "driver_pay"):  # fmt: skip
                columns[money] = rng.exponential(10, n)
            for flag in ("shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag",
                         "wav_match_flag"):  # fmt: skip
                columns[flag] = rng.choice(["N", "Y"], n, p=[0.95, 0.05])
            writer.write_table(pa.table({f.name: columns[f.name] for f in schema}, schema=schema))


def run(script: str, path: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["plugins", os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark step failed:\n{out.stderr[-3000:]}")
    return [float(v) for v in out.stdout.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/validation.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as folder:
        path = Path(folder) / "fhvhv_tripdata_2024-03.parquet"
        started = time.perf_counter()
        write_month(path, args.rows)
        print(f"bench: wrote {args.rows:,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        load_before = os.getloadavg()[0]
        floor_s, floor_mib = run(FLOOR, path)
        import_s, import_mib = run(IMPORT, path)
        validate_s, validate_mib, chunks = run(VALIDATE, path)
        render_s, render_mib = run(RENDER, path)
        results = {
            "rows": args.rows,
            "file_mib": round(path.stat().st_size / 2**20, 1),
            "floor_scan_s": round(floor_s, 1),
            "floor_peak_mib": round(floor_mib),
            "gx_import_s": round(import_s, 1),
            "gx_import_peak_mib": round(import_mib),
            "validation_s": round(validate_s, 1),
            "validation_rows_per_s": round(args.rows / validate_s),
            "validation_peak_mib": round(validate_mib),
            "validation_chunks": int(chunks),
            "validation_over_floor": round(validate_s / floor_s, 2),
            "data_docs_s": round(render_s, 1),
            "data_docs_peak_mib": round(render_mib),
            "load_average_before": round(load_before, 2),
            "cores": os.cpu_count(),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
