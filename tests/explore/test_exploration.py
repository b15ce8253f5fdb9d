"""The exploration services for real: Spark Connect refuses clients without the install's token and serves those
with it; the provisioned notebook runs headless against it on months in HDFS; JupyterLab opens in Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from local_platform.config import REPO_ROOT
from local_platform.services.exploration import NOTEBOOKS_DIR, connect_client_env
from local_platform.spark import spark_env
from tests.conftest import FHVHV_HISTORY, FHVHV_TARGET

pytestmark = pytest.mark.platform

NOTEBOOK = NOTEBOOKS_DIR / "explore_anomalies.ipynb"
SEEDED_EXPLANATION = "seeded row: trip count above usual (+9.9 sd)"

# Runs in a fresh interpreter: a Connect session in the test process would outlive the test and be found by the
# classic `spark` fixture's getOrCreate.
CONNECT_PROBE = """
import sys
from pyspark.sql import SparkSession
try:
    spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
    print("rows", spark.range(7).count(), spark.sql("SHOW NAMESPACES IN iceberg").count() >= 0)
except Exception as exc:
    print("refused", type(exc).__name__, " ".join(str(exc).split())[:600])
"""


def _probe(url: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CONNECT_PROBE, url], env=env, capture_output=True, text=True, timeout=180
    )
    return result.stdout.strip() + result.stderr[-500:]


def test_spark_connect_serves_the_token_and_refuses_the_rest(platform, spark_connect):
    cfg, token = platform.cfg, platform.creds.spark_connect_token
    env = {k: v for k, v in spark_env(cfg).items() if k != "PYTHONPATH"} | {"PATH": "/usr/bin:/bin"}
    assert _probe(f"{cfg.spark_connect_url}/;token={token}", env).startswith("rows 7 True")
    wrong = _probe(f"{cfg.spark_connect_url}/;token=not-{token}", env)
    assert wrong.startswith("refused") and "UNAUTHENTICATED" in wrong and "Invalid authentication token" in wrong
    missing = _probe(cfg.spark_connect_url, env)
    assert missing.startswith("refused") and "No authentication token provided" in missing


@pytest.fixture(scope="module")
def months_in_hdfs(platform, hdfs, generated_fhvhv_months):
    """The generated months in the raw zone's layout in HDFS, under a unique prefix (the notebook's raw zone)."""
    from taxi_anomaly import layout, tlc
    from taxi_anomaly.ingest.hdfs_storage import HdfsStore
    from taxi_anomaly.ingest.settings import HdfsSettings

    cfg = platform.cfg
    store = HdfsStore(HdfsSettings(cfg.webhdfs_url, cfg.hdfs_user, cfg.hdfs_uri))
    prefix = f"nb-{uuid.uuid4().hex[:8]}/"
    for path, month in zip(generated_fhvhv_months, [*FHVHV_HISTORY, FHVHV_TARGET], strict=True):
        store.put_file(cfg.raw_bucket, prefix + layout.raw_key("fhvhv", tlc.YearMonth.parse(month)), path)
    yield prefix
    store.delete_prefix(cfg.raw_bucket, prefix)


SEED_SCORES = """
import sys
from pyspark.sql import SparkSession
from anomaly_detection import tables
spark = SparkSession.builder.getOrCreate()
namespace, action = sys.argv[1], sys.argv[2]
if action == "drop":
    tables.drop_namespace(spark, namespace)
else:
    tables.ensure_tables(spark, namespace, {tables.SCORES_TABLE: tables.TABLE_DDL[tables.SCORES_TABLE]})
    spark.sql(
        f"INSERT INTO {tables.table_name(namespace, tables.SCORES_TABLE)} VALUES ('fhvhv', 'city', '2024-04', 'NYC', "
        "TIMESTAMP_NTZ '2024-04-03 08:00:00', 100, 20.0, 3.0, 1000.0, 0.91, true, array('z_log_rate'), "
        f"'{sys.argv[3]}', 'v-test', 'run-test', current_timestamp())"
    )
"""


@pytest.fixture(scope="module")
def notebook_env(platform, spark_connect) -> dict[str, str]:
    """What JupyterLab gives its kernels: the Connect address and token, the job's package on the path."""
    service = platform.service("jupyter")
    env = service.env()  # type: ignore[attr-defined]
    assert env.items() >= connect_client_env(platform.cfg, platform.creds).items()
    return env


