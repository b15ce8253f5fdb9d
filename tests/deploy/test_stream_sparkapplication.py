"""include/spark/stream-sparkapplication.yaml, rendered for real as the batch template is, and the guide's command.

Rendered through SparkKubernetesOperator's template fields with the deployment's connections and variables as
environment variables (tests/deploy/test_sparkapplication.py does the same for the batch template), validated
against the spark-operator v1beta2 schema subset, its arguments parsed by the streaming job's own parser.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import PurePosixPath

import jinja2
import pytest
import yaml
from run_stream_scoring import parse_args

from taxi_anomaly.streaming import topics
from taxi_anomaly.streaming.settings import CONN_ENV, KafkaSettings
from tests.deploy.deployment import (
    DEPLOY_GUIDE,
    REPO,
    STREAM_SPARK_TEMPLATE,
    connection_templates,
    env_value,
    fill_placeholders,
    naming,
    render_spark_template,
    set_airflow_environment,
    spark_schema_errors,
    values,
)
from tests.deploy.test_sparkapplication import BASE_PARAMS as BATCH_PARAMS
from tests.deploy.test_sparkapplication import RUN_ID as BATCH_RUN_ID

APPLICATION_FILE = str(STREAM_SPARK_TEMPLATE.relative_to(REPO / "include"))
# Stand-ins for the secrets the streaming job's pods get (and their neighbours in the Secret), so that the test can
# prove none of them is rendered. The other placeholders are filled with dummy-<name>.
STAND_INS = {
    "S3_ACCESS_KEY": "stand-in-access-key-5d1b",
    "S3_SECRET_KEY": "stand-in-secret-key-07ae",
    "KAFKA_STREAMING_PASSWORD": "stand-in-kafka-streaming-4c9f",
    "KAFKA_REPLAY_PASSWORD": "stand-in-kafka-replay-81d0",
    "KAFKA_READER_PASSWORD": "stand-in-kafka-reader-e62a",
}
BASE_PARAMS = {"trip_type": "yellow", "granularity": "city"}
ZONES = "s3a://tap-raw/zones/taxi_zone_lookup.csv"
# Every optional argument of the job that the template passes through, with a value unlike the job's default.
OPTIONAL = {
    "trips_topic": "tap.trips-replayed",
    "alerts_topic": "tap.alerts-test",
    "dead_letters_topic": "tap.dead-letters-test",
    "watermark": "15 minutes",
    "trigger": "10 seconds",
    "model_version": "v20260105T060000",
    "starting_offsets": "latest",
    "max_offsets_per_trigger": 5000,
}
SECRETS = naming()["secrets"]


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    set_airflow_environment(patch, tmp_path_factory.mktemp("airflow-home"), STAND_INS)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def render(airflow_env):
    def _render(overrides: dict | None = None, drop: tuple[str, ...] = ()) -> dict:
        params = {**BASE_PARAMS, **(overrides or {})}
        for name in drop:
            params.pop(name)
        return render_spark_template(APPLICATION_FILE, params)[1]

    return _render


def job_args(app: dict):
    args, status_file = parse_args(app["spec"]["arguments"])
    assert status_file is None, "the status file is the local supervisor's; the cluster has no reader for it"
    return args


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"trip_type": "green", "granularity": "borough", "zones_uri": ZONES},
        {"trip_type": "fhvhv", "granularity": "zone", **OPTIONAL},
        {"trip_type": "fhv", "executor_instances": 2, "executor_memory": "4g", "driver_memory": "3g"},
    ],
    ids=["defaults", "borough", "every-optional-argument", "bigger"],
)
def test_rendered_application_is_a_valid_v1beta2_sparkapplication(render, overrides):
    assert spark_schema_errors(render(overrides)) == []


def test_arguments_parse_with_the_jobs_own_parser(render):
    args = job_args(render())
    buckets = naming()["buckets"]
    assert (args.trip_type, args.granularity) == ("yellow", "city")
    assert args.models_uri == f"s3a://{buckets['models']}/registry"
    assert args.checkpoint_uri == f"s3a://{buckets['warehouse']}/checkpoints/stream-yellow-city"
    assert args.namespace == naming()["iceberg"]["namespace"]
    assert args.zones_uri is None
    assert args.model_version == "promoted", "the job follows the promotion pointer unless told otherwise"
    assert args.starting_offsets == "earliest" and args.max_offsets_per_trigger is None


def test_topics_not_given_are_the_stream_contract(render):
    """The template does not restate the topic names: the job's defaults apply, and they are topics.py's and the
    KafkaTopic names of the deployment."""
    app = render()
    assert not [a for a in app["spec"]["arguments"] if a.endswith("-topic")]
    args = job_args(app)
    expected = (topics.TRIPS.name, topics.ALERTS.name, topics.DEAD_LETTERS.name)
    assert (args.trips_topic, args.alerts_topic, args.dead_letters_topic) == expected
    kafka_topics = naming()["kafka"]["topics"]
    assert expected == (kafka_topics["trips"], kafka_topics["alerts"], kafka_topics["dead_letters"])


def test_optional_arguments_are_rendered_only_when_given(render):
    given = job_args(render({"granularity": "zone", "zones_uri": ZONES, **OPTIONAL}))
    assert given.zones_uri == ZONES
    assert {name: getattr(given, name) for name in OPTIONAL} == OPTIONAL
    flags = {f"--{name.replace('_', '-')}" for name in [*OPTIONAL, "zones_uri"]}
    assert not flags & set(render()["spec"]["arguments"])
    # An empty value counts as not given (a form field left blank), rather than rendering `--flag ""`.
    assert not flags & set(render(dict.fromkeys(["zones_uri", *OPTIONAL], ""))["spec"]["arguments"])


def test_own_uris_and_namespace_replace_the_defaults(render):
    args = job_args(
        render(
            {
                "models_uri": "s3a://tap-models/demo/registry",
                "checkpoint_uri": "s3a://tap-warehouse/checkpoints/trial",
                "namespace": "taxi_trial",
            }
        )
    )
    assert (args.models_uri, args.checkpoint_uri, args.namespace) == (
        "s3a://tap-models/demo/registry",
        "s3a://tap-warehouse/checkpoints/trial",
        "taxi_trial",
    )


@pytest.mark.parametrize("missing", ["trip_type", "granularity"])
def test_a_missing_required_param_fails_the_rendering(render, missing):
    with pytest.raises(jinja2.UndefinedError, match=f"no attribute '{missing}'"):
        render(drop=(missing,))


def test_borough_without_zones_fails_the_rendering_instead_of_crash_looping(render):
    """The job would refuse these arguments, and restartPolicy Always would resubmit it forever."""
    with pytest.raises(jinja2.UndefinedError, match="no attribute 'zones_uri'"):
        render({"granularity": "borough"})
    assert job_args(render({"granularity": "borough", "zones_uri": ZONES})).zones_uri == ZONES


def test_each_stream_has_its_own_application_and_checkpoint(render):
    apps = [render({"trip_type": t, "granularity": g}) for t in ("yellow", "fhvhv") for g in ("city", "zone")]
    names = {app["metadata"]["name"] for app in apps}
    checkpoints = {job_args(app).checkpoint_uri for app in apps}
    assert len(names) == len(checkpoints) == len(apps)
    assert render()["metadata"]["name"] == "tap-stream-yellow-city"


def test_restart_policy_keeps_the_service_running(render):
    spec = render()["spec"]
    policy = spec["restartPolicy"]
    assert policy["type"] == "Always"
    # Without them the operator cannot compute when to retry and never resubmits.
    assert policy["onFailureRetryInterval"] >= 1 and policy["onSubmissionFailureRetryInterval"] >= 1
    assert "timeToLiveSeconds" not in spec, "a TTL would delete the running service"
    misspelt = copy.deepcopy(render())
    misspelt["spec"]["restartPolicy"]["onFailureRetryIntervalSeconds"] = 30
    assert spark_schema_errors(misspelt), "the schema subset must reject a field the API server would drop"


def secret_data() -> dict[str, dict[str, str]]:
    """The Secrets the guide creates, as far as the template reads them (stand-ins for the values)."""
    s3 = SECRETS["s3"]
    return {
        s3["name"]: {
            s3["keys"]["access_key"]: STAND_INS["S3_ACCESS_KEY"],
            s3["keys"]["secret_key"]: STAND_INS["S3_SECRET_KEY"],
        },
        SECRETS["airflow_connections"]["name"]: {
            name: fill_placeholders(value, STAND_INS) for name, value in connection_templates().items()
        },
    }


def pod_environment(env: list[dict]) -> dict[str, str]:
    """What the kubelet makes of an env list: every secretKeyRef resolved against the Secrets."""
    data = secret_data()
    resolved = {}
    for entry in env:
        ref = entry["valueFrom"]["secretKeyRef"]
        resolved[entry["name"]] = data[ref["name"]][ref["key"]]
    return resolved


def test_credentials_come_from_secrets_and_are_never_rendered(render):
    app = render({"granularity": "zone", **OPTIONAL})
    text = json.dumps(app)
    assert not [value for value in STAND_INS.values() if value in text], "a credential was rendered"
    for role in ("driver", "executor"):
        assert all(set(entry) == {"name", "valueFrom"} for entry in app["spec"][role]["env"]), "literal env value"
    driver = app["spec"]["driver"]["env"]
    assert env_value(driver, CONN_ENV["streaming"]) == {
        "secretKeyRef": {
            "name": SECRETS["airflow_connections"]["name"],
            "key": SECRETS["airflow_connections"]["env_file_keys"]["kafka_streaming"],
        }
    }
    executor_names = {entry["name"] for entry in app["spec"]["executor"]["env"]}
    assert executor_names == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, "the Kafka login stays on the driver"


def test_the_drivers_environment_gives_the_job_its_streaming_login(render):
    """With the Secrets resolved, the job's own KafkaSettings.for_role('streaming') logs in as the streaming user
    at the bootstrap Service; the S3 key pair is the MinIO root pair."""
    environment = pod_environment(render()["spec"]["driver"]["env"])
    kafka = KafkaSettings.for_role("streaming", environ=environment)
    bootstrap = naming()["services"]["kafka"]
    assert kafka.bootstrap == f"{bootstrap['host']}:{bootstrap['port']}"
    assert kafka.user == naming()["kafka"]["users"]["streaming"]
    assert kafka.password == STAND_INS["KAFKA_STREAMING_PASSWORD"]
    assert (kafka.security_protocol, kafka.mechanism) == (
        naming()["kafka"]["listener"]["security_protocol"],
        naming()["kafka"]["listener"]["sasl_mechanism"],
    )
    assert (environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]) == (
        STAND_INS["S3_ACCESS_KEY"],
        STAND_INS["S3_SECRET_KEY"],
    )


def test_spark_and_s3_settings_and_image_are_the_batch_templates(render):
    """The same catalog, S3 and image as the batch job, so that both write the same tables."""
    stream = render()["spec"]
    _, batch_app = render_spark_template("spark/sparkapplication.yaml", BATCH_PARAMS, run_id=BATCH_RUN_ID)
    batch = batch_app["spec"]
    assert stream["sparkConf"] == batch["sparkConf"]
    assert stream["hadoopConf"] == batch["hadoopConf"]
    assert stream["sparkConf"]["spark.sql.catalog.iceberg.warehouse"] == naming()["iceberg"]["warehouse"]
    same = ("type", "mode", "pythonVersion", "sparkVersion", "image", "imagePullPolicy")
    assert {k: stream[k] for k in same} == {k: batch[k] for k in same}
    images = naming()["images"]["spark"]
    assert stream["image"] == f"{images['repository']}:{images['tag']}"
    for role in ("driver", "executor"):
        s3_env = [e for e in stream[role]["env"] if e["name"].startswith("AWS_")]
        assert s3_env == batch[role]["env"]
        assert stream[role]["serviceAccount"] == batch[role]["serviceAccount"] == naming()["service_accounts"]["spark"]


def test_entry_file_sizing_and_labels(render):
    spec = render()["spec"]
    assert spec["mainApplicationFile"] == naming()["spark_image"]["stream_application_file"]
    keys = ("instances", "cores", "coreLimit", "memory")
    sizing = {role: {k: spec[role].get(k) for k in keys} for role in ("driver", "executor")}
    assert sizing["driver"] == {"instances": None, "cores": 1, "coreLimit": "1", "memory": "2g"}
    assert sizing["executor"] == {"instances": 1, "cores": 2, "coreLimit": "2", "memory": "2g"}
    # One task slot per partition of the trips topic.
    assert spec["executor"]["instances"] * spec["executor"]["cores"] == topics.TRIPS.partitions
    bigger = render({"driver_cores": 2, "driver_memory": "3g", "executor_instances": 2, "executor_cores": 4})["spec"]
    assert (bigger["driver"]["cores"], bigger["driver"]["coreLimit"], bigger["driver"]["memory"]) == (2, "2", "3g")
    assert (bigger["executor"]["instances"], bigger["executor"]["cores"]) == (2, 4)

    app = render({"trip_type": "green", "granularity": "zone"})
    common = {"app.kubernetes.io/name": "taxi-anomaly-streaming", "app.kubernetes.io/part-of": "taxi-anomaly-platform"}
    stream = {"taxi-anomaly/trip-type": "green", "taxi-anomaly/granularity": "zone"}
    assert app["metadata"]["labels"] == {**common, **stream}
    for role in ("driver", "executor"):
        component = {"app.kubernetes.io/component": f"spark-{role}"}
        assert app["spec"][role]["labels"] == {**common, **component, **stream}


# The guide's deployment command -------------------------------------------------------------------------------


def guide_step_9() -> str:
    text = DEPLOY_GUIDE.read_text()
    return text[text.index("\n## 9. ") : text.index("\n## 10. ")]


def render_command() -> tuple[str, list[str], str]:
    """The render-and-apply block of step 9: (whole command, arguments after `python -`, the Python heredoc)."""
    blocks = re.findall(r"```bash\n(.*?)```", guide_step_9(), re.S)
    found = [b for b in blocks if APPLICATION_FILE in b]
    assert len(found) == 1, "step 9 has one bash block that renders the streaming template"
    match = re.search(r"python - (.*?) <<'PY'[^\n]*\n(.*?)\nPY\n", found[0], re.S)
    assert match, "the block runs a Python heredoc (<<'PY' ... PY)"
    return found[0], match.group(1).split(), match.group(2)


def test_the_guides_command_renders_what_the_operator_renders(render, capsys, monkeypatch):
    """The snippet the guide runs in the scheduler pod, run here on the repository's include/: its output is the
    application the operator renders, for the defaults and for a borough stream with zones."""
    _, arguments, code = render_command()
    include, trip_type, granularity, params = arguments
    # In the pod, include/ is where git-sync puts the repository: next to the plugins folder Airflow is given.
    plugins = PurePosixPath(values("airflow")["config"]["core"]["plugins_folder"])
    assert include == str(plugins.parent / "include")
    assert (trip_type, granularity, params) == ('"$TRIP_TYPE"', '"$GRANULARITY"', '"$PARAMS"')
    for overrides in ({}, {"granularity": "borough", "zones_uri": ZONES, "watermark": "20 minutes"}):
        wanted = {**BASE_PARAMS, **overrides}
        extra = {k: v for k, v in wanted.items() if k not in BASE_PARAMS}
        argv = ["-", str(REPO / "include"), wanted["trip_type"], wanted["granularity"], json.dumps(extra)]
        monkeypatch.setattr(sys, "argv", argv)
        exec(compile(code, str(DEPLOY_GUIDE), "exec"), {"__name__": "__main__"})  # noqa: S102 - the guide's own code
        printed = capsys.readouterr().out
        assert yaml.safe_load(printed) == render(overrides)


def test_the_guides_command_applies_the_rendered_file_in_the_platform_namespace():
    command, _, _ = render_command()
    # The scheduler pod has the connections (tap-airflow-connections), the variables and the repository.
    assert 'kubectl -n "$NS" exec -i statefulset/tap-airflow-scheduler -c scheduler --' in command
    output = re.search(r"<<'PY' > (\S+)", command).group(1)
    assert f'kubectl -n "$NS" apply -f {output}' in command
    assert "PARAMS='{}'" in command, "no optional params by default"
