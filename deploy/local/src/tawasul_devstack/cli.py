"""`tawasul-stack`: bring the local dev/test stack up and down, and look at it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tawasul_platform.identity import CHANNELS, Role
from tawasul_platform.settings import CannotStart, outside_ephemeral

from tawasul_devstack.procs import StackError, tail
from tawasul_devstack.stack import Stack, StackConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tawasul-stack",
        description="Runs PostgreSQL, Kafka, MinIO, the SMS gateway, the SMTP server, ClamAV's "
        "daemon, every Tawasul service and the channels' HTTP gateway as local processes. "
        "Settings come from TAWASUL_STACK_DIR, TAWASUL_CACHE_DIR and TAWASUL_PORT_BASE; the "
        "options below override them.",
    )
    parser.add_argument("--state-dir", type=Path, help="data, logs and pid files of this stack")
    parser.add_argument("--port-base", type=int, help="first of this stack's ports")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser(
        "install",
        help="download Kafka and build MinIO into the cache; install clamd with apt (as root)",
    )
    install.add_argument(
        "--prometheus",
        action="store_true",
        help="also build Prometheus and promtool into the cache (the test tier's)",
    )
    commands.add_parser("up", help="start everything (reuses what already runs)")
    commands.add_parser("down", help="stop everything")
    commands.add_parser(
        "status",
        help="which processes run; exits 3 when any is stopped (0 when all run), for scripts",
    )
    for command, verb in (
        ("start", "start"),
        ("stop", "stop (SIGTERM, then SIGKILL after a grace)"),
    ):
        some = commands.add_parser(
            command, help=f"{verb} processes of a running stack, e.g. a second replica"
        )
        some.add_argument(
            "names",
            nargs="+",
            metavar="name",
            help="a service, a replica of one (routing-2: same settings and consumer groups, "
            "its own gRPC port, pid file and log), the channels' HTTP gateway (gateway), "
            "postgres, kafka, minio, sms-gateway, smtp, clamd or prometheus; several are "
            "taken in the order given, up to the first that fails",
        )
    logs = commands.add_parser("logs", help="print the end of a process's log")
    logs.add_argument(
        "name",
        help="postgres, kafka, minio, sms-gateway, smtp, clamd, prometheus, gateway, a "
        "service, or <service>-migrate",
    )
    logs.add_argument("-n", "--lines", type=int, default=100)
    commands.add_parser("demo", help="walk one request through the running stack")
    token = commands.add_parser(
        "token",
        help="print a token from the stack's stand-in identity providers (end users: "
        "citizen, resident, establishment; employees: reviewer)",
    )
    token.add_argument("subject", help="national ID, iqama, establishment number or employee id")
    token.add_argument("--role", type=Role, choices=list(Role), default=Role.CITIZEN)
    token.add_argument(
        "--department", action="append", default=[], help="an employee's department (repeat)"
    )
    token.add_argument("--channel", choices=sorted(CHANNELS), default="web")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token lives")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("tawasul_devstack")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    overrides: dict[str, Any] = {}
    if args.state_dir is not None:
        overrides["state_dir"] = args.state_dir
    if args.port_base is not None:
        overrides["port_base"] = args.port_base
    stack = Stack(StackConfig.from_env(**overrides))
    if args.command in ("up", "start"):
        try:
            outside_ephemeral(
                "--port-base" if args.port_base is not None else "TAWASUL_PORT_BASE",
                stack.config.ports(),
            )
        except CannotStart as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    try:
        if args.command == "install":
            stack.install(prometheus=args.prometheus)
        elif args.command == "up":
            stack.up()
        elif args.command == "down":
            stack.down()
        elif args.command == "status":
            running = stack.status()
            for name, up in running.items():
                print(f"{name:<12} {'running' if up else 'stopped'}")
            return 0 if all(running.values()) else 3
        elif args.command == "start":
            for name in args.names:
                stack.start_service(name)
        elif args.command == "stop":
            for name in args.names:
                if not stack.stop_service(name):
                    print(f"{name} was not running")
        elif args.command == "token":
            print(
                stack.config.identity.token(
                    args.subject,
                    args.role,
                    args.department,
                    channel=args.channel,
                    ttl_seconds=args.ttl,
                )
            )
        elif args.command == "logs":
            path = stack.log_path(args.name)
            if not path.is_file():
                raise StackError(f"no log for {args.name!r} (looked for {path})")
            print(tail(path, args.lines, latest_run=False))
        else:
            # Lazy: up/down/status must not depend on whatever the demo imports.
            from tawasul_devstack import demo

            return demo.main(stack.config)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
