"""P1's baseline: a bare grpc.aio unary echo server, a process of its own like intake.

    python -m bench.echo --state-dir .state/stack --port-base 19000

It serves `/bench.v1.Echo/Echo` (the request's bytes back, no parsing, no interceptor) over
the same mutual TLS as the services: intake's certificate from the stack's CA, client
certificates required. It binds a free loopback port, prints `port <n>` once serving, and
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import grpc
from tawasul_devstack.stack import StackConfig
from tawasul_platform.tls import server_credentials

SERVICE = "bench.v1.Echo"
# The services' own receive limit (GrpcServer's default).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(config: StackConfig, certificate: str) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            ),
        )
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(config.tls(certificate)))
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    await stopping.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--certificate", default="intake", help="whose server certificate")
    args = parser.parse_args()
    config = StackConfig.from_env(state_dir=args.state_dir, port_base=args.port_base)
    asyncio.run(serve(config, args.certificate))


if __name__ == "__main__":
    main()
