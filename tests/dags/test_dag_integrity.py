"""DAG integrity (CI): every DAG file imports cleanly, fast, without touching Variables, Connections, the metadata
database or heavy libraries, and every DAG carries what an operator needs (owner, tags, docs, retries...).

Parse-time checks parse each file in a fresh child of one interpreter, as the dag-processor does: Airflow
preloaded, then the file parsed by DagBag while probes record any Variable, Connection or database access and any
module imported.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from tests.dags.conftest import DAG_FILES, DAGS_FOLDER, REPO

EXPECTED_DAGS = {
    "platform_health",
    "tap_backfill",
    "tap_daily_ingest",
    "tap_score_landed",
    "tap_stream_health",
    "tap_stream_maintenance",
    "tap_tune",
    "tap_weekly_retrain",
}
PARSE_BUDGET_S = 0.5
HEAVY_MODULES = {
    "pandas",
    "pyspark",
    "sklearn",
    "great_expectations",
    "numpy",
    "pyarrow",
    "scipy",
    "pyiceberg",
    "trino",
    "kubernetes",
}

# Airflow is imported once; each DAG file is then parsed in a child forked from that interpreter, as the
# dag-processor does, so that every file starts from the same preloaded modules and nothing one file imported.
PROBE = r"""
import json, os, sys, time
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk
from airflow.sdk import BaseHook, Connection, Variable
from sqlalchemy import event
from sqlalchemy.engine import Engine

calls = []
def probe(name, original):
    def wrapper(*args, **kwargs):
        calls.append(f"{name}{args[-1:] if args else ''}")
        return original(*args, **kwargs)
    return wrapper

Variable.get = staticmethod(probe("Variable.get", Variable.get))
Variable.set = staticmethod(probe("Variable.set", Variable.set))
BaseHook.get_connection = classmethod(probe("BaseHook.get_connection", BaseHook.get_connection.__func__))
Connection.get = classmethod(probe("Connection.get", Connection.get.__func__))
event.listen(Engine, "connect", lambda *a: calls.append("database connect"))

def parse(path):
    before = {m.split(".")[0] for m in sys.modules}
    started, cpu = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=path, safe_mode=False)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    after = {m.split(".")[0] for m in sys.modules}
    print(json.dumps({
        "file": path,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "dags": sorted(bag.dags),
        "calls": calls,
        "new_modules": sorted(after - before),
    }), flush=True)

for path in sys.argv[1:]:
    child = os.fork()
    if child == 0:
        parse(path)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    if status:
        sys.exit(f"parsing {path} failed (wait status {status})")
"""


def run_probe(paths: list[str], env: dict[str, str]) -> dict[str, dict]:
    """{file name: parse report} of the DAG files, each parsed in a child of one preloaded interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *paths], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0, f"parse probe failed:\n{done.stderr[-3000:]}"
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"file"')]
    return {os.path.basename(r["file"]): r for r in reports}


@pytest.fixture(scope="module")
def parse_reports(tmp_path_factory) -> dict[str, dict]:
    """Each DAG file parsed in its own fresh interpreter, without any connection or Variable configured."""
    home = tmp_path_factory.mktemp("airflow-home-probe")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=os.pathsep.join(str(REPO / d) for d in ("plugins", "spark_jobs")),
    )
    reports = run_probe([str(path) for path in DAG_FILES], env)
    assert set(reports) == {path.name for path in DAG_FILES}, f"reports for {sorted(reports)} only"
    return reports


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED_DAGS <= set(dagbag.dag_ids), f"missing: {EXPECTED_DAGS - set(dagbag.dag_ids)}"


@pytest.mark.parametrize("file", [p.name for p in DAG_FILES])
def test_parse_is_fast_and_touches_nothing(parse_reports, file):
    report = parse_reports[file]
    assert report["errors"] == {}
    assert report["dags"], f"{file} defines no DAG"
    # CPU time: what the file costs the dag-processor, not how busy the machine running the test is.
    assert report["cpu_seconds"] < PARSE_BUDGET_S, f"{file} took {report['cpu_seconds']:.3f} s CPU to parse"
    assert report["calls"] == [], f"{file} reads {report['calls']} at parse time"
    heavy = sorted(HEAVY_MODULES & set(report["new_modules"]))
    assert heavy == [], f"{file} imports {heavy} at parse time"


