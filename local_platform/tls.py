"""A private certificate authority per install (openssl): server and client certificates for mutual TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_platform.config import LOOPBACK

CERTIFICATE_DAYS = 3650


def _openssl() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to create the platform's certificates: apt-get install -y openssl")
    return openssl


def _run(*args: str) -> None:
    subprocess.run([_openssl(), *args], check=True, capture_output=True)


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class LeafCertificate:
    """A certificate signed by the install's CA: `cert` and `key` as separate PEM files, `bundle` = key + cert."""

    cert: Path
    key: Path
    bundle: Path


class CertificateAuthority:
    """A self-signed CA in `directory` (mode 0700), created once; it signs the leaves the platform asks for.

    Leaves are issued once and kept across restarts; `ensure_*` is idempotent."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name

    @property
    def cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key(self) -> Path:
        return self.directory / "ca-key.pem"

    def ensure(self) -> None:
        if self.cert.exists() and self.key.exists():
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        _run(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key), "-out", str(self.cert),
            "-days", str(CERTIFICATE_DAYS), "-subj", f"/CN={self.name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        _private(self.key)

    def leaf(self, name: str) -> LeafCertificate:
        return LeafCertificate(
            self.directory / f"{name}.pem", self.directory / f"{name}-key.pem", self.directory / f"{name}-bundle.pem"
        )

    def ensure_server(self, name: str) -> LeafCertificate:
        """A server certificate for 127.0.0.1 / localhost."""
        return self._issue(name, f"subjectAltName=IP:{LOOPBACK},DNS:localhost\nextendedKeyUsage=serverAuth\n")

    def ensure_client(self, common_name: str) -> LeafCertificate:
        """A client certificate whose subject is `CN=<common_name>` (the identity the server sees)."""
        return self._issue(common_name, "extendedKeyUsage=clientAuth\n")

    def _issue(self, name: str, extensions: str) -> LeafCertificate:
        self.ensure()
        leaf = self.leaf(name)
        if leaf.cert.exists() and leaf.key.exists() and leaf.bundle.exists():
            return leaf
        request, ext = self.directory / f"{name}.csr", self.directory / f"{name}.ext"
        ext.write_text(extensions)
        _run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(leaf.key),
            "-out",
            str(request),
            "-subj",
            f"/CN={name}",
        )
        _private(leaf.key)
        _run(
            "x509", "-req", "-in", str(request), "-CA", str(self.cert), "-CAkey", str(self.key), "-CAcreateserial",
            "-out", str(leaf.cert), "-days", str(CERTIFICATE_DAYS), "-extfile", str(ext),
        )  # fmt: skip
        fd = os.open(leaf.bundle, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(leaf.key.read_text() + leaf.cert.read_text())
        request.unlink()
        ext.unlink()
        return leaf
