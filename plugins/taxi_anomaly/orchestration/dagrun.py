"""Run one DAG in-process with `dag.test()` and summarise the run as JSON (task states and return values).

`python -m taxi_anomaly.orchestration.dagrun <dag_id> --conf '{...}' [--logical-date 2025-05-10T06:00:00+00:00]`
prints the summary as the last line of stdout. The Airflow environment must be set (e.g.
`eval "$(python3 -m local_platform env airflow)"`); the demo and the end-to-end tests run it in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
SUMMARY_MARKER = "TAP_DAG_RUN_SUMMARY "


def load_dag(dag_id: str, dags_folder: Path | None = None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    folder = dags_folder or Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or REPO_ROOT / "dags")
    bag = DagBag(dag_folder=str(folder / f"{dag_id}.py"), safe_mode=False)
    if bag.import_errors or dag_id not in bag.dags:
        raise RuntimeError(f"cannot load {dag_id} from {folder}: {bag.import_errors or 'no such DAG'}")
    return bag.dags[dag_id]


def summarise(dag_run: Any) -> dict[str, Any]:
    """States and XCom return values of every task instance of the run (mapped ones by their label), and the
    asset events the run emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    tasks: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
            .all()
        )
        for ti in sorted(tis, key=lambda t: (t.task_id, t.map_index)):
            xcom = (
                session.query(XComModel)
                .filter(
                    XComModel.dag_id == ti.dag_id,
                    XComModel.run_id == ti.run_id,
                    XComModel.task_id == ti.task_id,
                    XComModel.map_index == ti.map_index,
                    XComModel.key == "return_value",
                )
                .one_or_none()
            )
            value = XComModel.deserialize_value(xcom) if xcom is not None else None
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]"
            tasks[key] = {"state": str(ti.state) if ti.state else None, "try_number": ti.try_number, "value": value}
        events = [
            {"asset": asset.name, "uri": asset.uri, "task_id": event.source_task_id, "extra": event.extra}
            for event, asset in session.query(AssetEvent, AssetModel)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id)
            .order_by(AssetEvent.id)
        ]
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "tasks": tasks,
        "asset_events": events,
    }


def run(dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None) -> dict[str, Any]:
    dag = load_dag(dag_id)
    started = time.monotonic()
    dag_run = dag.test(run_conf=conf, logical_date=logical_date)
    summary = summarise(dag_run)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a DAG once in-process (dag.test) and print a JSON summary.")
    parser.add_argument("dag_id")
    parser.add_argument("--conf", default="{}", help="the run's params as JSON")
    parser.add_argument("--logical-date", type=datetime.fromisoformat, default=None)
    args = parser.parse_args(argv)
    summary = run(args.dag_id, json.loads(args.conf), args.logical_date)
    sys.stdout.write(SUMMARY_MARKER + json.dumps(summary, default=str) + "\n")
    sys.stdout.flush()
    return 0 if summary["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
