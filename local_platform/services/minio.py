"""MinIO, the platform's S3 object store, with its buckets created through `mc`."""

from __future__ import annotations

import subprocess

from local_platform import artifacts
from local_platform.config import LOOPBACK
from local_platform.process import http_ok, wait_until
from local_platform.services.base import Endpoint, Service


class MinioService(Service):
    name = "minio"
    process_names = ("minio",)
    start_timeout = 60.0

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("S3 API", self.cfg.minio_endpoint),
            Endpoint("console", f"http://{LOOPBACK}:{self.cfg.minio_console_port}"),
        ]

    def start(self) -> None:
        proc = self.process("minio")
        if not proc.is_running():
            env = {
                **self.base_env(),
                "MINIO_ROOT_USER": self.creds.minio_root_user,
                "MINIO_ROOT_PASSWORD": self.creds.minio_root_password,
                "MINIO_UPDATE": "off",
                "MINIO_BROWSER_REDIRECT": "off",
            }
            argv = [
                str(self.cfg.bin_dir / artifacts.MINIO.name),
                "server",
                str(self.data_dir()),
                "--address",
                f"{LOOPBACK}:{self.cfg.minio_port}",
                "--console-address",
                f"{LOOPBACK}:{self.cfg.minio_console_port}",
                "--quiet",
            ]
            proc.start(argv, env, self.log_file("minio"))
        wait_until(self.healthy, self.start_timeout, "MinIO", proc, self.log_file("minio"))
        self.create_buckets()

    def healthy(self) -> bool:
        return http_ok(f"{self.cfg.minio_endpoint}/minio/health/ready")

    def mc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `mc` against this MinIO under the alias `local`, with its config kept in the state directory."""
        mc_conf = self.conf_dir() / "mc"
        env = {
            **self.base_env(),
            "MC_HOST_local": (
                f"http://{self.creds.minio_root_user}:{self.creds.minio_root_password}@{LOOPBACK}:{self.cfg.minio_port}"
            ),
        }
        return subprocess.run(
            [str(self.cfg.bin_dir / artifacts.MC.name), "--config-dir", str(mc_conf), "--quiet", *args],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )

    def create_buckets(self) -> None:
        for bucket in self.cfg.buckets:
            self.mc("mb", "--ignore-existing", f"local/{bucket}")
