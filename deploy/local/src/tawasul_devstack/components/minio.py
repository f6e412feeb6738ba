"""MinIO, the attachments' S3 server, with a static key for server-side encryption."""

from __future__ import annotations

import os

from tawasul_devstack import install
from tawasul_devstack.components import LocalProcess, http_ok
from tawasul_devstack.config import StackConfig, kept_secret

READY_TIMEOUT = 30.0


class Minio(LocalProcess):
    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "minio")

    def start(self) -> None:
        cfg = self.config
        data = cfg.state_dir / "minio"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": cfg.minio_access_key,
            "MINIO_ROOT_PASSWORD": cfg.minio_secret_key,
            "MINIO_UPDATE": "off",  # no network but the package registries here
            # A static key for server-side encryption (SSE-S3); docs turns it on per bucket.
            "MINIO_KMS_SECRET_KEY": f"tawasul-dev:{kept_secret(data.parent / 'minio-kms.key')}",
        }
        argv = [
            str(install.minio_binary(cfg.cache_dir)),
            "server",
            str(data),
            "--address",
            cfg.minio_endpoint,
            "--console-address",
            f"127.0.0.1:{cfg.minio_console_port}",
        ]
        self.spawn(argv, env, [cfg.minio_port, cfg.minio_console_port])

    def ready(self) -> None:
        url = f"http://{self.config.minio_endpoint}/minio/health/ready"
        self.proc.wait_until(lambda: http_ok(url), READY_TIMEOUT, "readiness")