@pytest.fixture(scope="module")
def scored_namespace(platform, notebook_env):
    """A namespace whose anomaly_scores table holds one seeded row, written through Spark Connect."""
    namespace = f"nb_{uuid.uuid4().hex[:8]}"
    run = [sys.executable, "-c", SEED_SCORES, namespace]
    subprocess.run([*run, "create", SEEDED_EXPLANATION], env=notebook_env, check=True, timeout=300)
    yield namespace
    subprocess.run([*run, "drop"], env=notebook_env, check=True, timeout=300)


def test_the_notebook_runs_headless_through_spark_connect(
    platform, notebook_env, months_in_hdfs, scored_namespace, tmp_path, record_property
):
    executed = tmp_path / "explore_anomalies.executed.ipynb"
    parameters = {
        "raw_root": f"{platform.cfg.hdfs_uri}/{platform.cfg.raw_bucket}",
        "prefix": months_in_hdfs,
        "train_months": list(FHVHV_HISTORY),
        "score_month": FHVHV_TARGET,
        "namespace": scored_namespace,
    }
    # papermill in a child process: it starts the kernel with this environment, as JupyterLab does.
    subprocess.run(
        [
            str(platform.cfg.venv_dir / "bin" / "papermill"),
            str(NOTEBOOK),
            str(executed),
            "-y",
            json.dumps(parameters),
            "--cwd",
            str(NOTEBOOKS_DIR),
            "-k",
            "python3",
        ],
        env=notebook_env,
        check=True,
        timeout=600,
    )
    record_property("executed_notebook", str(executed))
    cells = json.loads(executed.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "expected the time series, the 2D and the 3D PCA figures"
    assert "pyspark.sql.connect" in text  # the session is a Connect client, not a local Spark
    flagged, windows = _anomalies_line(text)
    assert windows == 30 * 48 and 0 < flagged < windows * 0.1
    assert "usual (" in text and "+0.0 sd" not in text  # the explanations of the top anomalies
    assert "explained variance" in text
    assert SEEDED_EXPLANATION in text  # the Iceberg cell read the scored table


def _anomalies_line(text: str) -> tuple[int, int]:
    line = next(line for line in text.splitlines() if line.startswith("anomalous windows: "))
    flagged, _, windows = line.removeprefix("anomalous windows: ").split()[:3]
    return int(flagged), int(windows)


def test_jupyterlab_wants_its_token_and_opens_the_notebook(platform, jupyter, tmp_path, record_property):
    from tests.serving.browser import CHROMIUM_CANDIDATES, Browser, find_executable

    cfg, token = platform.cfg, platform.creds.jupyter_token
    assert requests.get(f"{cfg.jupyter_url}/api/contents", timeout=10).status_code == 403
    assert requests.get(f"{cfg.jupyter_url}/api/contents?token=wrong", timeout=10).status_code == 403
    listing = requests.get(f"{cfg.jupyter_url}/api/contents", params={"token": token}, timeout=10).json()
    assert NOTEBOOK.name in [item["name"] for item in listing["content"]]

    chromium, chromedriver = find_executable(CHROMIUM_CANDIDATES), find_executable(("chromedriver",))
    assert chromium and chromedriver, "needs Debian's chromium and chromium-driver (make setup installs them)"
    with Browser(chromedriver, chromium, tmp_path / "chromedriver.log", width=1600, height=1000) as browser:
        browser.open(f"{cfg.jupyter_url}/lab/tree/{NOTEBOOK.name}?token={token}")
        browser.wait_for(
            "return [...document.querySelectorAll('.jp-Cell')].length >= 5 && "
            "document.body.innerText.includes('Spark Connect')",
            120,
            "the notebook open in JupyterLab",
        )
        shot = browser.screenshot(tmp_path / "jupyterlab.png")
    assert shot.stat().st_size > 20_000
    record_property("screenshot", str(shot))
    print(f"JupyterLab screenshot: {shot}")


def test_the_notebook_is_stored_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")
    assert Path(REPO_ROOT / "notebooks") == NOTEBOOKS_DIR
