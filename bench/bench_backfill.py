"""Benchmark of a backfill through Airflow on the local platform: generated fhvhv-shaped months served by the local
TLC mirror go through `tap_backfill` as a user runs it (download, integrity check, validation, model version,
Spark job, tables verified, Trino check, run record, dashboard refresh), with where the time goes task by task,
against the native floor measured in the same run.

Measured:
- the backfill run's wall time (trigger to end, as `make demo` follows a run) and, from Airflow's task
  instances, per task: instances, total and longest duration, first start and last end from the run's start
  (a Gantt-style table); the Spark task's start and end, and the job's own stage timings (its result line in the
  task log);
- the native floor: one process (pyspark, local[*], the platform's Spark settings) that scans every month file
  where the job reads it (MinIO, through S3A) and aggregates it per 30-minute bucket (count, fare, pay and
  distance sums): what scoring the same files costs at least, JVM start included;
- the peak memory used on the machine during the run, above what was used before it (the platform's services,
  Airflow's task processes and the Spark jobs).

Set-up, not timed: the months are generated once (kept under --data-dir); three history months of the same size are
landed and a first model is trained and promoted through tap_weekly_retrain under the bench's key prefix and
namespace, unless one is promoted already (and the history unchanged; `--retrain` to insist); the dashboards'
tables in namespace taxi are created empty if missing (the run's refresh reads them). The timed run downloads every
month again (force_download).

    make up
    eval "$(python3 -m local_platform env airflow)"
    PYTHONPATH=plugins:spark_jobs:. .venv/bin/python -m bench.bench_backfill --months 12 --trips 12100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.jvm_cpu import JvmCpu
from bench.sampling import Sampler

RESULTS = Path(__file__).parent / "results" / "backfill.json"
DATA_DIR = Path.home() / ".cache" / "taxi-anomaly-platform" / "bench-data" / "backfill"
# After the TLC listing's last month (2024-05), so that the integrity check treats them as unknown files.
FIRST_MONTH = "2025-05"
HISTORY_MONTHS = 3
PREFIX = "bench-backfill/"
NAMESPACE = "bench_backfill"


def months_from(first: str, count: int) -> list[str]:
    from taxi_anomaly.tlc import YearMonth

    start = YearMonth.parse(first)
    index = start.year * 12 + start.month - 1
    return [f"{(index + i) // 12:04d}-{(index + i) % 12 + 1:02d}" for i in range(count)]


def generate(folder: Path, months: list[str], trips: int, seed: int) -> bool:
    """The months' files (kept: generated only when missing or of another size). True if any was generated."""
    from taxi_anomaly.synthetic import generate_month

    folder.mkdir(parents=True, exist_ok=True)
    generated = False
    for i, month in enumerate(months):
        path = folder / f"fhvhv_tripdata_{month}.parquet"
        stamp = path.with_suffix(".trips")
        if not (path.exists() and stamp.exists() and stamp.read_text() == str(trips)):
            started = time.monotonic()
            generate_month("fhvhv", month, folder, trips=trips, seed=seed + i, anomalies="none")
            stamp.write_text(str(trips))
            generated = True
            print(f"generated fhvhv {month}: {trips:,} trips in {time.monotonic() - started:.0f} s", flush=True)
    return generated


class PeakUsedMemory(Sampler):
    """Peak of the machine's used memory, sampled every second, above its level at start."""

    def __init__(self) -> None:
        import psutil

        super().__init__(interval_s=1.0)
        self._psutil = psutil
        self.before = psutil.virtual_memory().used
        self.peak = self.before

    def sample(self) -> None:
        self.peak = max(self.peak, self._psutil.virtual_memory().used)


def task_table(instances: list[dict[str, Any]], run_start: datetime) -> dict[str, dict[str, Any]]:
    """Per task id: instances, total and longest seconds, first start and last end (s from the run's start)."""

    def offset(stamp: str) -> float:
        return (datetime.fromisoformat(stamp) - run_start).total_seconds()

    table: dict[str, dict[str, Any]] = {}
    for ti in instances:
        if not ti.get("start_date") or not ti.get("end_date"):
            continue
        row = table.setdefault(
            ti["task_id"], {"instances": 0, "total_s": 0.0, "longest_s": 0.0, "first_start_s": None, "last_end_s": 0.0}
        )
        duration = float(ti.get("duration") or 0.0)
        row["instances"] += 1
        row["total_s"] = round(row["total_s"] + duration, 1)
        row["longest_s"] = round(max(row["longest_s"], duration), 1)
        start = round(offset(ti["start_date"]), 1)
        row["first_start_s"] = start if row["first_start_s"] is None else min(row["first_start_s"], start)
        row["last_end_s"] = round(max(row["last_end_s"], offset(ti["end_date"])), 1)
    return dict(sorted(table.items(), key=lambda item: item[1]["first_start_s"] or 0.0))


