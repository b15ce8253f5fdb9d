"""Fixtures of the DAG tests: the DAG folder parsed by Airflow's own DagBag, in this process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """An Airflow home for tests that only parse DAGs (unless Airflow is configured already, e.g. the platform's)."""
    if "airflow" not in sys.modules and "AIRFLOW_HOME" not in os.environ:
        home = tmp_path_factory.mktemp("airflow-home")
        os.environ["AIRFLOW_HOME"] = str(home)
        return home
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


@pytest.fixture(scope="session")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER), safe_mode=False)
