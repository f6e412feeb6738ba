"""A Prometheus server scraping every service's and the gateway's /metrics, and evaluating
production's alert rules (the PrometheusRule of deploy/k8s/overlays/prod): the test tier's,
built on demand (install.ensure_prometheus) and started on its own, not by `up`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tawasul_devstack import install
from tawasul_devstack.components import LocalProcess, http_ok
from tawasul_devstack.config import SERVICES, StackConfig
from tawasul_devstack.pki import GATEWAY
from tawasul_devstack.procs import StackError

READY_TIMEOUT = 60.0
SCRAPED = (*SERVICES, GATEWAY)


def rule_groups(path: Path) -> list[dict[str, Any]]:
    """The rule groups of a PrometheusRule manifest: what Prometheus's rule_files take."""
    import yaml  # a dev dependency (types-pyyaml, kubernetes-validate), as the test tier is

    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["spec"]["groups"]
    return groups


class Prometheus(LocalProcess):
    def __init__(self, config: StackConfig) -> None:
        super().__init__(config, "prometheus")

    @property
    def home(self) -> Path:
        return self.config.state_dir / "prometheus"

    def start(self) -> None:
        cfg = self.config
        binary = install.prometheus_binary(cfg.cache_dir)
        if not binary.is_file():
            raise StackError(f"{binary} is not built: `uv run tawasul-stack install --prometheus`")
        self.home.mkdir(parents=True, exist_ok=True)
        rules = self.home / "rules.yml"
        # JSON is YAML: the files need no YAML writer.
        rules.write_text(json.dumps({"groups": rule_groups(cfg.alert_rules_file)}, indent=1))
        period = f"{cfg.metrics_seconds:g}s"
        settings = {
            "global": {"scrape_interval": period, "evaluation_interval": period},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    # One job per process, as a PodMonitor gives one per pod: the job label
                    # leaves the metrics' own `service` label alone.
                    "job_name": process,
                    "static_configs": [{"targets": [f"127.0.0.1:{cfg.metrics_port(process)}"]}],
                }
                for process in SCRAPED
            ],
        }
        config_file = self.home / "prometheus.yml"
        config_file.write_text(json.dumps(settings, indent=1))
        argv = [
            str(binary),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{cfg.prometheus_port}",
        ]
        self.spawn(argv, dict(os.environ), [cfg.prometheus_port])

    def ready(self) -> None:
        url = f"{self.config.prometheus_url}/-/ready"
        self.proc.wait_until(lambda: http_ok(url), READY_TIMEOUT, "readiness")
