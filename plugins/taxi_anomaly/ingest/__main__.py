"""Command line: ingest months by hand, e.g. against the local mirror (the S3 connection comes from the env).

eval "$(python3 -m local_platform env airflow)"
PYTHONPATH=plugins .venv/bin/python -m taxi_anomaly.ingest green 2024-01 --base-url http://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import logging
import sys

from taxi_anomaly.ingest.data_docs import render_months
from taxi_anomaly.ingest.pipeline import Status, ingest_month, ingest_zone_lookup
from taxi_anomaly.ingest.settings import HdfsSettings, IngestSettings, S3Settings
from taxi_anomaly.ingest.storage import open_raw_store
from taxi_anomaly.tlc import DEFAULT_BASE_URL, TRIP_TYPES, month_range


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest TLC monthly files into the raw zone.")
    parser.add_argument("trip_type", choices=TRIP_TYPES)
    parser.add_argument("first", help="first month, YYYY-MM")
    parser.add_argument("last", nargs="?", help="last month, YYYY-MM (default: first)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="trip-data CDN or local mirror")
    parser.add_argument("--raw-bucket", default="tap-raw")
    parser.add_argument("--key-prefix", default="", help="prefix of every key (ends with /)")
    parser.add_argument(
        "--raw-store", choices=("s3", "hdfs"), default="s3", help="hdfs reads the tap_hdfs connection from the env"
    )
    parser.add_argument("--force", action="store_true", help="ingest again even if unchanged")
    parser.add_argument("--zones", action="store_true", help="also ingest the taxi zone lookup")
    parser.add_argument(
        "--source-suffixes",
        default=".parquet",
        help="file endings asked for in order, e.g. .parquet,.csv.gz,.csv for an archive of the CSV releases",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    settings = IngestSettings(
        S3Settings.from_env(),
        raw_store=args.raw_store,
        hdfs=HdfsSettings.from_env() if args.raw_store == "hdfs" else None,
        base_url=args.base_url,
        raw_bucket=args.raw_bucket,
        key_prefix=args.key_prefix,
        source_suffixes=tuple(s.strip() for s in args.source_suffixes.split(",") if s.strip()),
    )
    store = open_raw_store(settings)
    outcomes = [ingest_zone_lookup(settings, args.force, store=store)] if args.zones else []
    for month in month_range(args.first, args.last or args.first):
        outcomes.append(ingest_month(args.trip_type, month, settings, args.force, store=store))
    for outcome in outcomes:
        print(f"{outcome.status.value:18} {outcome.message}")
    months = month_range(args.first, args.last or args.first)
    for page in render_months(store, settings, [(args.trip_type, month) for month in months]):
        print(f"{'data docs':18} {store.uri(settings.raw_bucket, page)}")
    return 1 if any(o.status is Status.QUARANTINED for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
