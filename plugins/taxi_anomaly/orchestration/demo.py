"""`make demo`: the pipeline on the running local platform, triggered through Airflow, from download to dashboard.

1. sample data: the real green 2024-01 (shared reference data) and generated months (history for green and
   fhvhv, and the fhvhv month 2025-04 with labelled anomalies), served by a TLC mirror started here on 127.0.0.1;
2. tap_backfill, score off: the history months land (months the mirror does not have are skipped); the labels
   of the generated months are published beside them (raw bucket, labels/), so evaluations use them;
3. tap_weekly_retrain: a city model per trip type, and a borough model for fhvhv, are trained, evaluated and
   promoted (skipped once promoted); the first run takes the weekly schedule's due slot, so unpausing the DAG for
   it starts no run with production defaults;
4. tap_backfill for green 2024-01, then fhvhv 2025-04 (city, then borough): Spark scores them with the promoted
   models into iceberg.taxi.*, Trino checks the counts, and the Superset dashboards are refreshed (the borough
   panel shows the fhvhv borough windows in the dashboard's default view);
5. the stream: the streaming job starts (`make stream-up`), the fhvhv month is replayed into Kafka at 5,000
   events/s, and alerts are printed as they arrive (taxi_anomaly.streaming.demo; --no-stream skips it);
6. per-event scoring: a KDD Cup 99 model is trained and promoted (once), the per-event scoring job starts, 20 k
   connection records are replayed into tap.events and the first alerts are printed with their latency
   (taxi_anomaly.streaming.event_demo; skipped with the stream).

Every run is triggered through Airflow's REST API and executed by the platform's scheduler, like a trigger from
the UI, and followed task by task. Raw files, models and run records use the key prefix `demo/`. A second demo
reuses the generated files, the landed months and the promoted model; scoring reruns replace the months' rows.
Needs the platform's Airflow environment: `scripts/demo.sh` sets it (`eval "$(python3 -m local_platform env
airflow)"`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from taxi_anomaly.orchestration.airflow_api import AirflowClient

REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO_ROOT / ".platform" / "demo"

# The TLC listing knows every month up to 2024-05, and a generated file for a listed month would (rightly) fail
# the row-count check, so the generated months come after it. The history has incidents, as real history does.
HISTORY = {"green": ("2024-10", "2024-11", "2024-12"), "fhvhv": ("2025-01", "2025-02", "2025-03")}
HISTORY_RANGE = ("2024-10", "2025-03")
TARGETS = {"green": "2024-01", "fhvhv": "2025-04"}  # green 2024-01 is the real TLC file
# Also scored per borough, so that the dashboard's borough panel has windows to show in its default view.
BOROUGH_TARGETS = ("fhvhv",)
HISTORY_TRIPS = {"green": 40_000, "fhvhv": 300_000}
TARGET_TRIPS = 300_000
RETRAIN_DAG = "tap_weekly_retrain"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def generate(data_dir: Path) -> Path:
    """The generated months (deterministic for their seeds; reused when present)."""
    from taxi_anomaly.synthetic import generate_month

    folder = data_dir / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [(t, m, HISTORY_TRIPS[t], 10 + i) for t, months in HISTORY.items() for i, m in enumerate(months)]
    wanted.append(("fhvhv", TARGETS["fhvhv"], TARGET_TRIPS, 42))
    for trip_type, month, trips, seed in wanted:
        if (folder / f"{trip_type}_tripdata_{month}.parquet").exists():
            continue
        say(f"generating {trip_type} {month} ({trips:,} trips, seed {seed})")
        generate_month(trip_type, month, folder, trips=trips, seed=seed)
    return folder


def airflow_client() -> AirflowClient:
    """The platform's Airflow as its operator (role User: may trigger and pause DAGs, not read connections)."""
    user, password = os.environ["TAP_AIRFLOW_API_USER"], os.environ["TAP_AIRFLOW_API_PASSWORD"]
    return AirflowClient(os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080"), user, password)


def run_dag(
    client: AirflowClient, dag_id: str, conf: dict[str, Any], run: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Trigger one run (unless `run` was triggered already), follow it to the end, and return it (raises
    SystemExit if it failed)."""
    run = run or client.trigger(dag_id, conf, run_id=demo_run_id(dag_id))
    started = time.monotonic()
    say(f"triggered {dag_id}, run {run['dag_run_id']}")
    say(f"  {client.base_url}/dags/{dag_id}/runs/{run['dag_run_id']}")
    finished = client.follow(dag_id, run["dag_run_id"], report=lambda line: say(f"  {line}"))
    say(f"{dag_id}: {finished['state']} in {time.monotonic() - started:.0f} s")
    if finished["state"] != "success":
        raise SystemExit(f"{dag_id} run {run['dag_run_id']} {finished['state']}: open the run in the Airflow UI")
    return finished


def demo_run_id(dag_id: str) -> str:
    return f"demo__{dag_id}__{time.strftime('%Y%m%dT%H%M%S')}"


def retrain(client: AirflowClient, conf: dict[str, Any]) -> None:
    """One tap_weekly_retrain run with the demo's params. The DAG is unpaused for this run only, and the run takes
    the schedule slot due now: unpausing would otherwise start the weekly run with the production defaults (all
    trip types, no key prefix), which fails on the demo platform and raises alerts."""
    was_paused = client.wait_for_dag(RETRAIN_DAG)["is_paused"]
    run = client.trigger_in_due_slot(RETRAIN_DAG, conf, run_id=demo_run_id(RETRAIN_DAG))
    client.set_paused(RETRAIN_DAG, False)
    try:
        run_dag(client, RETRAIN_DAG, conf, run)
    finally:
        if was_paused:
            client.set_paused(RETRAIN_DAG, True)


def publish_labels(generated: Path, prefix: str) -> list[str]:
    """The generated months' labels into the raw bucket's labels/ tree, where the Spark job finds them: a training
    run then evaluates its candidate on the labels of the evaluation month (bucket F1, episodes found)."""
    from taxi_anomaly import layout
    from taxi_anomaly.ingest import S3Settings
    from taxi_anomaly.ingest.storage import ObjectStore
    from taxi_anomaly.synthetic import load_labels
    from taxi_anomaly.tlc import YearMonth

    store = ObjectStore(S3Settings.from_env())
    bucket = json.loads(os.environ["AIRFLOW_CONN_TAP_S3"])["extra"]["raw_bucket"]
    keys = []
    for path in sorted(generated.glob("*.labels.json")):
        labels = load_labels(path)
        key = prefix + layout.labels_key(labels.trip_type, YearMonth.parse(labels.month))
        store.put_file(bucket, key, path, content_type="application/json")
        keys.append(key)
    return keys


def promoted(prefix: str, trip_type: str, granularity: str = "city") -> str | None:
    from taxi_anomaly.ingest import S3Settings
    from taxi_anomaly.ingest.storage import ObjectStore
    from taxi_anomaly.layout import POINTER
    from taxi_anomaly.orchestration.locations import Locations

    store, locations = ObjectStore(S3Settings.from_env()), Locations(prefix=prefix)
    key = locations.models_key(trip_type, granularity, POINTER)
    bucket = locations.models_bucket
    return store.get_json(bucket, key)["version"] if store.exists(bucket, key) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEMO_DIR)
    parser.add_argument("--prefix", default="demo/", help="key prefix in the raw/models/reports buckets")
    parser.add_argument("--retrain", action="store_true", help="retrain even if a model is promoted already")
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming part")
    args = parser.parse_args(argv)
    if "AIRFLOW_CONN_TAP_S3" not in os.environ:
        raise SystemExit('run through scripts/demo.sh (or eval "$(python3 -m local_platform env airflow)" first)')

    from taxi_anomaly.ingest.mirror import Mirror
    from taxi_anomaly.ingest.settings import shared_data_dir
    from taxi_anomaly.serving import top_anomalies

    began = time.monotonic()
    generated = generate(args.data_dir)
    client = airflow_client()
    backfill_paused = client.wait_for_dag("tap_backfill")["is_paused"]  # unscheduled: unpausing starts nothing
    client.set_paused("tap_backfill", False)
    try:
        # The mirror's address is the one the platform's Airflow is allowed to download from (TAP_MIRROR_URL).
        mirror_port = int(os.environ["TAP_MIRROR_URL"].rsplit(":", 1)[1])
        with Mirror([shared_data_dir(), generated], port=mirror_port) as mirror:
            say(f"TLC mirror on {mirror.url} (reference data + {generated})")
            sandbox = {"namespace": "taxi", "storage_prefix": args.prefix, "tlc_base_url": mirror.url}
            first, last = HISTORY_RANGE
            run_dag(
                client,
                "tap_backfill",
                {"trip_types": list(HISTORY), "first_month": first, "last_month": last, "score": False} | sandbox,
            )
            say(f"labels of {len(publish_labels(generated, args.prefix))} generated months published for evaluations")
            retrain_conf = {"train_window_months": 2, "namespace": "taxi", "storage_prefix": args.prefix}
            for granularity, trip_types in (("city", list(TARGETS)), ("borough", list(BOROUGH_TARGETS))):
                if args.retrain or not all(promoted(args.prefix, t, granularity) for t in trip_types):
                    retrain(client, retrain_conf | {"trip_types": trip_types, "granularity": granularity})
                else:
                    say(f"{granularity} models already promoted: retraining skipped (--retrain to retrain)")
            for trip_type, month in TARGETS.items():
                for granularity in ("city", "borough") if trip_type in BOROUGH_TARGETS else ("city",):
                    window = {"first_month": month, "last_month": month, "granularity": granularity}
                    run_dag(client, "tap_backfill", {"trip_types": [trip_type], **window} | sandbox)
    finally:
        if backfill_paused:  # leave the platform's DAGs as they were
            client.set_paused("tap_backfill", True)

    print(flush=True)
    for trip_type, month in TARGETS.items():
        top_anomalies.main(["-n", "8", "--trip-type", trip_type, "--granularity", "city", "--month", month])
        print(flush=True)
    if not args.no_stream:
        from taxi_anomaly.orchestration.locations import Locations
        from taxi_anomaly.streaming.demo import run_stream_demo
        from taxi_anomaly.streaming.event_demo import run_event_demo

        run_stream_demo(generated / f"fhvhv_tripdata_{TARGETS['fhvhv']}.parquet", REPO_ROOT, args.data_dir)
        print(flush=True)
        run_event_demo(REPO_ROOT, args.data_dir, Locations(prefix=args.prefix).models_uri)
        print(flush=True)
    superset = json.loads(os.environ.get("AIRFLOW_CONN_TAP_SUPERSET", "{}"))
    superset_url = f"http://{superset.get('host', '127.0.0.1')}:{superset.get('port', 8088)}"
    print(f"Airflow runs:         {client.base_url}/dags/tap_backfill/runs")
    print(f"Superset dashboard:   {superset_url}/superset/dashboard/taxi-anomalies/")
    if jupyter_url := os.environ.get("TAP_JUPYTER_URL"):
        print(f"JupyterLab notebook:  {jupyter_url}/lab/tree/explore_anomalies.ipynb (token: JUPYTER_TOKEN)")
    print("Logins:               .platform/credentials.env (AIRFLOW_ADMIN_*, SUPERSET_ADMIN_*, JUPYTER_TOKEN)")
    print(
        'Top anomalies again:  eval "$(python3 -m local_platform env airflow)" && '
        ".venv/bin/python -m taxi_anomaly.serving.top_anomalies -n 10"
    )
    print(f"demo finished in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
