"""include/spark/sparkapplication.yaml, rendered for real by Airflow's SparkKubernetesOperator.

The template is rendered exactly as in a task: the operator's own template fields, the DAG's Jinja environment,
the real `conn` / `var` accessors reading AIRFLOW_CONN_* / AIRFLOW_VAR_* environment variables built from
helm-values/ (the same variables the Kubernetes deployment provides). What the Kubernetes API server would do
next, since no cluster runs here, is stood in for by the spark-operator v1beta2 schema subset in
sparkapplication-v1beta2.subset.schema.json.
"""

from __future__ import annotations

import copy
import json
import sys
from datetime import datetime
from unittest import mock

import jsonschema
import pytest
import yaml

from local_platform.config import PlatformConfig
from local_platform.credentials import Credentials
from local_platform.spark import spark_defaults
from taxi_anomaly.orchestration.locations import Locations
from tests.deploy.deployment import (
    REPO,
    SCHEMA_FILE,
    connection_templates,
    env_value,
    fill_placeholders,
    naming,
    service_address,
    values,
)

# Stand-in secret values, so that the test can prove none of them ends up in the rendered object.
STAND_INS = {"S3_ACCESS_KEY": "stand-in-access-key-1f3a", "S3_SECRET_KEY": "stand-in-secret-key-9c2e"}

RUN_ID = "manual__2026-01-05T06:00:00+00:00"
BASE_JOB = {
    "trip_type": "yellow",
    "score_months": ("2024-01",),
    "train_months": ("2023-10", "2023-11", "2023-12"),
    "granularity": "city",
    "mode": "train-and-score",
    "run_id": RUN_ID,
    "detector_params": {"n_estimators": 200},
}
# The params the backend renders the template with, for a job of the default buckets (other tests reuse them).
BASE_PARAMS = Locations().job(**BASE_JOB).template_params()


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """The environment an Airflow pod of the deployment has: connections and variables as env vars."""
    patch = pytest.MonkeyPatch()
    if "airflow" not in sys.modules:
        patch.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    for name, value in connection_templates().items():
        patch.setenv(name, fill_placeholders(value, STAND_INS))
    for entry in values("airflow")["env"]:
        patch.setenv(entry["name"], entry["value"])
    yield
    patch.undo()


@pytest.fixture(scope="module")
def render(airflow_env):
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
    from airflow.sdk import DAG, BaseHook
    from airflow.sdk.execution_time.context import ConnectionAccessor, VariableAccessor

    with DAG(
        "tap_deploy_test",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        template_searchpath=[str(REPO / "include")],
    ) as dag:
        # As the DAG will call it: a path under include/, resolved through template_searchpath.
        SparkKubernetesOperator(
            task_id="spark_anomaly_detection",
            application_file="spark/sparkapplication.yaml",
            namespace=naming()["namespace"],
            kubernetes_conn_id=naming()["connections"]["kubernetes"],
        )
    where = Locations.from_connection(BaseHook.get_connection(naming()["connections"]["s3"]))

    def _render(changes: dict | None = None, sizing: dict | None = None, drop: tuple[str, ...] = ()):
        """Render for a job built as the orchestration builds it (Locations from the tap_s3 connection), with
        the backend's params: the job's template_params, plus sizing overrides."""
        op = copy.deepcopy(dag.get_task("spark_anomaly_detection"))
        job = where.job(**{**BASE_JOB, **(changes or {})})
        params = job.template_params(sizing)
        for name in drop:
            params.pop(name)
        context = {
            "params": params,
            "run_id": RUN_ID,
            "dag": dag,
            "conn": ConnectionAccessor(),
            "var": {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
        }
        op.render_template_fields(context)
        return op, op.template_body["spark"]

    return _render


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, document) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize(
    "overrides",
    [
        ({}, None),
        ({"trip_type": "green", "granularity": "borough", "mode": "score", "train_months": ()}, None),
        ({"trip_type": "fhvhv", "score_months": ["2024-01", "2024-02"], "train_months": ["2023-12"]}, None),
        (
            {"trip_type": "fhv", "mode": "train", "write_trips": True},
            {"executor_instances": 4, "executor_memory": "4g"},
        ),
    ],
    ids=["defaults", "borough-score", "month-lists", "bigger-train"],
)
def test_rendered_application_is_a_valid_v1beta2_sparkapplication(render, validator, overrides):
    changes, sizing = overrides
    _, app = render(changes, sizing)
    assert errors(validator, app) == []


