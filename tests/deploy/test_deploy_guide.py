"""The deployment guide's commands use the names, versions and files the rest of the deployment uses."""

from __future__ import annotations

import re

import pytest

from tests.deploy.deployment import REPO, chart_keys, naming
from tests.deploy.deployment import guide_commands as commands

HELM_INSTALL = re.compile(r"helm install (\S+) (\S+) --version (\S+) .*?-f \"\$DEPLOY/(helm-values/\S+\.yaml)\"")


def test_every_chart_is_installed_with_its_release_name_version_and_values_file():
    installs = {
        chart: (release, version, values) for release, chart, version, values in HELM_INSTALL.findall(commands())
    }
    releases = naming()["releases"]
    assert len(installs) == len(releases)
    # chart_keys.yaml is keyed by values file (helm-values/<key>.yaml) and records the chart each one is for.
    values_file_of = {recorded["chart"]: key for key, recorded in chart_keys().items()}
    assert len(values_file_of) == len(chart_keys()), "two values files for one chart"
    for release in releases.values():
        values_file = values_file_of[release["chart"]]
        assert installs[release["chart"]] == (
            release["name"],
            chart_keys()[values_file]["version"],
            f"helm-values/{values_file}.yaml",
        ), f"{release['chart']}: release, version or values file differs from naming.yaml / chart_keys.yaml"


def test_spark_operator_is_installed_in_its_own_namespace():
    assert f"-n {naming()['spark_operator_namespace']} --create-namespace" in commands()


@pytest.mark.parametrize("secret", sorted(naming()["secrets"]))
def test_every_secret_is_created_with_all_its_keys(secret):
    entry = naming()["secrets"][secret]
    created = re.search(rf"create secret generic {re.escape(entry['name'])} (.*?)(?:\n|$)", commands())
    assert created, f"the guide never creates Secret {entry['name']}"
    arguments = created.group(1)
    for key in entry.get("keys", {}).values():
        assert f"--from-literal={key}=" in arguments or f"--from-file={key}=" in arguments, (
            f"{entry['name']}: key {key} is not created"
        )
    if not entry.get("keys"):
        assert "--from-env-file=" in arguments


def test_the_connections_secret_fills_exactly_the_template_placeholders():
    template = (REPO / "helm-values" / "secrets" / "airflow-connections.env.tpl").read_text()
    placeholders = set(re.findall(r"\$\{([A-Z0-9_]+)\}", template))
    envsubst = re.search(r"envsubst '([^']+)'", commands()).group(1)
    assert set(re.findall(r"\$\{([A-Z0-9_]+)\}", envsubst)) == placeholders
    for name in placeholders:
        assert re.search(rf"\b{name}=", commands()), f"the guide never sets {name}"


def test_manifests_are_applied_in_the_platform_namespace():
    applied = re.findall(r'kubectl -n "\$NS" apply -f "\$DEPLOY/helm-values/manifests/(\S+)"', commands())
    on_disk = sorted(p.name for p in (REPO / "helm-values" / "manifests").glob("*.yaml"))
    assert sorted(applied) == on_disk
    assert f"export NS={naming()['namespace']}" in commands()


def test_airflow_metadata_url_points_at_the_airflow_database():
    db = naming()["databases"]["airflow"]
    host, port = naming()["services"]["postgresql"]["host"], naming()["services"]["postgresql"]["port"]
    assert f"postgresql+psycopg2://{db['user']}:${{AIRFLOW_DB_PASSWORD}}@{host}:{port}/{db['name']}" in commands()


def test_images_are_built_with_the_names_the_deployment_pulls():
    images = naming()["images"]
    for name in ("spark", "metastore", "airflow"):
        repository = images[name]["repository"].replace("registry.example.com/taxi-anomaly", "$REGISTRY")
        assert f'-t "{repository}:{images[name]["tag"]}"' in commands(), f"the guide does not build the {name} image"


def test_opa_policies_are_applied_before_trino():
    """Trino asks OPA from its first query: the policies and OPA are applied before the Trino release."""
    text = commands()
    policies = text.index("helm-values/manifests/opa-policies.yaml")
    assert policies < text.index("helm-values/manifests/opa.yaml") < text.index("helm install tap-trino")
    assert "accessControl.rules" not in text, "the rules come from OPA's ConfigMap, not from --set-file"
