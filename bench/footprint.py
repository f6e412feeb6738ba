"""Where a submission's CPU goes at a steady rate, and how many times each one is read.

    make up                                  # or any running stack (TAWASUL_PORT_BASE, ...)
    uv run python -m bench.footprint [--rate 60] [--seconds 30]

Runs P7's load on the running stack (SubmitRequest at `rate` for `seconds`, an open loop in a
process of its own, then until every submission's SMS reached the gateway) and prints, for
that span: the CPU each process used per submission (the services, Kafka, PostgreSQL with
every backend it had when the load began, the stand-ins), the machine's busy cores (all of
/proc/stat, the load generator included), and the records each consumer group committed per
submission. Asserts nothing; compare two runs of it to see what a change did.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tawasul_devstack.offsets import Offsets
from tawasul_devstack.stack import SERVICES, Stack, StackConfig
from tawasul_platform.topics import REQUEST_SUBMITTED, SUBSCRIPTIONS

from bench import cli

OTHERS = ("kafka", "postgres", "minio", "clamd", "sms-gateway", "smtp", "gateway")


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (PostgreSQL's backends and workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def processes(stack: Stack) -> dict[str, list[int]]:
    named: dict[str, list[int]] = {}
    for name in (*SERVICES, *OTHERS):
        pid = stack.pid(name)
        if pid is not None:
            named[name] = [pid, *(children(pid) if name == "postgres" else ())]
    return named


def cpu(named: Mapping[str, Iterable[int]]) -> dict[str, float]:
    return {name: sum(cli.cpu_seconds(pid) for pid in pids) for name, pids in named.items()}


def busy_seconds() -> float:
    """The machine's CPU time spent other than idle or waiting for I/O, over all cores."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / cli.CLOCK_TICKS


async def offsets(config: StackConfig) -> tuple[int, dict[tuple[str, str], int]]:
    """Records on requests.submitted, and records each (topic, group) has committed, over all
    partitions."""
    async with Offsets(config.kafka_bootstrap) as kafka:
        submitted = sum((await kafka.ends(REQUEST_SUBMITTED)).values())
        reads = {
            (topic, group): sum(
                (await kafka.committed(group, (await kafka.ends(topic)).keys())).values()
            )
            for topic, group in SUBSCRIPTIONS
        }
    return submitted, reads


async def footprint(config: StackConfig, rate: float, seconds: float) -> list[str]:
    named = processes(Stack(config))
    submitted_before, reads_before = await offsets(config)
    cpu_before, busy_before, started = cpu(named), busy_seconds(), time.monotonic()
    figures = await cli.p7(config, cli.Settings(p7_seconds=seconds), rate)
    cpu_after, busy_after, elapsed = cpu(named), busy_seconds(), time.monotonic() - started
    submitted_after, reads_after = await offsets(config)
    # The load's warm-up included: its submissions cost CPU and are read like the others.
    sent = max(submitted_after - submitted_before, 1)
    lines = [f"{f.id}: {f.shown or f.status}" for f in figures]
    spent = {name: cpu_after[name] - cpu_before[name] for name in named}
    lines += [
        f"{name:12s} {1000 * s / sent:6.2f} ms of CPU a submission" for name, s in spent.items()
    ]
    lines.append(
        f"{'all of them':12s} {1000 * sum(spent.values()) / sent:6.2f} ms of CPU a submission; "
        f"the machine {(busy_after - busy_before) / elapsed:.2f} cores busy over {elapsed:.0f} s"
    )
    reads = {key: (reads_after[key] - reads_before.get(key, 0)) / sent for key in reads_after}
    lines += [
        f"  {group:14s} reads {topic}: {per:.2f} a submission"
        for (topic, group), per in sorted(reads.items(), key=lambda kv: kv[0][1])
        if per
    ]
    lines.append(f"records read a submission, all groups: {sum(reads.values()):.2f}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__)
    parser.add_argument("--rate", type=float, default=60.0, help="submissions a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    for line in asyncio.run(footprint(StackConfig.from_env(), args.rate, args.seconds)):
        print(line)


if __name__ == "__main__":
    main()
