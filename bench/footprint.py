"""Where a submission's CPU goes at a steady rate, and how many times each one is read.

    make up                                  # or any running stack (TAWASUL_PORT_BASE, ...)
    uv run python -m bench.footprint [--rate 60] [--seconds 30]

Runs P7's load on the running stack (SubmitRequest at `rate` for `seconds`, an open loop in a
process of its own, then until every submission's SMS reached the gateway) and prints, for
that span: the CPU each process used per submission (the services, Kafka, PostgreSQL with
every backend it had when the load began, the stand-ins, the load process and this one), the
machine's busy cores (all of /proc/stat), and the records each consumer group committed per
submission. Asserts nothing; compare two runs of it to see what a change did.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from tawasul_devstack.offsets import Offsets
from tawasul_devstack.stack import Stack, StackConfig
from tawasul_platform.topics import REQUEST_SUBMITTED, SUBSCRIPTIONS

from bench.cpu import Footprint
from bench.latency import p7
from bench.runs import Settings


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
    submitted_before, reads_before = await offsets(config)
    with Footprint(Stack(config)) as used:
        figures = await p7(config, Settings(p7_seconds=seconds), rate)
    submitted_after, reads_after = await offsets(config)
    # The load's warm-up included: its submissions cost CPU and are read like the others.
    sent = max(submitted_after - submitted_before, 1)
    lines = [f"{f.id}: {f.shown or f.status}" for f in figures]
    spent = used.summary(sent)
    lines += [
        f"{name:12s} {ms:6.2f} ms of CPU a submission"
        for name, ms in spent["cpu_ms_a_submission"].items()
    ]
    lines.append(
        f"{'all of them':12s} {spent['all_processes_ms_a_submission']:6.2f} ms of CPU a "
        f"submission; the machine {spent['machine_busy_cores']:.2f} cores busy over "
        f"{spent['seconds']:.0f} s"
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
