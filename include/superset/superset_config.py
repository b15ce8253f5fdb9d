"""Superset settings for the platform. Secrets and paths come from the environment set by the platform."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_DB_URI"]
GLOBAL_ASYNC_QUERIES_JWT_SECRET = SECRET_KEY

# Served over plain HTTP on loopback locally; TLS is terminated by the ingress on Kubernetes.
TALISMAN_ENABLED = os.environ.get("SUPERSET_TALISMAN_ENABLED", "false").lower() == "true"
WTF_CSRF_ENABLED = True

# Chart data is cached so that the pipeline's warm-up spares the first viewer the query time.
_cache_dir = os.environ.get("SUPERSET_CACHE_DIR")
if _cache_dir:
    _file_cache = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": _cache_dir, "CACHE_DEFAULT_TIMEOUT": 86400}
    CACHE_CONFIG = {**_file_cache, "CACHE_KEY_PREFIX": "superset_"}
    DATA_CACHE_CONFIG = {**_file_cache, "CACHE_KEY_PREFIX": "superset_data_"}

FEATURE_FLAGS = {"DASHBOARD_RBAC": False, "ENABLE_TEMPLATE_PROCESSING": False}

# The local platform's Trino serves HTTPS only, with a certificate generated per install, and checks passwords
# (local_platform/services/trino.py). When TAP_TRINO_CA_FILE names that certificate, every Trino connection
# Superset opens uses HTTPS and trusts it; without it (e.g. on Kubernetes) connections are left as configured.
_TRINO_CA_FILE = os.environ.get("TAP_TRINO_CA_FILE")


def DB_CONNECTION_MUTATOR(uri, params, username, security_manager, source):
    """Superset's hook on every new database engine: add the local Trino's TLS settings."""
    if _TRINO_CA_FILE and uri.get_backend_name() == "trino":
        connect_args = params.setdefault("connect_args", {})
        connect_args.setdefault("http_scheme", "https")
        connect_args.setdefault("verify", _TRINO_CA_FILE)
    return uri, params
