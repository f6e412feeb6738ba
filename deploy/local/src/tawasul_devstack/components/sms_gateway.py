"""The SMS gateway's development stand-in (tawasul_devstack.sms_gateway)."""

from __future__ import annotations

import os

from tawasul_devstack.components import LocalProcess, http_ok, script
from tawasul_devstack.config import StackConfig

READY_TIMEOUT = 15.0


class SmsGateway(LocalProcess):
    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "sms-gateway")

    def start(self) -> None:
        cfg = self.config
        argv = [
            script("tawasul-sms-gateway"),
            "--port",
            str(cfg.sms_gateway_port),
            "--store",
            str(cfg.state_dir / "sms-gateway" / "messages.jsonl"),
        ]
        # Credentials by environment: the log's header line shows the command line.
        env = {
            **os.environ,
            "TAWASUL_SMS_GATEWAY_USER": cfg.sms_gateway_user,
            "TAWASUL_SMS_GATEWAY_PASSWORD": cfg.sms_gateway_password,
        }
        self.spawn(argv, env, [cfg.sms_gateway_port])

    def ready(self) -> None:
        url = f"{self.config.sms_gateway_url}/v1/health"
        self.proc.wait_until(lambda: http_ok(url), READY_TIMEOUT, "readiness")
