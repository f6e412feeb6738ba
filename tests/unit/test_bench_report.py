"""The benchmark's bookkeeping without a stack: percentiles off the histogram, the table's
verdicts, and docs/performance.md rewritten only between its markers."""

from __future__ import annotations

import os
from pathlib import Path

from bench.cpu import cpu_seconds
from bench.load import (
    LoadSpec,
    decode_histogram,
    new_histogram,
    padded_pdf,
    percentiles_ms,
    record_seconds,
)
from bench.p1 import rss_mb
from bench.report import BEGIN, END, Figure, table, write_doc


def test_percentiles_come_from_the_histogram_and_survive_the_trip_between_processes() -> None:
    histogram = new_histogram()
    for ms in range(1, 1001):
        record_seconds(histogram, ms / 1000)
    encoded = histogram.encode()
    back = decode_histogram(encoded.decode() if isinstance(encoded, bytes) else encoded)
    p = percentiles_ms(back)
    assert back.get_total_count() == 1000
    # Three significant digits: within 0.1 % of the exact order statistic.
    assert abs(p["p50_ms"] - 500) <= 0.5
    assert abs(p["p99_ms"] - 990) <= 1.0
    assert abs(p["max_ms"] - 1000) <= 1.0


def test_a_load_spec_round_trips_as_json() -> None:
    spec = LoadSpec(kind="submit", state_dir="/s", port_base=1, count=5, warmup=1, rate=2.5)
    assert LoadSpec.from_json(spec.to_json()) == spec


def test_the_padded_pdf_has_exactly_the_size_asked() -> None:
    pdf = padded_pdf(300_000)
    assert len(pdf) == 300_000
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")


def test_the_table_says_when_a_target_is_not_met_and_what_has_no_target() -> None:
    met = Figure("P1", "submit", "≥ 0.5×", value=10, shown="10/s", ratio=0.6)
    met.judge(True)
    missed = Figure("P3", "upload", "≥ 0.7×", value=1, shown="1 MiB/s", ratio=0.1)
    missed.judge(False)
    failed = Figure("P2 p50", "queue", "≤ 50 ms")
    failed.fail("no stack")
    shown = Figure("P7 p50", "first SMS", "—", value=900, shown="900 ms")
    shown.status = "—"
    lines = table([met, missed, failed, shown])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines.splitlines()[2:]}
    assert rows["P1"].endswith("| 0.600× | ≥ 0.5× | yes |")
    assert rows["P3"].endswith("| **no** |")
    assert rows["P2 p50"].endswith("| **failed** |")
    assert rows["P7 p50"].endswith("| 900 ms | — | — | — | — |")


def test_the_page_is_rewritten_between_its_markers_only(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nProfile notes kept.\n\n{BEGIN}\nold\n{END}\n\nAfter.\n")
    figure = Figure("P1", "submit", "≥ 0.5×", value=3, shown="3/s")
    figure.judge(False)
    report = {
        "started": "a",
        "finished": "b",
        "command": "uv run python -m bench",
        "results_file": "bench/results/x.json",
        "settings": {"p2_seconds": 30},
        "notes": ["a note"],
        "machine": {"cores": 2, "postgresql": "18"},
    }
    write_doc(page, report, [figure])
    text = page.read_text()
    assert "Profile notes kept." in text
    assert text.endswith(f"{END}\n\nAfter.\n")
    assert "\nold\n" not in text
    assert "| P1 | submit | 3/s |" in text
    assert "| postgresql | 18 |" in text
    assert text.count(BEGIN) == 1


def test_resident_memory_and_cpu_time_are_read_from_proc() -> None:
    mine = rss_mb(os.getpid())
    assert mine is not None
    assert mine > 0
    assert rss_mb(None) is None
    assert cpu_seconds(os.getpid()) > 0
    assert cpu_seconds(None) == 0.0
