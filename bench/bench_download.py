"""Benchmark of downloads from the local TLC mirror: MiB/s of stream + sha256 + write to disk, peak RSS.

    .venv/bin/python bench/bench_download.py [--size-mib 256] [--repeat 3] [--upload]

A parquet file of incompressible doubles (about fhvhv-month size by default) is written to a temporary folder,
served by the mirror's command line (`python -m taxi_anomaly.ingest.mirror`, a separate process, as in the
demo) and downloaded `--repeat` times with `taxi_anomaly.ingest.download.download`; one more run has the
connection dropped half-way once, to show what a retry costs (the file is fetched again from the start).
`--upload` also times the upload to MinIO (needs AIRFLOW_CONN_TAP_S3, e.g. from
`eval "$(python3 -m local_platform env airflow)"`); the object is deleted afterwards.
`--validate-rows N` also validates an fhvhv-shaped file of N rows with the fhvhv suite (rows/s and the peak
RSS it adds), to check that validation stays bounded on fhvhv-sized months.
Results go to bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FILE_NAME = "fhvhv_tripdata_2099-01.parquet"


def write_parquet(path: Path, size_mib: int) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    rows_per_group = 1 << 20  # 8 MiB per group of one float64 column
    groups = max(1, size_mib // 8)
    schema = pa.schema([("value", pa.float64())])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(groups):
            writer.write_table(pa.table({"value": rng.random(rows_per_group)}, schema=schema))
    return path.stat().st_size


def start_mirror(folder: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    command = [sys.executable, "-m", "taxi_anomaly.ingest.mirror", "--port", "0", "--data-dir", str(folder)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    match = re.search(r"http://127\.0\.0\.1:\d+", process.stderr.readline())
    if not match:
        process.terminate()
        raise RuntimeError("the mirror did not print its URL")
    return process, match.group(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--upload", action="store_true", help="also time the upload to MinIO")
    parser.add_argument("--validate-rows", type=int, default=0, help="also validate an fhvhv-shaped file")
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="validation chunk size")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT / "plugins"))
    from taxi_anomaly.ingest.download import download
    from taxi_anomaly.ingest.settings import IngestSettings, S3Settings

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-download-") as folder:
        served, staged = Path(folder) / "served", Path(folder) / "staged"
        served.mkdir()
        staged.mkdir()
        size = write_parquet(served / FILE_NAME, args.size_mib)
        mirror, url = start_mirror(served)
        try:
            s3 = S3Settings.from_env() if args.upload else S3Settings("http://127.0.0.1:9")
            settings = IngestSettings(s3, base_url=url, metadata_dir=None, backoff_initial_s=0.01)
            source = f"{url}/trip-data/{FILE_NAME}"
            rates = []
            for _ in range(args.repeat):
                result = download(source, staged / FILE_NAME, settings, progress=lambda done, total: None)
                rates.append(size / result.seconds / 2**20)
            fault = {"path": f"/trip-data/{FILE_NAME}", "mode": "drop", "times": 1}
            request = urllib.request.Request(
                f"{url}/_mirror/faults", json.dumps(fault).encode(), {"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=10).close()
            retried = download(source, staged / FILE_NAME, settings, progress=lambda done, total: None)
            upload_rate = upload(settings, staged / FILE_NAME, size) if args.upload else None
        finally:
            mirror.terminate()
            mirror.wait(timeout=10)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    validation = validate(args.validate_rows, args.batch_rows) if args.validate_rows else None

    print(f"| file | {size / 2**20:,.1f} MiB parquet, served by the mirror CLI on 127.0.0.1 |")
    print("| --- | --- |")
    print(f"| download + sha256 + write, median of {args.repeat} | {statistics.median(rates):,.0f} MiB/s |")
    print(f"| runs | {', '.join(f'{r:,.0f}' for r in rates)} MiB/s |")
    print(f"| with one drop half-way (2 attempts) | {retried.seconds:.2f} s, {retried.attempts} attempts |")
    if upload_rate is not None:
        print(f"| upload to MinIO (fput_object) | {upload_rate:,.0f} MiB/s |")
    print(f"| peak RSS of the downloading process | {peak_rss_mib:,.0f} MiB |")
    if validation is not None:
        rows, chunks, seconds, before, after = validation
        label = f"validation, fhvhv suite, {rows:,} rows in {chunks} chunks"
        print(f"| {label} | {seconds:.1f} s, {rows / seconds:,.0f} rows/s |")
        print(f"| peak RSS before / after validation | {before:,.0f} / {after:,.0f} MiB |")
    print(f"| 1-min load average before | {load_before:.2f} on {os.cpu_count()} cores |")


def validate(rows: int, batch_rows: int) -> tuple[int, int, float, float, float]:
    """Validate an fhvhv-shaped file (plausible values) of `rows` rows; returns rows, chunks, s, RSS before/after."""
    import great_expectations  # noqa: F401 - imported before measuring: its import alone is ~300 MiB

    from taxi_anomaly.ingest.settings import IngestSettings, S3Settings
    from taxi_anomaly.ingest.validation import validate_file
    from taxi_anomaly.tlc import YearMonth

    with tempfile.TemporaryDirectory(prefix="bench-validate-") as folder:
        path = Path(folder) / "fhvhv_tripdata_2024-03.parquet"
        write_fhvhv_like(path, rows)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        settings = IngestSettings(S3Settings("http://127.0.0.1:9"), metadata_dir=None, validation_batch_rows=batch_rows)
        started = time.perf_counter()
        report = validate_file(path, "fhvhv", YearMonth(2024, 3), settings)
        seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not report.passed:
        raise RuntimeError(f"the benchmark file should pass: {report.describe_failures()}")
    return report.rows, report.chunks, seconds, before, after


def write_fhvhv_like(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    with pq.ParquetWriter(path, _fhvhv_schema(pa)) as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            pickup = np.datetime64("2024-03-01") + rng.integers(0, 31 * 86_400 * 10**6, n).astype("timedelta64[us]")
            seconds = rng.integers(60, 3_600, n)
            columns = {
                "hvfhs_license_num": pa.array(rng.choice(["HV0003", "HV0005"], n)),
                "pickup_datetime": pickup,
                "dropoff_datetime": pickup + seconds.astype("timedelta64[s]"),
                "PULocationID": rng.integers(1, 266, n),
                "DOLocationID": rng.integers(1, 266, n),
                "trip_miles": rng.exponential(4, n),
                "trip_time": seconds,
                "base_passenger_fare": rng.exponential(20, n),
                "driver_pay": rng.exponential(15, n),
            }
            writer.write_table(pa.table(columns, schema=_fhvhv_schema(pa)))


def _fhvhv_schema(pa):  # noqa: ANN001, ANN202 - pyarrow passed in to keep imports lazy
    return pa.schema(
        [
            ("hvfhs_license_num", pa.string()),
            ("pickup_datetime", pa.timestamp("us")),
            ("dropoff_datetime", pa.timestamp("us")),
            ("PULocationID", pa.int64()),
            ("DOLocationID", pa.int64()),
            ("trip_miles", pa.float64()),
            ("trip_time", pa.int64()),
            ("base_passenger_fare", pa.float64()),
            ("driver_pay", pa.float64()),
        ]
    )


def upload(settings, path: Path, size: int) -> float:
    from taxi_anomaly.ingest.storage import ObjectStore

    store = ObjectStore(settings.s3)
    key = f"bench-download-{uuid.uuid4().hex[:8]}/{path.name}"
    started = time.perf_counter()
    store.put_file(settings.raw_bucket, key, path)
    seconds = time.perf_counter() - started
    store.delete(settings.raw_bucket, key)
    return size / seconds / 2**20


if __name__ == "__main__":
    main()
