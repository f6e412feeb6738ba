"""Apache Kafka in KRaft mode, one node: its storage formatted once, its topics made at ready."""

from __future__ import annotations

import os
import subprocess
from typing import ClassVar

from tawasul_devstack import install, kafka
from tawasul_devstack.components import LocalProcess
from tawasul_devstack.config import StackConfig
from tawasul_devstack.pki import KAFKA
from tawasul_devstack.procs import StackError, port_in_use, tail

READY_TIMEOUT = 120.0


class Kafka(LocalProcess):
    # Its controlled shutdown takes longer than a service's graceful stop.
    stop_grace: ClassVar[float] = 30.0

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "kafka")

    def start(self) -> None:
        cfg = self.config
        home = cfg.state_dir / "kafka"
        data = home / "data"
        home.mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(
            kafka.server_properties(
                cfg.kafka_port, cfg.kafka_controller_port, data, self._tls_listener()
            )
        )
        log4j = home / "log4j2.xml"
        log4j.write_text(kafka.LOG4J2_XML)
        lib = install.kafka_lib(cfg.cache_dir)
        java = install.tool("java")
        # Formatted once; meta.properties then holds the cluster id for every later start.
        if not (data / "meta.properties").is_file():
            result = subprocess.run(
                kafka.java_argv(
                    java,
                    lib,
                    log4j,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    kafka.cluster_id(),
                    "-c",
                    str(props),
                ),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                output = result.stdout + result.stderr
                raise StackError(f"formatting Kafka storage failed:\n{output}")
        self.spawn(
            kafka.java_argv(java, lib, log4j, "kafka.Kafka", str(props)),
            dict(os.environ),
            [cfg.kafka_port, cfg.kafka_controller_port, cfg.kafka_tls_port],
        )

    def _tls_listener(self) -> kafka.TlsListener:
        """The broker's certificate from the stack's CA (made here: Kafka starts first)."""
        cfg = self.config
        cfg.ensure_pki()
        keystore = cfg.state_dir / "kafka" / "keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_bytes(
            cfg.tls_key_file(KAFKA).read_bytes()
            + cfg.tls_cert_file(KAFKA).read_bytes()
            + cfg.tls_ca_file.read_bytes()
        )
        return kafka.TlsListener(cfg.kafka_tls_port, keystore, cfg.tls_ca_file)

    def ready(self) -> None:
        cfg = self.config
        self.proc.wait_until(
            lambda: port_in_use(cfg.kafka_port) and port_in_use(cfg.kafka_tls_port),
            READY_TIMEOUT,
            "open ports",
        )
        try:
            kafka.ensure_topics_and_group(cfg.kafka_bootstrap, READY_TIMEOUT)
        except TimeoutError:
            raise StackError(
                f"kafka: no consumer group could be joined in "
                f"{READY_TIMEOUT:.0f} s:\n{tail(self.log_file)}"
            ) from None
        kafka.grant_acls(cfg.kafka_bootstrap, READY_TIMEOUT)
