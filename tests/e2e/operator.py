"""The operators' Kafka tools run as in prod: on the services' TLS listener, with the
operator's certificate (which Kafka's ACLs let do what the tools do) or another one."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tawasul_devstack.stack import Stack
from tawasul_platform.kafka_acls import OPERATOR

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def run_tool(stack: Stack, tool: str, *args: str, certificate: str = OPERATOR) -> Ran:
    env = {**stack.config.operator_env(), **stack.config.tls_env(certificate)}
    assert env["TAWASUL_KAFKA_TLS"] == "true"
    process = await asyncio.create_subprocess_exec(
        BIN / tool,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return Ran(process.returncode or 0, out.decode(), err.decode())