def test_the_schema_subset_rejects_what_the_api_server_would_drop_or_refuse(render, validator):
    _, app = render()
    misspelt = copy.deepcopy(app)
    misspelt["spec"]["driver"]["memroy"] = "2g"
    bad_policy = copy.deepcopy(app)
    bad_policy["spec"]["restartPolicy"]["type"] = "Sometimes"
    bad_name = copy.deepcopy(app)
    bad_name["metadata"]["name"] = "Tap_Anomaly"
    bad_label = copy.deepcopy(app)
    bad_label["spec"]["driver"]["labels"]["run"] = RUN_ID  # ':' and '+' are not allowed in label values
    no_image_type = copy.deepcopy(app)
    del no_image_type["spec"]["type"]
    for broken in (misspelt, bad_policy, bad_name, bad_label, no_image_type):
        assert errors(validator, broken), "the schema subset must reject this document"


def test_arguments_parse_with_the_jobs_own_parser(render):
    """The rendered arguments are the job's, read back by the job's own parser (the contract)."""
    from taxi_anomaly.contract import AnomalyJob

    _, app = render({"score_months": ["2024-02", "2024-01"], "granularity": "zone", "detector": "kmeans"})
    args = AnomalyJob.from_argv(app["spec"]["arguments"])
    buckets = naming()["buckets"]
    assert args.trip_type == "yellow"
    assert args.score_months == ("2024-01", "2024-02")
    assert args.train_months == ("2023-10", "2023-11", "2023-12")
    assert (args.granularity, args.mode, args.model_version) == ("zone", "train-and-score", "latest")
    assert (args.detector, args.detector_params) == ("kmeans", {"n_estimators": 200})
    assert args.run_id == RUN_ID
    assert args.raw_uri == f"s3a://{buckets['raw']}/tlc"
    assert args.models_uri == f"s3a://{buckets['models']}/registry"
    assert args.labels_uri == f"s3a://{buckets['raw']}/labels"
    assert args.namespace == naming()["iceberg"]["namespace"]
    assert (args.zones_uri, args.write_trips) == (None, False)


def test_hostile_values_stay_single_arguments(render):
    """Whatever a value holds, it is one argument (JSON-quoted into the YAML), never YAML or a second flag."""
    from taxi_anomaly.contract import AnomalyJob

    odd = {"detector_params": {"note": "x\n  - --namespace\n  - other: [1]", "n_estimators": 20}}
    _, app = render(odd)
    assert AnomalyJob.from_argv(app["spec"]["arguments"]).detector_params == odd["detector_params"]


def test_a_missing_required_param_fails_the_rendering(render):
    with pytest.raises(Exception, match="arguments"):
        render(drop=("arguments",))


def effective_conf(app: dict) -> dict[str, str]:
    """What Spark sees: sparkConf plus hadoopConf as spark.hadoop.* (the operator's translation)."""
    conf = dict(app["spec"]["sparkConf"])
    conf.update({f"spark.hadoop.{k}": v for k, v in app["spec"]["hadoopConf"].items()})
    return conf


def test_spark_conf_mirrors_the_local_spark_defaults(render):
    """Every setting of local_platform/spark.py is present with the same value, except the local-only ones, the
    endpoints (the cluster's Services instead of loopback) and the credentials (env from a Secret instead)."""
    _, app = render()
    local = spark_defaults(PlatformConfig(), Credentials.generate())
    cluster = effective_conf(app)
    local_only = {
        "spark.master",
        "spark.jars",
        "spark.driver.host",
        "spark.driver.bindAddress",
        "spark.ui.enabled",
        "spark.pyspark.python",
        "spark.pyspark.driver.python",
    }
    credentials = {"spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.secret.key"}
    metastore_host, metastore_port = service_address("metastore")
    minio_host, minio_port = service_address("minio")
    endpoints = {
        "spark.sql.catalog.iceberg.uri": f"thrift://{metastore_host}:{metastore_port}",
        "spark.hadoop.fs.s3a.endpoint": f"http://{minio_host}:{minio_port}",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
        ),
    }
    for key, local_value in local.items():
        if key in local_only or key in credentials:
            assert key not in cluster, f"{key} is local-only"
        elif key in endpoints:
            assert cluster[key] == endpoints[key], key
        else:
            assert cluster.get(key) == local_value, f"{key}: cluster {cluster.get(key)!r}, local {local_value!r}"
    assert cluster["spark.sql.catalog.iceberg.warehouse"] == naming()["iceberg"]["warehouse"]
    assert cluster["spark.sql.execution.arrow.maxRecordsPerBatch"] == "50000"
    assert cluster["spark.sql.session.timeZone"] == "UTC"


