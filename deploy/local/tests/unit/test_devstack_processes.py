from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from tawasul_devstack.components import LocalProcess
from tawasul_devstack.config import StackConfig

# Prints the niceness it runs at, and that of a thread it starts (threads inherit it).
SCRIPT = """
import os, threading
print("process", os.nice(0))
seen = []
thread = threading.Thread(target=lambda: seen.append(os.nice(0)))
thread.start()
thread.join()
print("thread", seen[0])
"""


def _niceness_of(config: StackConfig, name: str) -> tuple[int, int]:
    component = LocalProcess(config, name)
    component.spawn([sys.executable, "-c", SCRIPT], dict(os.environ), [])
    deadline = time.monotonic() + 20
    while component.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    # The log's header line holds the script itself: only the printed lines match.
    printed = dict(re.findall(r"^(process|thread) (-?\d+)$", component.log_file.read_text(), re.M))
    return int(printed["process"]), int(printed["thread"])


@pytest.mark.parametrize(("name", "added"), [("notify", 7), ("sms-gateway", 7), ("intake", 0)])
def test_a_component_runs_at_its_niceness_threads_and_all(
    tmp_path: Path, name: str, added: int
) -> None:
    config = StackConfig(tmp_path / "state", tmp_path / "cache", background_nice=7)
    ours = os.nice(0)

    assert _niceness_of(config, name) == (min(ours + added, 19), min(ours + added, 19))
