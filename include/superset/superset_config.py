"""Superset settings for the platform, locally and on Kubernetes (helm-values/superset.yaml loads this file).

Secrets and paths come from the environment set by the platform (or the chart)."""

import contextlib
import json
import os
import time

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
if "SUPERSET_METADATA_DB_URI" in os.environ:  # locally; the chart sets SQLALCHEMY_DATABASE_URI itself
    SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_DB_URI"]
GLOBAL_ASYNC_QUERIES_JWT_SECRET = SECRET_KEY

# Served over plain HTTP on loopback locally. On Kubernetes the Service is cluster-internal (port-forward); a
# shared deployment puts an Ingress with TLS in front (docs/deploy-kubernetes.md, step 12) and sets this to true.
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


# Login throttling. FAB's own limiter covers only the HTML login form and only when Flask-Limiter is enabled
# (Superset enables it in production only, and then for every endpoint); the REST login a script would use is
# never limited. So failed logins are counted per user name, on both: after LOGIN_MAX_FAILURES within
# LOGIN_WINDOW_SECONDS that user gets HTTP 429 until the oldest failure leaves the window; a good login clears
# the count. Counts are shared by the web workers of one host (pod).
LOGIN_MAX_FAILURES = int(os.environ.get("TAP_LOGIN_MAX_FAILURES", "5"))
LOGIN_WINDOW_SECONDS = float(os.environ.get("TAP_LOGIN_WINDOW_SECONDS", "60"))
_LOGIN_PATHS = {"/api/v1/security/login": "json", "/login/": "form", "/login": "form"}


class _LoginThrottle:
    """WSGI middleware around Superset's app: see the comment above. The failures are kept in a SQLite file in
    the cache directory, so that every web worker of the process tree sees the same counts."""

    def __init__(self, app, path):
        self.app, self.path = app, path
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS login_failures (user TEXT, at REAL)")

    @contextlib.contextmanager
    def _db(self):
        import sqlite3

        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # one transaction
                yield db
        finally:
            db.close()

    def _wait(self, user):
        with self._db() as db:
            db.execute("DELETE FROM login_failures WHERE at <= ?", (time.time() - LOGIN_WINDOW_SECONDS,))
            query = "SELECT count(*), min(at) FROM login_failures WHERE user = ?"
            count, oldest = db.execute(query, (user,)).fetchone()
        return oldest + LOGIN_WINDOW_SECONDS - time.time() if count >= LOGIN_MAX_FAILURES else 0

    def _record(self, user, failed):
        with self._db() as db:
            if failed:
                db.execute("INSERT INTO login_failures VALUES (?, ?)", (user, time.time()))
            else:
                db.execute("DELETE FROM login_failures WHERE user = ?", (user,))

    def __call__(self, environ, start_response):
        kind = _LOGIN_PATHS.get(environ.get("PATH_INFO", ""))
        if kind is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        import io
        import urllib.parse

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if 0 < length <= 65536 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            fields = json.loads(body) if kind == "json" else dict(urllib.parse.parse_qsl(body.decode()))
            user = str(fields.get("username", "")).strip().casefold()
        except (ValueError, AttributeError, UnicodeDecodeError):
            user = ""
        wait = self._wait(user)
        if wait > 0:
            seconds = int(wait) + 1
            payload = json.dumps({"message": f"too many failed logins for user {user!r}: try again in {seconds} s"})
            headers = [("Content-Type", "application/json"), ("Retry-After", str(seconds))]
            start_response("429 Too Many Requests", headers)
            return [payload.encode()]

        def watch(status, headers, exc_info=None):
            code = int(status.split()[0])
            location = dict((k.lower(), v) for k, v in headers).get("location", "")
            failed = code == 401 or (kind == "form" and code in (301, 302, 303) and "/login" in location)
            if failed or code < 400:
                self._record(user, failed)
            return start_response(status, headers, exc_info)

        return self.app(environ, watch)


def FLASK_APP_MUTATOR(app):
    """Superset's hook on the Flask app: wrap it in the login throttle."""
    import tempfile

    state_dir = os.environ.get("SUPERSET_CACHE_DIR") or tempfile.gettempdir()
    app.wsgi_app = _LoginThrottle(app.wsgi_app, os.path.join(state_dir, "login-failures.sqlite"))
