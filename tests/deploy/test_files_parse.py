"""Every deployment file parses, and the hand-applied manifests are well-formed Kubernetes objects."""

from __future__ import annotations

import json

import jinja2
import pytest
import yaml

from tests.deploy.deployment import (
    CHART_KEYS_FILE,
    CHARTS,
    HELM_VALUES,
    SCHEMA_FILE,
    SPARK_TEMPLATE,
    manifests,
    naming,
)

YAML_FILES = sorted(p.relative_to(HELM_VALUES.parent) for p in HELM_VALUES.rglob("*.yaml"))


def test_the_deployment_yaml_files_are_found():
    names = {p.name for p in YAML_FILES}
    assert {f"{chart}.yaml" for chart in CHARTS} | {"naming.yaml"} <= names


@pytest.mark.parametrize("relative", YAML_FILES, ids=str)
def test_yaml_file_parses_to_mappings(relative):
    documents = [d for d in yaml.safe_load_all((HELM_VALUES.parent / relative).read_text()) if d is not None]
    assert documents, f"{relative} is empty"
    assert all(isinstance(d, dict) for d in documents), f"{relative}: every document must be a mapping"


def test_helper_files_parse():
    assert set(yaml.safe_load(CHART_KEYS_FILE.read_text())) == set(CHARTS)
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["properties"]["apiVersion"]["const"] == "sparkoperator.k8s.io/v1beta2"


def test_sparkapplication_template_is_valid_jinja():
    """Syntax only; tests/deploy/test_sparkapplication.py renders it for real through the Airflow operator."""
    jinja2.Environment(autoescape=False).parse(SPARK_TEMPLATE.read_text())  # noqa: S701 - YAML, not HTML


def test_readme_lists_every_manifest():
    readme = (HELM_VALUES / "README.md").read_text()
    for path in sorted((HELM_VALUES / "manifests").glob("*.yaml")):
        assert f"`manifests/{path.name}`" in readme, f"helm-values/README.md does not list manifests/{path.name}"


def test_manifests_are_named_objects_without_secrets():
    objects = manifests()
    assert {o["kind"] for o in objects} >= {"ConfigMap", "Service", "StatefulSet", "Deployment", "Role"}
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind"), obj
        assert obj["metadata"].get("name"), obj
        # Applied with `kubectl -n <namespace>`; a namespace written into an object could disagree with it.
        assert "namespace" not in obj["metadata"], f"{obj['kind']}/{obj['metadata']['name']} pins a namespace"
        # Secrets are created by hand from the guide; a Secret object in the repository would carry values.
        assert obj["kind"] != "Secret", f"Secret {obj['metadata']['name']} must not be committed"
    namespaces = {subject["namespace"] for o in objects if o["kind"] == "RoleBinding" for subject in o["subjects"]}
    assert namespaces == {naming()["namespace"]}
