"""The README's example of a dev-stack metrics URL is the one the stack serves."""

from __future__ import annotations

import re
from pathlib import Path

from tawasul_devstack.config import StackConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_s_intake_metrics_url_is_the_stack_s(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (url,) = re.findall(r"intake's (http://127\.0\.0\.1:\d+/metrics)", readme)
    # The README's ports are those of the default TAWASUL_PORT_BASE.
    config = StackConfig(state_dir=tmp_path, cache_dir=tmp_path, port_base=19000)
    assert url == config.metrics_url("intake")