def test_the_probe_would_see_a_variable_read_and_a_heavy_import(tmp_path, parse_reports):
    """The probe is not blind: a DAG file that reads a Variable and imports pandas at module level is caught."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import pandas\nfrom datetime import datetime\nfrom airflow.sdk import DAG, Variable\n"
        "Variable.get('anything', default=None)\n"
        "with DAG('bad', schedule=None, start_date=datetime(2026, 1, 1)):\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    report = run_probe([str(bad)], env)[bad.name]
    assert any(c.startswith("Variable.get") for c in report["calls"])
    assert "pandas" in report["new_modules"]


def test_no_cycles(dagbag):
    from airflow.utils.dag_cycle_tester import check_cycle

    for dag in dagbag.dags.values():
        check_cycle(dag)  # raises AirflowDagCycleException


def chain(dag, first: str) -> list[str]:
    """Task ids from `first` following the single downstream edge of each task (the Data Docs side task aside)."""
    order = [first]
    while downstream := sorted(dag.get_task(order[-1]).downstream_task_ids - {"render_data_docs"}):
        assert len(downstream) == 1, f"{order[-1]} fans out to {downstream}"
        order.append(downstream[0])
    return order


def test_the_pipeline_runs_its_steps_in_order(dagbag):
    """download -> integrity -> GX -> model per month; one Spark task for the run's months; Metastore -> Trino ->
    record per scored month; then Superset."""
    backfill = dagbag.dags["tap_backfill"]
    assert chain(backfill, "zone_lookup") == [
        "zone_lookup",
        "plan_months",
        "month.download",
        "month.integrity_check",
        "month.gx_validation",
        "month.resolve_model",
        "spark_anomaly_job",
        "scored.verify_iceberg_tables",
        "scored.trino_sanity_query",
        "scored.record_scored_month",
        "refresh_superset_dashboards",
        "require_a_published_month",
    ]
    assert backfill.get_task("require_a_published_month").trigger_rule == "all_done"
    # the months that were resolved are scored even when another month failed (quarantined) or was skipped
    assert backfill.get_task("spark_anomaly_job").trigger_rule == "all_done"
    assert chain(dagbag.dags["tap_score_landed"], "plan_months")[1:] == chain(backfill, "month.resolve_model")[:-1]
    assert chain(dagbag.dags["tap_daily_ingest"], "zone_lookup")[:-1] == chain(backfill, "zone_lookup")[:5]
    retrain = dagbag.dags["tap_weekly_retrain"]
    downstream = {t.task_id: t.downstream_task_ids for t in retrain.tasks}
    assert downstream["model.train_candidate"] == {"model.score_incumbent", "model.evaluate_and_promote"}
    assert downstream["model.score_incumbent"] == {"model.evaluate_and_promote"}  # one Spark job at a time


def test_data_docs_are_rendered_once_per_run_after_every_validation(dagbag):
    """GX is imported by one task per run (render_data_docs), not by the mapped ingest tasks; it also runs when
    a month was quarantined (its page is the readable report)."""
    for dag_id in ("tap_backfill", "tap_daily_ingest"):
        docs = dagbag.dags[dag_id].get_task("render_data_docs")
        assert docs.upstream_task_ids == {"plan_months", "month.gx_validation"}, dag_id
        assert docs.trigger_rule == "all_done"


def test_every_dag_has_owner_tags_docs_and_bounded_runs(dagbag):
    for dag_id in EXPECTED_DAGS:
        dag = dagbag.dags[dag_id]
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 80, f"{dag_id} has no real doc_md"
        assert dag.max_active_runs is not None and dag.max_active_runs <= 2, f"{dag_id}: max_active_runs unbounded"
        owners = {task.owner for task in dag.tasks}
        assert owners and "airflow" not in owners, f"{dag_id}: tasks owned by {owners}"


def test_pipeline_dags_share_the_platform_tag_and_alert_callback(dagbag):
    from taxi_anomaly.orchestration.alerts import on_failure_alert

    for dag_id in EXPECTED_DAGS - {"platform_health"}:
        dag = dagbag.dags[dag_id]
        assert "taxi-anomaly" in dag.tags
        for task in dag.tasks:
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert on_failure_alert in callbacks, f"{dag_id}.{task.task_id} sends no alert on failure"


def test_every_task_has_retries_delay_and_timeout(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            name = f"{dag.dag_id}.{task.task_id}"
            assert task.retries is not None and task.retries >= 0, name
            assert isinstance(task.retry_delay, timedelta) and task.retry_delay > timedelta(0), name
            assert task.execution_timeout is not None, f"{name} has no execution_timeout"


def test_retry_policies_differ_by_kind_of_task(dagbag):
    """Downloads retry with backoff, deterministic checks never retry, Spark gets a long timeout."""
    tasks = {t.task_id: t for t in dagbag.dags["tap_backfill"].tasks}
    download, check, spark = tasks["month.download"], tasks["month.gx_validation"], tasks["spark_anomaly_job"]
    assert download.retries >= 2 and download.retry_exponential_backoff
    assert check.retries == 0
    assert spark.execution_timeout > download.execution_timeout >= timedelta(minutes=30)
    assert spark.max_active_tis_per_dag == 1  # one Spark job at a time on a small machine


@pytest.mark.parametrize("file", [p.name for p in DAG_FILES])
def test_catchup_is_written_out_with_a_reason(file):
    """catchup must be an explicit keyword of every DAG, with a comment saying why."""
    source = (DAGS_FOLDER / file).read_text()
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("dag", "DAG")
    ]
    assert calls, f"{file} has no @dag/DAG call"
    for call in calls:
        keyword = next((k for k in call.keywords if k.arg == "catchup"), None)
        assert keyword is not None, f"{file}: catchup not set explicitly"
        line = source.splitlines()[keyword.lineno - 1]
        assert "#" in line, f"{file}: say why next to catchup= ({line.strip()})"


def test_dags_serialize_as_the_scheduler_stores_them(dagbag):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id in EXPECTED_DAGS:
        serialized = DagSerialization.to_dict(dagbag.dags[dag_id])
        assert serialized["dag"]["dag_id"] == dag_id


def test_ruff_bans_heavy_module_level_imports_in_dags():
    ruff = REPO / ".venv" / "bin" / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed in .venv (make setup)")
    config = (DAGS_FOLDER / "ruff.toml").read_text()
    for module in ("pandas", "pyspark", "sklearn", "great_expectations"):
        assert f'"{module}"' in config
    done = subprocess.run([str(ruff), "check", "--no-cache", str(DAGS_FOLDER)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
