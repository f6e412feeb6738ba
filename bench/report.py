"""The figures of one run: a table on stdout, JSON under bench/results/, and the latest table
with the machine in docs/performance.md (between its markers; the rest of the file is kept)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from tawasul_devstack import clamav, install

BEGIN = "<!-- bench:begin (written by `uv run python -m bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"
DOC_HEADER = """\
# Performance

The figures of issue 12, each measured against its baseline in the same run on the same
machine. `uv run python -m bench` starts a new stack of its own (`.state/bench`, emptied first,
so that no figure pays for an earlier run's data; with `--running` it uses the one that runs),
runs every benchmark, prints the table below, writes it as JSON under `bench/results/` and
replaces the part of this file between the markers with it.

Load comes from a separate process on loopback (`bench/load.py`), bounded in count and in
time, after a warm-up it does not count; latencies are read off an HdrHistogram, never a mean.
At a fixed rate (P2, P7) each call counts from when the schedule meant to send it, not from
when it went: a call held back behind calls stalled in flight waited for the server too.
P2 and P7 are met only with a flat backlog (submissions answered and not yet arrived, sampled
each second): its median over the load's last third at most twice the first third's plus half
a second of submissions, every submission arrived within the drain, and the load kept its rate.
P6's resident memory is judged in MB (10^6 bytes), as the issue gives its 120 and 250 MB.
A target not met says so, and a figure that could not be measured says why.

"""

NOT_MEASURED = "not measured yet"


@dataclass
class Figure:
    id: str
    title: str
    target: str
    value: float | None = None
    unit: str = ""
    shown: str = ""  # what the table says for this project
    baseline: float | None = None
    baseline_shown: str = "—"
    ratio: float | None = None
    met: bool | None = None
    status: str = NOT_MEASURED  # met | not met | — (no target) | failed | not measured yet
    detail: dict[str, Any] = field(default_factory=dict)

    def judge(self, met: bool) -> None:
        self.met = met
        self.status = "met" if met else "not met"

    def fail(self, why: str) -> None:
        self.met = None
        self.status = "failed"
        self.detail["error"] = why


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(figures: list[Figure]) -> str:
    rows = [
        "| id | figure | this project | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = "—" if f.ratio is None else f"{f.ratio:.3f}×"
        met = {"met": "yes", "not met": "**no**", "failed": "**failed**"}.get(f.status, f.status)
        rows.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (f.id, f.title, f.shown or "—", f.baseline_shown, ratio, f.target, met)
            )
            + " |"
        )
    return "\n".join(rows)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _meminfo_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def machine(postgres_version: str, load_at_start: tuple[float, float, float]) -> dict[str, Any]:
    """What the figures were measured on. The load average tells whether others shared it."""
    clamd = clamav.clamd_binary()
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _meminfo_gib(),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "kafka": install.KAFKA_VERSION,
        "postgresql": postgres_version,
        # A build from source reports no release: its module version says which it is.
        "minio": f"{install.MINIO_MODULE.rsplit('@', 1)[-1]} (built from source)",
        "clamav": _first_line([clamd, "--version"]) if clamd else "not installed",
    }


def machine_table(info: dict[str, Any]) -> str:
    rows = ["| machine | |", "|---|---|"]
    for key, value in info.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        rows.append(f"| {key} | {_cell(shown)} |")
    return "\n".join(rows)


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def figures_json(figures: list[Figure]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]


def write_doc(path: Path, report: dict[str, Any], figures: list[Figure]) -> None:
    """Replaces the part between the markers (made, with a header, when missing)."""
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    notes = "\n".join(f"- {n}" for n in report["notes"])
    block = "\n\n".join(
        [
            BEGIN,
            f"Latest run: {report['started']} to {report['finished']} "
            f"(`{report['command']}`; results `{report['results_file']}`).",
            f"Settings: {settings}.",
            table(figures),
            notes,
            machine_table(report["machine"]),
            END,
        ]
    )
    text = path.read_text() if path.is_file() else DOC_HEADER
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
