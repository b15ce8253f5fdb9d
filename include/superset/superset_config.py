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
