"""Trino, one coordinator node on loopback: HTTPS only, password logins, access decided by OPA or by file rules."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from string import Template

from local_platform import artifacts
from local_platform.config import LOOPBACK, REPO_ROOT, PlatformConfig
from local_platform.process import make_private, wait_until
from local_platform.services.base import Endpoint, Service
from local_platform.services.metastore import metastore_client_env
from local_platform.services.opa import POLICY_DIR, OpaService

TRINO_INCLUDE = REPO_ROOT / "include" / "trino"
ACCESS_RULES = TRINO_INCLUDE / "access-control.json"
OPA_POLICY = POLICY_DIR / "trino" / "policy.rego"
# Users allowed to run table procedures (ALTER TABLE ... EXECUTE) in file mode; OPA mode says it in its policy.
TABLE_PROCEDURE_USERS = "platform_admin"
# Plugins of the installed server that the configuration uses (catalog/iceberg.properties, the password file).
TRINO_PLUGINS = ("iceberg", "password-authenticators")

# Trino's file authenticator accepts bcrypt or PBKDF2-HMAC-SHA1 ("iterations:salt:hash", lower-case hex).
# PBKDF2 needs only the standard library; Trino caches each successful check, so the cost is paid once per user.
PBKDF2_ITERATIONS = 100_000
CERTIFICATE_DAYS = 3650


def ca_file_path(cfg: PlatformConfig) -> Path:
    """The certificate clients trust to reach the local Trino (generated per install, self-signed)."""
    return cfg.conf_dir / "trino" / "tls" / "trino-ca.pem"


def trino_https_url(cfg: PlatformConfig) -> str:
    return f"https://{LOOPBACK}:{cfg.trino_port}"


def password_file_line(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of Trino's password file: `user:iterations:salt:hash` (PBKDF2-HMAC-SHA1, hex)."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, PBKDF2_ITERATIONS, dklen=32)
    return f"{user}:{PBKDF2_ITERATIONS}:{salt.hex()}:{digest.hex()}"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


class TrinoService(Service):
    name = "trino"
    process_names = ("trino",)
    start_timeout = 180.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("HTTPS / JDBC (password login)", trino_https_url(self.cfg))]

    @property
    def home(self) -> Path:
        return self.cfg.tools_dir / f"trino-server-{artifacts.TRINO_VERSION}"

    @property
    def ca_file(self) -> Path:
        return ca_file_path(self.cfg)

    @property
    def keystore(self) -> Path:
        """Private key + certificate Trino serves (PEM); stays in the state dir, mode 0600."""
        return self.ca_file.with_name("trino-key-and-cert.pem")

    # TLS, users and rules -------------------------------------------------------------------------------------
    def ensure_certificate(self) -> None:
        """Create the self-signed certificate for 127.0.0.1 once per install (kept across restarts)."""
        if self.keystore.exists() and self.ca_file.exists():
            return
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl is needed to create Trino's TLS certificate: apt-get install -y openssl")
        tls = self.ca_file.parent
        tls.mkdir(mode=0o700, parents=True, exist_ok=True)  # the key is written here before it is moved
        key, cert = tls / "key.tmp", tls / "cert.tmp"
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                str(CERTIFICATE_DAYS),
                "-subj",
                "/CN=taxi-anomaly-platform local Trino",
                "-addext",
                f"subjectAltName=IP:{LOOPBACK},DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )
        _write_private(self.keystore, key.read_text() + cert.read_text())
        self.ca_file.write_text(cert.read_text())
        key.unlink()
        cert.unlink()

    def users(self) -> dict[str, str]:
        """Trino's users and their passwords (credentials.env): the admin, the analyst, the green-trips analyst."""
        creds = self.creds
        return {
            creds.trino_admin_user: creds.trino_admin_password,
            creds.trino_analyst_user: creds.trino_analyst_password,
            creds.trino_green_analyst_user: creds.trino_green_analyst_password,
        }

    def check_rules_cover_users(self) -> None:
        """Both rule sets name users literally; fail early if the credentials use other names."""
        patterns = [
            rule["user"]
            for section in json.loads(ACCESS_RULES.read_text()).values()
            for rule in section
            if "user" in rule
        ]
        policy = OPA_POLICY.read_text()
        for user in self.users():
            if not any(re.fullmatch(pattern, user) for pattern in patterns):
                raise ValueError(f"{ACCESS_RULES} has no rule for Trino user {user!r} (credentials.env)")
            if f'"{user}"' not in policy:
                raise ValueError(f"{OPA_POLICY} does not name Trino user {user!r} (credentials.env)")

    def write_password_file(self, etc: Path) -> Path:
        """The platform's users, hashed, from the per-install credentials (never committed)."""
        path = etc / "password.db"
        _write_private(path, "".join(password_file_line(u, p) + "\n" for u, p in self.users().items()))
        return path

    def write_access_control(self, etc: Path) -> list[Path]:
        """The access-control files of the configured mode (cfg.trino_access_control); return them in order."""
        if self.cfg.uses_opa:
            opa = OpaService(self.cfg, self.creds)
            opa.ensure_certificates()
            path = etc / "access-control-opa.properties"
            path.write_text(
                "access-control.name=opa\n"
                f"opa.policy.uri={opa.decision_uri('allow')}\n"
                f"opa.policy.batched-uri={opa.decision_uri('batch')}\n"
                f"opa.policy.row-filters-uri={opa.decision_uri('rowFilters')}\n"
                # Mutual TLS: Trino proves who it is with its certificate (the plugin cannot send a token).
                f"opa.http-client.key-store-path={opa.trino_certificate().bundle}\n"
                f"opa.http-client.trust-store-path={opa.ca.cert}\n"
            )
            return [path]
        # File rules are read from include/ and re-read every 10 s: an edit applies without a restart. Trino 476's
        # file rules allow every table procedure to everyone, so the guard is stacked after them.
        rules = etc / "access-control-file.properties"
        rules.write_text(
            f"access-control.name=file\nsecurity.config-file={ACCESS_RULES}\nsecurity.refresh-period=10s\n"
        )
        guard = etc / "access-control-table-procedure-guard.properties"
        guard.write_text(
            f"access-control.name=table-procedure-guard\ntable-procedure-guard.allowed-users={TABLE_PROCEDURE_USERS}\n"
        )
        return [rules, guard]

    def write_plugin_dir(self) -> Path:
        """plugin.dir: links to the plugins the configuration uses (the Iceberg connector, the file password
        authenticator, and OPA or the table-procedure guard); Trino loads every plugin it finds at start, so the
        others of the installed server (Python functions, geospatial, exchange and spooling storage...) stay out."""
        plugins = self.conf_dir() / "plugin"
        shutil.rmtree(plugins, ignore_errors=True)
        plugins.mkdir()
        sources = [self.home / "plugin" / name for name in TRINO_PLUGINS]
        if self.cfg.uses_opa:
            sources.append(artifacts.trino_opa_plugin_dir(self.cfg))
        else:
            sources.append(artifacts.trino_guard_plugin_dir(self.cfg))
        for source in sources:
            if not source.is_dir():
                raise RuntimeError(f"Trino plugin {source} is missing: run `make setup`")
            (plugins / source.name).symlink_to(source, target_is_directory=True)
        return plugins

    # Configuration --------------------------------------------------------------------------------------------
    def write_config(self) -> Path:
        self.ensure_certificate()
        self.check_rules_cover_users()
        etc = self.conf_dir() / "etc"
        shutil.rmtree(etc, ignore_errors=True)  # nothing of the other access-control mode stays behind
        etc.mkdir(parents=True)
        access_control = ",".join(str(p) for p in self.write_access_control(etc))
        (etc / "node.properties").write_text(
            "node.environment=local\n"
            "node.id=local-coordinator\n"
            f"node.data-dir={self.data_dir()}\n"
            # Without these Trino binds every interface.
            f"node.bind-ip={LOOPBACK}\n"
            f"node.internal-address={LOOPBACK}\n"
        )
        port = self.cfg.trino_port
        _write_private(
            etc / "config.properties",
            "coordinator=true\n"
            "node-scheduler.include-coordinator=true\n"
            # HTTPS only: passwords travel inside TLS and no port answers queries without a password.
            # (Over plain HTTP Trino would accept any user name without checking a password.)
            "http-server.http.enabled=false\n"
            "http-server.https.enabled=true\n"
            f"http-server.https.port={port}\n"
            f"http-server.https.keystore.path={self.keystore}\n"
            "http-server.authentication.type=PASSWORD\n"
            # The coordinator is its own worker and calls itself over the same HTTPS port, authenticated by a
            # shared secret (new at every start: only this one process uses it).
            f"discovery.uri=https://{LOOPBACK}:{port}\n"
            f"internal-communication.shared-secret={secrets.token_urlsafe(48)}\n"
            "internal-communication.https.required=true\n"
            f"internal-communication.https.keystore.path={self.keystore}\n"
            f"internal-communication.https.truststore.path={self.ca_file}\n"
            "query.max-memory=1GB\n"
            "query.max-memory-per-node=1GB\n"
            f"plugin.dir={self.write_plugin_dir()}\n"
            f"access-control.config-files={access_control}\n",
        )
        (etc / "password-authenticator.properties").write_text(
            f"password-authenticator.name=file\nfile.password-file={self.write_password_file(etc)}\n"
        )
        jvm = Template((TRINO_INCLUDE / "jvm.config").read_text()).substitute(TRINO_HEAP=self.cfg.trino_heap)
        (etc / "jvm.config").write_text(jvm)
        (etc / "log.properties").write_text("io.trino=INFO\n")
        shutil.copytree(TRINO_INCLUDE / "catalog", etc / "catalog")
        make_private(etc / "catalog")  # copytree keeps the repository's modes (0644/0755)
        return etc

    def env(self) -> dict[str, str]:
        java_home = str(self.cfg.trino_java_home)
        return {
            **self.base_env(),
            "JAVA_HOME": java_home,
            "PATH": f"{java_home}/bin:{os.environ['PATH']}",
            "TAP_METASTORE_URI": self.cfg.metastore_uri,
            "TAP_S3_ENDPOINT": self.cfg.minio_endpoint,
            "TAP_S3_ACCESS_KEY": self.creds.minio_root_user,
            "TAP_S3_SECRET_KEY": self.creds.minio_root_password,
            **metastore_client_env(self.creds),
        }

    # Lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        (name,) = self.process_names
        proc = self.process(name)
        if not proc.is_running():
            etc = self.write_config()
            argv = [str(self.home / "bin" / "launcher"), "run", f"--etc-dir={etc}", f"--data-dir={self.data_dir()}"]
            proc.start(argv, self.env(), self.log_file(name), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "Trino", proc, self.log_file(name), interval=1.0)

    def healthy(self) -> bool:
        """/v1/info (public, no login) over HTTPS, verified against the install's certificate, says started."""
        if not self.ca_file.exists():
            return False
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(f"{trino_https_url(self.cfg)}/v1/info", timeout=3, context=context) as resp:
                return resp.status == 200 and json.loads(resp.read()).get("starting") is False
        except (OSError, ValueError, urllib.error.URLError):
            return False
