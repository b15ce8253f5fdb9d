"""Open Policy Agent, Trino's authorizer: HTTPS on loopback, clients authenticated by certificates of the install.

Trino 476's OPA plugin sends no bearer token (its requests carry only a Content-Type header), but its HTTP client
presents a client certificate (`opa.http-client.key-store-path`). So OPA runs with `--authentication=tls` (the TLS
handshake refuses any client without a certificate of the install's CA) and `--authorization=basic`, whose policy
(include/opa/system/authz.rego) admits Trino's certificate to the trino decisions and the health check's to
/health, nothing else. Policies are read from include/opa/ (tests excluded) and reloaded when a file changes.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from local_platform import artifacts
from local_platform.config import LOOPBACK, REPO_ROOT, PlatformConfig
from local_platform.process import wait_until
from local_platform.services.base import Endpoint, Service
from local_platform.tls import CertificateAuthority, LeafCertificate

POLICY_DIR = REPO_ROOT / "include" / "opa"
# Subjects of the two client certificates; include/opa/system/authz.rego names the same (a test keeps them equal).
TRINO_CLIENT = "tap-trino"
HEALTH_CLIENT = "tap-healthcheck"


def opa_url(cfg: PlatformConfig) -> str:
    return f"https://{LOOPBACK}:{cfg.opa_port}"


def opa_ca(cfg: PlatformConfig) -> CertificateAuthority:
    return CertificateAuthority(cfg.conf_dir / "opa" / "tls", "taxi-anomaly-platform local OPA CA")


class OpaService(Service):
    name = "opa"
    process_names = ("opa",)
    start_timeout = 60.0

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("HTTPS (client certificate)", f"{opa_url(self.cfg)}/v1/data/trino")]

    @property
    def ca(self) -> CertificateAuthority:
        return opa_ca(self.cfg)

    def server_certificate(self) -> LeafCertificate:
        return self.ca.ensure_server("opa-server")

    def trino_certificate(self) -> LeafCertificate:
        """The certificate Trino presents (its bundle is Trino's PEM key store)."""
        return self.ca.ensure_client(TRINO_CLIENT)

    def health_certificate(self) -> LeafCertificate:
        return self.ca.ensure_client(HEALTH_CLIENT)

    def ensure_certificates(self) -> None:
        self.server_certificate()
        self.trino_certificate()
        self.health_certificate()

    def decision_uri(self, decision: str) -> str:
        return f"{opa_url(self.cfg)}/v1/data/trino/{decision}"

    def start(self) -> None:
        proc = self.process("opa")
        if not proc.is_running():
            self.ensure_certificates()
            server = self.server_certificate()
            argv = [
                str(self.cfg.bin_dir / artifacts.OPA.name),
                "run",
                "--server",
                f"--addr=https://{LOOPBACK}:{self.cfg.opa_port}",
                f"--tls-cert-file={server.cert}",
                f"--tls-private-key-file={server.key}",
                f"--tls-ca-cert-file={self.ca.cert}",
                "--authentication=tls",
                "--authorization=basic",
                "--skip-version-check",
                "--watch",
                "--ignore=*_test.rego",
                str(POLICY_DIR),
            ]
            proc.start(argv, self.base_env(), self.log_file("opa"), cwd=self.data_dir())
        wait_until(self.healthy, self.start_timeout, "OPA", proc, self.log_file("opa"), interval=0.2)

    def client_context(self, client: LeafCertificate) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(client.cert), str(client.key))
        return context

    def healthy(self) -> bool:
        """GET /health with the health-check certificate answers 200 (OPA serves once the policies are loaded)."""
        if not self.ca.cert.exists():
            return False
        context = self.client_context(self.health_certificate())
        try:
            with urllib.request.urlopen(f"{opa_url(self.cfg)}/health", timeout=3, context=context) as resp:
                return resp.status == 200 and json.loads(resp.read()) == {}
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def policy_dir(self) -> Path:
        return POLICY_DIR
