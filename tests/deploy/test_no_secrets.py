"""No secret value in the deployment files: credentials are references to Secrets or ${...}/$(...) placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.deployment import (
    CHARTS,
    CONNECTIONS_TEMPLATE,
    DEPLOY_GUIDE,
    HELM_VALUES,
    REPO,
    SPARK_DOCKERFILE,
    SPARK_TEMPLATE,
    connection_templates,
    naming,
    values,
    walk,
)

DEPLOYMENT_FILES = sorted(
    [*HELM_VALUES.rglob("*"), SPARK_TEMPLATE, SPARK_DOCKERFILE, DEPLOY_GUIDE],
)
DEPLOYMENT_FILES = [p for p in DEPLOYMENT_FILES if p.is_file()]

SENSITIVE_KEY = re.compile(r"(password|passwd|secret(?!Name|KeyRef|Keys|Ref|Env)|token|access-?key|fernet)", re.I)
REFERENCE = re.compile(r"^(\$\(\w+\)|\$\{[\w.:]+\}|\$\{ENV:\w+\})$")


def secret_names_and_keys() -> set[str]:
    """Naming a Secret or one of its keys is a reference, not a value."""
    secrets = naming()["secrets"].values()
    return {s["name"] for s in secrets} | {key for s in secrets for key in s.get("keys", {}).values()}


@pytest.mark.parametrize("chart", CHARTS)
def test_values_hold_no_credential_literal(chart):
    offenders = []
    references = secret_names_and_keys()
    for path, value in walk(values(chart)):
        leaf = re.split(r"[.\[]", path)[-1]
        if not (isinstance(value, str) and value and SENSITIVE_KEY.search(leaf)):
            continue
        if not REFERENCE.match(value) and value not in references:
            offenders.append(f"{path}={value!r}")
    assert offenders == [], f"helm-values/{chart}.yaml sets credential-like values: {offenders}"


def test_chart_defaults_that_carry_credentials_are_overridden_or_unused():
    assert values("minio")["users"] == [], "the MinIO chart's default user has a published password"
    assert not {"rootUser", "rootPassword"} & set(values("minio"))
    airflow = values("airflow")
    assert not {"fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"} & set(airflow)
    assert "metadataConnection" not in airflow["data"], "the metadata URL (with its password) is a Secret"
    assert airflow["createUserJob"]["defaultUser"]["password"] == "$(TAP_AIRFLOW_ADMIN_PASSWORD)"
    superset = values("superset")
    assert superset["init"]["createAdmin"] is False and "adminUser" not in superset["init"]
    assert "password" not in superset["database"]
    assert "SECRET_KEY" in superset["configOverrides"]["platform"]
    assert 'os.environ["SUPERSET_SECRET_KEY"]' in superset["configOverrides"]["platform"]


def test_connection_template_has_placeholders_for_every_secret_field():
    for name, text in connection_templates().items():
        connection = yaml.safe_load(text)  # JSON is YAML
        for field in ("password",):
            if field in connection:
                assert REFERENCE.match(connection[field]), f"{name}.{field} is a literal"
    assert CONNECTIONS_TEMPLATE.suffix == ".tpl"


def test_manifests_take_passwords_from_secrets_only():
    for path in (HELM_VALUES / "manifests").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            for dotted, value in walk(document):
                if dotted.endswith("].name") and isinstance(value, str) and SENSITIVE_KEY.search(value):
                    env_entry_path = dotted.removesuffix(".name")
                    entry = dict(walk(document))[env_entry_path]
                    assert "valueFrom" in entry, f"{path.name}: {value} is set as a literal"


def local_credentials() -> list[str]:
    path = REPO / ".platform" / "credentials.env"
    if not path.exists():
        return []
    secrets = []
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        # Passwords and keys only: user names (platform-admin, ...) are the same by design.
        if value and not line.startswith("#") and re.search(r"PASSWORD|SECRET|KEY", name):
            secrets.append(value)
    return secrets


@pytest.mark.parametrize("path", DEPLOYMENT_FILES, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_this_installs_local_credentials_appear_nowhere(path):
    secrets = local_credentials()
    if not secrets:
        pytest.skip("no local credentials file (.platform/credentials.env) on this machine")
    text = path.read_text(errors="replace")
    assert not [s for s in secrets if s in text], f"{path} contains a credential of this local install"