def test_credentials_come_from_the_secret_and_are_never_rendered(render):
    _, app = render()
    text = json.dumps(app)
    assert not any(value in text for value in STAND_INS.values()), "an S3 key was rendered into the object"
    secret = naming()["secrets"]["s3"]
    for role in ("driver", "executor"):
        env = app["spec"][role]["env"]
        assert env_value(env, "AWS_ACCESS_KEY_ID") == {
            "secretKeyRef": {"name": secret["name"], "key": secret["keys"]["access_key"]}
        }
        assert env_value(env, "AWS_SECRET_ACCESS_KEY") == {
            "secretKeyRef": {"name": secret["name"], "key": secret["keys"]["secret_key"]}
        }


def test_image_entrypoint_resources_and_lifecycle(render):
    _, app = render(sizing={"executor_instances": 3})
    spec = app["spec"]
    images = naming()["images"]["spark"]
    assert spec["image"] == f"{images['repository']}:{images['tag']}"
    assert spec["mainApplicationFile"] == naming()["spark_image"]["main_application_file"]
    assert (spec["type"], spec["mode"], spec["pythonVersion"], spec["sparkVersion"]) == (
        "Python",
        "cluster",
        "3",
        "4.1.3",
    )
    assert spec["restartPolicy"] == {"type": "Never"}, "retries belong to Airflow"
    assert spec["timeToLiveSeconds"] > 0
    assert spec["executor"]["instances"] == 3
    for role in ("driver", "executor"):
        assert spec[role]["serviceAccount"] == naming()["service_accounts"]["spark"]
        assert spec[role]["cores"] >= 1 and spec[role]["memory"] and spec[role]["memoryOverhead"]
        assert spec[role]["labels"]["taxi-anomaly/trip-type"] == "yellow"
    assert app["metadata"]["annotations"]["taxi-anomaly/airflow-run-id"] == RUN_ID


def test_body_sent_to_the_kubernetes_api(render, validator):
    """What CustomObjectLauncher would POST: name made unique, namespace set, group/version/plural from the
    template. The launcher is built with mock clients; building it sends nothing."""
    from airflow.providers.cncf.kubernetes.operators.custom_object_launcher import CustomObjectLauncher

    op, _ = render()
    name = op.create_job_name()
    launcher = CustomObjectLauncher(
        name=name,
        namespace=op.namespace,
        kube_client=mock.Mock(),
        custom_obj_api=mock.Mock(),
        template_body=op.template_body,
    )
    body = launcher.body
    assert errors(validator, body) == []
    assert body["metadata"]["name"] == name and name.startswith("tap-anomaly-yellow-") and len(name) <= 63
    assert body["metadata"]["namespace"] == naming()["namespace"]
    assert (launcher.api_group, launcher.api_version, launcher.plural) == (
        "sparkoperator.k8s.io",
        "v1beta2",
        "sparkapplications",
    )
    # Driver logs are read from this container; the provider forces the name.
    assert op.base_container_name == "spark-kubernetes-driver"


def test_rendering_touches_no_cluster(render):
    """Constructing and rendering the operator builds no Kubernetes client (hook and clients are lazy)."""
    with (
        mock.patch("kubernetes.config.load_incluster_config") as incluster,
        mock.patch("kubernetes.config.load_kube_config") as kubeconfig,
    ):
        render()
    assert not incluster.called and not kubeconfig.called


def test_the_operator_loads_the_rendered_file_itself(render):
    """application_file names the template; after rendering it holds the YAML text the operator parses."""
    op, app = render()
    assert not op.application_file.endswith(".yaml")
    assert yaml.safe_load(op.application_file) == app