def spark_timeline(instances: list[dict[str, Any]], run_start: datetime) -> list[dict[str, Any]]:
    """Each Spark task instance's start and end, s from the run's start (one per run since the months of a trip
    type share a submission)."""
    rows = []
    for ti in instances:
        if ti["task_id"].endswith("spark_anomaly_job") and ti.get("start_date") and ti.get("end_date"):
            rows.append(
                {
                    "task": ti.get("rendered_map_index") or ti["task_id"],
                    "start_s": round((datetime.fromisoformat(ti["start_date"]) - run_start).total_seconds(), 1),
                    "end_s": round((datetime.fromisoformat(ti["end_date"]) - run_start).total_seconds(), 1),
                    "state": ti["state"],
                }
            )
    return sorted(rows, key=lambda row: row["start_s"])


def write_results(path: Path, result: dict[str, Any]) -> None:
    """A bench's results as indented JSON at `path` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def job_result(line: str) -> dict[str, Any] | None:
    """The job's result line (`{"status": "ok", ..., "timings_s": ...}`, spark_jobs/run_anomaly_detection.py), or
    None for any other line."""
    return json.loads(line) if line.startswith('{"status": "ok"') else None


@dataclass(frozen=True)
class SparkRun:
    stdout: str
    stderr: str
    seconds: float
    jvm_cpu_s: dict[str, float]  # CPU seconds by kind of JVM thread, and of its Python processes (bench.jvm_cpu)


def run_with_spark(argv: list[str], what: str, source: Path | None = None) -> SparkRun:
    """A Python program (`-c` script or file and its arguments) in its own process with the platform's Spark
    environment: its output, wall seconds and CPU (bench.jvm_cpu). Raises naming `what` if it fails. `source`: a
    checkout whose spark_jobs and plugins the program imports (default: this one, as spark_env sets)."""
    from local_platform.config import load_config
    from local_platform.spark import spark_env

    env = {**os.environ, **spark_env(load_config())}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(source / d) for d in ("spark_jobs", "plugins"))
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with JvmCpu(process.pid) as cpu:
        stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{stderr[-3000:]}")
    return SparkRun(stdout, stderr, seconds, cpu.by_kind())


def job_results(log_folder: Path, dag_run_id: str) -> list[dict[str, Any]]:
    """The result line(s) each spark-submit printed (`{"status": "ok", ..., "timings_s": ...}`), from the Spark
    task's log files under Airflow's log folder (the task log holds the job's stdout)."""
    results = []
    folder = log_folder / "dag_id=tap_backfill" / f"run_id={dag_run_id}" / "task_id=spark_anomaly_job"
    for path in sorted(folder.glob("attempt=*.log")):
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line).get("event", "")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(event, str) and (found := job_result(event)):
                results.append({k: found.get(k) for k in ("windows_scored", "anomalies", "timings_s")})
    return results


FLOOR_SCRIPT = """
import sys, time
from pyspark.sql import SparkSession, functions as F
spark = SparkSession.builder.appName("bench-backfill-native-floor").getOrCreate()
by_zone = sys.argv[1] != "city"  # a borough is a set of pickup zones: the same aggregate
for path in sys.argv[2:]:
    trips = spark.read.parquet(path)
    keys = [F.window("pickup_datetime", "30 minutes").start] + ([F.col("PULocationID")] if by_zone else [])
    sums = trips.groupBy(*keys).agg(
        F.count(F.lit(1)), F.sum("base_passenger_fare"), F.sum("driver_pay"), F.sum("trip_miles")
    )
    if by_zone:  # every zone window computed, none brought to the driver
        sums.write.format("noop").mode("overwrite").save()
    else:
        print(path, len(sums.collect()), flush=True)
spark.stop()
"""


def native_floor(uris: list[str], granularity: str = "city") -> dict[str, Any]:
    """One process: scan + 30-minute aggregate (per pickup zone too at zone and borough granularity) of every file
    where the job reads it (the raw zone in MinIO, through S3A); wall seconds of the whole process."""
    run = run_with_spark(["-c", FLOOR_SCRIPT, granularity, *uris], "the native floor")
    return {"seconds": round(run.seconds, 1), "files": len(uris), "jvm_cpu_s": run.jvm_cpu_s}


SERVED_TABLES_SCRIPT = """
from pyspark.sql import SparkSession
from anomaly_detection.tables import SERVED_TABLE_DDL, ensure_tables
spark = SparkSession.builder.appName("bench-backfill-served-tables").getOrCreate()
ensure_tables(spark, "taxi", SERVED_TABLE_DDL)
spark.stop()
"""


def ensure_served_tables() -> None:
    """The dashboards read namespace taxi (the production one, not the bench's): its tables must exist for the
    run's dashboard refresh, as after a first `make demo`. Created empty if missing (Spark, the job's DDL)."""
    run_with_spark(["-c", SERVED_TABLES_SCRIPT], "creating the served tables")


