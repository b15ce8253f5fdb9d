"""Readers for the Kubernetes deployment files, shared by the tests in tests/deploy/.

No cluster, helm binary or Docker runs in the tests: these helpers read the files as the tools would (YAML, env
files, Dockerfile instructions) so that the tests can compare them with each other and with the local platform.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
HELM_VALUES = REPO / "helm-values"
MANIFESTS = HELM_VALUES / "manifests"
SPARK_TEMPLATE = REPO / "include" / "spark" / "sparkapplication.yaml"
STREAM_SPARK_TEMPLATE = REPO / "include" / "spark" / "stream-sparkapplication.yaml"
CONNECTIONS_TEMPLATE = HELM_VALUES / "secrets" / "airflow-connections.env.tpl"
SPARK_DOCKERFILE = REPO / "images" / "spark" / "Dockerfile"
METASTORE_DOCKERFILE = HELM_VALUES / "hive-metastore" / "Dockerfile"
DEPLOY_GUIDE = REPO / "docs" / "deploy-kubernetes.md"
SCHEMA_FILE = Path(__file__).with_name("sparkapplication-v1beta2.subset.schema.json")
STRIMZI_SCHEMA_FILE = Path(__file__).with_name("strimzi-v1.subset.schema.json")
KAFKA_MANIFEST = MANIFESTS / "kafka.yaml"
CHART_KEYS_FILE = Path(__file__).with_name("chart_keys.yaml")

CHARTS = ("airflow", "spark-operator", "minio", "trino", "superset", "strimzi", "jupyterhub")


@cache
def naming() -> dict[str, Any]:
    return yaml.safe_load((HELM_VALUES / "naming.yaml").read_text())


@cache
def values(chart: str) -> dict[str, Any]:
    return yaml.safe_load((HELM_VALUES / f"{chart}.yaml").read_text())


@cache
def manifests() -> list[dict[str, Any]]:
    """Every Kubernetes object of helm-values/manifests/*.yaml."""
    objects = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in manifests() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in helm-values/manifests, found {len(found)}"
    return found[0]


def kafka_objects(kind: str) -> list[dict[str, Any]]:
    """The Strimzi resources of one kind in helm-values/manifests/kafka.yaml."""
    return [d for d in yaml.safe_load_all(KAFKA_MANIFEST.read_text()) if d and d["kind"] == kind]


@cache
def chart_keys() -> dict[str, Any]:
    return yaml.safe_load(CHART_KEYS_FILE.read_text())


def connection_templates() -> dict[str, str]:
    """AIRFLOW_CONN_* name -> JSON text with ${VAR} placeholders, as in the env-file template."""
    entries = {}
    for line in CONNECTIONS_TEMPLATE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            entries[name] = value
    return entries


PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def fill_placeholders(text: str, values_by_name: dict[str, str] | None = None) -> str:
    """What `envsubst` does to the template, with stand-in values (default: dummy-<name>)."""
    values_by_name = values_by_name or {}
    return PLACEHOLDER.sub(lambda m: values_by_name.get(m.group(1), f"dummy-{m.group(1).lower()}"), text)


def connections() -> dict[str, dict[str, Any]]:
    """conn_id -> connection dict, from the template with stand-in secrets."""
    return {
        name.removeprefix("AIRFLOW_CONN_").lower(): json.loads(fill_placeholders(value))
        for name, value in connection_templates().items()
    }


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) pair of a YAML document, lists included (index as path part)."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def secret_key_refs(document: Any) -> list[tuple[str, str]]:
    """(secret name, key) of every secretKeyRef in a document."""
    return [
        (value["name"], value["key"])
        for path, value in walk(document)
        if path.endswith("secretKeyRef") and isinstance(value, dict)
    ]


def env_value(env: list[dict[str, Any]], name: str) -> Any:
    matches = [e for e in env if e["name"] == name]
    assert len(matches) == 1, f"env {name}: {len(matches)} entries"
    entry = matches[0]
    return entry.get("value", entry.get("valueFrom"))


def properties(text: str) -> dict[str, str]:
    """A Java .properties text (key=value lines, # comments) as a dict."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, value = line.split("=", 1)
            result[key.strip()] = value.strip()
    return result


def hive_site(xml_text: str) -> dict[str, str]:
    import xml.etree.ElementTree as ET  # noqa: S405 - the repository's own file

    root = ET.fromstring(xml_text)  # noqa: S314 - the repository's own file
    return {p.findtext("name"): p.findtext("value") for p in root.iter("property")}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_args(path: Path) -> dict[str, str]:
    """ARG defaults of a Dockerfile."""
    args = {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value.strip().strip('"')
    return args


def guide_commands() -> str:
    """The deployment guide's shell code blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", DEPLOY_GUIDE.read_text(), re.S)
    return "\n".join(blocks).replace("\\\n", " ")


def service_address(service: str) -> tuple[str, int]:
    entry = naming()["services"][service]
    return entry["host"], entry["port"]


# Rendering the SparkApplication templates as Airflow does -----------------------------------------------------


def set_airflow_environment(patch: Any, home: Path, stand_ins: dict[str, str]) -> None:
    """What an Airflow pod of the deployment has: the connections (secret placeholders filled with `stand_ins`) and
    the Airflow variables as environment variables. `patch` is a pytest.MonkeyPatch; `home` is used as
    AIRFLOW_HOME unless Airflow is already imported."""
    if "airflow" not in sys.modules:
        patch.setenv("AIRFLOW_HOME", str(home))
    for name, value in connection_templates().items():
        patch.setenv(name, fill_placeholders(value, stand_ins))
    for entry in values("airflow")["env"]:
        patch.setenv(entry["name"], entry["value"])


def render_spark_template(application_file: str, params: Mapping[str, Any], **context: Any) -> tuple[Any, dict]:
    """Render include/<application_file> through SparkKubernetesOperator's template fields, with a DAG's Jinja
    environment (template_searchpath include/) and the real `conn` / `var` accessors reading the environment.
    `context` adds to params, conn, var and dag. Returns the operator and the SparkApplication as a dict."""
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
    from airflow.sdk import DAG
    from airflow.sdk.execution_time.context import ConnectionAccessor, VariableAccessor

    with DAG("tap_deploy_render", schedule=None, template_searchpath=[str(REPO / "include")]) as dag:
        operator = SparkKubernetesOperator(
            task_id="render",
            application_file=application_file,
            namespace=naming()["namespace"],
            kubernetes_conn_id=naming()["connections"]["kubernetes"],
        )
    accessors = {
        "conn": ConnectionAccessor(),
        "var": {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
    }
    operator.render_template_fields({"params": params, "dag": dag, **accessors, **context})
    return operator, operator.template_body["spark"]


@cache
def _spark_schema_validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def spark_schema_errors(document: Any) -> list[str]:
    """Why the spark-operator v1beta2 schema subset rejects a SparkApplication ([] when it accepts it)."""
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _spark_schema_validator().iter_errors(document)
    ]
