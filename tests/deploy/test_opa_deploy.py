"""OPA on Kubernetes: its policies are include/opa/, its names the naming scheme's, Trino asks it as locally."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from local_platform import artifacts
from local_platform.config import PlatformConfig
from local_platform.credentials import Credentials
from local_platform.services.trino import TrinoService
from tests.deploy.deployment import MANIFESTS, manifest, naming, values
from tests.deploy.opa_policies import NAME, POLICY_DIR, configmap_yaml, policy_files


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_the_policy_configmap_is_include_opa():
    configmap = manifest("ConfigMap", NAME)
    assert configmap["data"] == policy_files()
    assert set(policy_files()) == {"trino.policy.rego", "system.authz.rego"}, "a policy file was added or removed"
    assert not any(key.endswith("_test.rego") for key in configmap["data"])
    assert (MANIFESTS / "opa-policies.yaml").read_text() == configmap_yaml(), (
        f"{POLICY_DIR} changed: run `.venv/bin/python -m tests.deploy.opa_policies > "
        "helm-values/manifests/opa-policies.yaml`"
    )


def test_opa_runs_the_local_version_with_client_certificates():
    pod = manifest("Deployment", "tap-opa")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    image = naming()["images"]["opa"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert image["tag"] == f"{artifacts.OPA.version.removeprefix('v')}-static"
    args = container["args"]
    for flag in ("--authentication=tls", "--authorization=basic", "--skip-version-check", "--ignore=.*"):
        assert flag in args
    host, port = naming()["services"]["opa"]["host"], naming()["services"]["opa"]["port"]
    assert f"--addr=https://:{port}" in args
    service = manifest("Service", host)
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == NAME
    tls = naming()["secrets"]["opa_tls"]
    assert volumes["tls"]["secret"]["secretName"] == tls["name"]
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args[-1] == mounted["policies"]
    for flag, key in (("--tls-cert-file", "cert"), ("--tls-private-key-file", "key"), ("--tls-ca-cert-file", "ca")):
        assert f"{flag}={mounted['tls']}/{tls['keys'][key]}" in args


def test_trino_asks_opa_with_the_local_settings(tmp_path):
    """The same access-control properties as the local Trino in opa mode, with the cluster's addresses and files."""
    cluster = _properties(values("trino")["accessControl"]["properties"])
    cfg = replace(PlatformConfig(), state_dir=tmp_path, trino_access_control="opa")
    etc = tmp_path / "etc"
    etc.mkdir()
    (local_file,) = TrinoService(cfg, Credentials.generate()).write_access_control(etc)
    local = _properties(local_file.read_text())
    assert set(cluster) == set(local)
    assert cluster["access-control.name"] == local["access-control.name"] == "opa"
    host, port = naming()["services"]["opa"]["host"], naming()["services"]["opa"]["port"]
    for key in ("opa.policy.uri", "opa.policy.batched-uri", "opa.policy.row-filters-uri"):
        url = urlsplit(cluster[key])
        assert (url.scheme, url.hostname, url.port) == ("https", host, port)
        assert url.path == urlsplit(local[key]).path
    client = naming()["secrets"]["trino_opa_client"]
    (mount,) = [m for m in values("trino")["secretMounts"] if m["secretName"] == client["name"]]
    assert cluster["opa.http-client.key-store-path"] == f"{mount['path']}/{client['keys']['keystore']}"
    assert cluster["opa.http-client.trust-store-path"] == f"{mount['path']}/{client['keys']['ca']}"


def test_the_policy_names_the_cluster_users():
    policy = (POLICY_DIR / "trino" / "policy.rego").read_text()
    for user in ("trino_admin", "trino_analyst", "trino_green_analyst"):
        assert f'"{naming()["users"][user]}"' in policy