def ensure_model(client: Any, history: list[str], sandbox: dict[str, Any], retrain: bool) -> None:
    """History landed (score off) and a first fhvhv city model promoted, unless one is promoted already and
    `retrain` is off."""
    from taxi_anomaly.orchestration import demo

    if demo.promoted(PREFIX, "fhvhv") and not retrain:
        return
    demo.run_dag(
        client,
        "tap_backfill",
        {"trip_types": ["fhvhv"], "first_month": history[0], "last_month": history[-1], "score": False} | sandbox,
    )
    train_model(client, history, "city")


def train_model(client: Any, history: list[str], granularity: str) -> None:
    """A fhvhv model of the granularity trained and promoted through tap_weekly_retrain on the landed history:
    the last history month is the evaluation month, the two before it train (not the scored months, once landed)."""
    from taxi_anomaly.orchestration import demo

    conf = {"trip_types": ["fhvhv"], "granularity": granularity, "train_window_months": 2, "holdout_month": history[-1]}
    demo.retrain(client, conf | {"namespace": NAMESPACE, "storage_prefix": PREFIX})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--trips", type=int, default=12_100_000, help="trips per generated month")
    parser.add_argument("--first-month", default=FIRST_MONTH)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--retrain", action="store_true", help="land the history and train a model again")
    args = parser.parse_args(argv)
    if "AIRFLOW_CONN_TAP_S3" not in os.environ:
        raise SystemExit('run after eval "$(python3 -m local_platform env airflow)" (the platform\'s Airflow login)')

    from taxi_anomaly import layout
    from taxi_anomaly.ingest.mirror import Mirror
    from taxi_anomaly.ingest.settings import shared_data_dir
    from taxi_anomaly.orchestration import demo
    from taxi_anomaly.orchestration.locations import Locations

    all_months = months_from(args.first_month, HISTORY_MONTHS + args.months)
    history, targets = all_months[:HISTORY_MONTHS], all_months[HISTORY_MONTHS:]
    folder = args.data_dir / "generated"
    # The history months are as large as the scored ones: a model trained on smaller months flags every window of
    # the larger ones (measured: 17,518 of 17,518 with 300 k-trip history months).
    new_history = generate(folder, history, args.trips, seed=500)
    generate(folder, targets, args.trips, seed=600)

    client = demo.airflow_client()
    backfill_paused = client.wait_for_dag("tap_backfill")["is_paused"]
    client.set_paused("tap_backfill", False)
    try:
        mirror_port = int(os.environ["TAP_MIRROR_URL"].rsplit(":", 1)[1])  # the source Airflow may download from
        with Mirror([shared_data_dir(), folder], port=mirror_port) as mirror:
            sandbox = {"namespace": NAMESPACE, "storage_prefix": PREFIX, "tlc_base_url": mirror.url}
            ensure_model(client, history, sandbox, retrain=new_history or args.retrain)
            ensure_served_tables()
            conf = {
                "trip_types": ["fhvhv"],
                "first_month": targets[0],
                "last_month": targets[-1],
                "force_download": True,
            } | sandbox
            load_before = os.getloadavg()[0]
            with PeakUsedMemory() as memory:
                started = time.monotonic()
                finished = demo.run_dag(client, "tap_backfill", conf)
                wall = time.monotonic() - started
    finally:
        if backfill_paused:
            client.set_paused("tap_backfill", True)
    instances = client.task_instances("tap_backfill", finished["dag_run_id"])
    run_start = datetime.fromisoformat(finished["start_date"])
    raw_uri = Locations(prefix=PREFIX).raw_uri
    floor = native_floor([layout.raw_path(raw_uri, "fhvhv", month) for month in targets])
    result = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "months": args.months,
        "trips_per_month": args.trips,
        "trips": args.months * args.trips,
        "dag_run_id": finished["dag_run_id"],
        "backfill_wall_s": round(wall, 1),
        "backfill_target_s": 15 * 60 if args.months == 12 else None,
        "native_floor_s": floor["seconds"],
        "backfill_over_floor": round(wall / floor["seconds"], 2),
        "peak_memory_above_start_gib": round((memory.peak - memory.before) / 2**30, 2),
        "peak_memory_used_gib": round(memory.peak / 2**30, 2),
        "load_1min_at_start": round(load_before, 2),
        "tasks": task_table(instances, run_start),
        "spark_jobs": spark_timeline(instances, run_start),
        "job_results": job_results(Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]), finished["dag_run_id"]),
    }
    write_results(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("tasks", "spark_jobs", "job_results")}))
    print(json.dumps(result["job_results"]))
    for task, row in result["tasks"].items():
        print(f"{task:40s} {row}")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
