"""ClamAV's daemon with the project's local signature database."""

from __future__ import annotations

import os

from tawasul_devstack import clamav
from tawasul_devstack.components import LocalProcess
from tawasul_devstack.config import StackConfig
from tawasul_devstack.procs import StackError

# clamd loads its (here one-signature) database before it listens: a few seconds.
READY_TIMEOUT = 60.0


class Clamd(LocalProcess):
    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "clamd")

    def start(self) -> None:
        cfg = self.config
        clamd = clamav.clamd_binary()
        if clamd is None:
            raise StackError("clamd is not installed: run `tawasul-stack install` (as root)")
        conf = clamav.prepare(cfg.state_dir / "clamd", port=cfg.clamd_port, log_file=self.log_file)
        # clamd writes its log (LogFile) into the process's log itself and, in the foreground,
        # echoes most of it on stdout: only its stderr (errors before the log opens) goes there.
        self.spawn(
            [clamd, "-c", str(conf)], dict(os.environ), [cfg.clamd_port], stdout_to_log=False
        )

    def ready(self) -> None:
        port = self.config.clamd_port
        self.proc.wait_until(lambda: clamav.ping(port), READY_TIMEOUT, "PONG to PING")
