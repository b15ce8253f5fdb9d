"""Superset reaches Trino over HTTPS with the platform's CA on the cluster as locally, whatever the assets import.

The database asset's `extra.engine_params: {}` replaced the TLS settings the chart once put in the database's
extra ("TLS/SSL is required for authentication"). TLS now comes from DB_CONNECTION_MUTATOR of
include/superset/superset_config.py, applied to every engine Superset opens, locally and on the cluster (the install
appends the file to the chart's config); here it is run on the engine parameters the imported asset gives.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from taxi_anomaly.serving.assets import Assets
from tests.deploy.deployment import REPO, env_value, values

LOCAL_CONFIG = REPO / "include" / "superset" / "superset_config.py"


def config_namespace(source: str, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    namespace: dict = {"__name__": "superset_config"}
    exec(compile(source, "superset_config", "exec"), namespace)  # noqa: S102 - the repository's own config text
    return namespace


def engine_params_of_the_asset() -> dict:
    (database,) = Assets.load().of_kind("databases").values()
    return dict(database["extra"]["engine_params"])


def trino_uri():
    return SimpleNamespace(get_backend_name=lambda: "trino")


def test_the_cluster_config_keeps_tls_on_for_the_imported_database(monkeypatch):
    """The install appends the local config file (guide, step 8); run with the cluster's environment (no local
    metadata URI or cache dir, the CA path of superset.yaml) it gives the imported database HTTPS and that CA."""
    guide = (REPO / "docs" / "deploy-kubernetes.md").read_text()
    assert "--set-file 'configOverrides.tap_superset_config=include/superset/superset_config.py'" in guide
    superset = values("superset")
    ca_file = env_value(superset["extraEnvRaw"], "TAP_TRINO_CA_FILE")
    mounted = {m["mountPath"] for m in superset["extraVolumeMounts"]}
    assert any(ca_file.startswith(f"{path}/") for path in mounted), "the CA file must be on a mounted volume"
    for name in ("SUPERSET_METADATA_DB_URI", "SUPERSET_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    namespace = config_namespace(
        LOCAL_CONFIG.read_text(), {"SUPERSET_SECRET_KEY": "x", "TAP_TRINO_CA_FILE": ca_file}, monkeypatch
    )
    assert "SQLALCHEMY_DATABASE_URI" not in namespace  # the chart's own setting stays
    _, params = namespace["DB_CONNECTION_MUTATOR"](trino_uri(), engine_params_of_the_asset(), "analyst", None, None)
    assert params["connect_args"] == {"http_scheme": "https", "verify": ca_file}
    assert "FLASK_APP_MUTATOR" in namespace  # the failed-login throttle comes along


def test_the_local_config_does_the_same(monkeypatch, tmp_path):
    environ = {"SUPERSET_SECRET_KEY": "x", "TAP_TRINO_CA_FILE": "/ca.pem", "SUPERSET_CACHE_DIR": str(tmp_path)}
    mutate = config_namespace(LOCAL_CONFIG.read_text(), environ, monkeypatch)["DB_CONNECTION_MUTATOR"]
    _, params = mutate(trino_uri(), engine_params_of_the_asset(), "analyst", None, None)
    assert params["connect_args"] == {"http_scheme": "https", "verify": "/ca.pem"}


def test_the_guide_imports_the_assets_with_the_projects_importer():
    guide = (REPO / "docs" / "deploy-kubernetes.md").read_text()
    assert "airflow tasks test tap_backfill refresh_superset_dashboards" in guide
    assert 'task_id="refresh_superset_dashboards"' in (REPO / "plugins/taxi_anomaly/orchestration/tasks.py").read_text()
    assert "superset import-directory /" not in guide  # it imports nothing (placeholders, query_context maps)
