"""The SMTP server's development stand-in (tawasul_devstack.smtp_server), into a maildir."""

from __future__ import annotations

import os

from tawasul_devstack import smtp_server
from tawasul_devstack.components import LocalProcess, script
from tawasul_devstack.config import StackConfig

READY_TIMEOUT = 15.0


class Smtp(LocalProcess):
    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "smtp")

    def start(self) -> None:
        cfg = self.config
        argv = [
            script("tawasul-smtp-server"),
            "--port",
            str(cfg.smtp_port),
            "--maildir",
            str(cfg.smtp_maildir),
        ]
        self.spawn(argv, dict(os.environ), [cfg.smtp_port])

    def ready(self) -> None:
        port = self.config.smtp_port
        self.proc.wait_until(lambda: smtp_server.greets(port), READY_TIMEOUT, "SMTP greeting")
