"""`tawasul-health`: asks a service's own gRPC server, through grpc.health.v1, whether it serves.

The container's health check (deploy/images/healthcheck.sh) and an operator run it inside the
service's container; Kubernetes' probes ask the metrics port instead (tawasul_platform.vitals),
which costs the pod no process.
The servers speak mutual TLS only (GrpcServer opens no plaintext port beside it), so the
probe must show a certificate the CA signed: it uses the process's own TAWASUL_TLS_* files,
whose certificate carries clientAuth as well as serverAuth (deploy/local's Pki makes them so).

Exit 0 when SERVING, 1 otherwise (NOT_SERVING, refused, timed out): what health checks read.
With --alive, any answer is 0, NOT_SERVING included: a process that waits for Kafka at start
(health NOT_SERVING, service.serve) is alive and must not be restarted by a liveness probe;
it is only kept out of the Service's endpoints by the readiness probe. So is a refusal the
server itself gave (ANSWERED): one at its call limit (grpc_max_concurrent_rpcs) answers the
probe RESOURCE_EXHAUSTED, and a restart would only drop the calls it is busy with. No answer
(UNAVAILABLE: nothing listening, a failed handshake; DEADLINE_EXCEEDED) is 1.
It imports grpc and the health stubs only, not the service's settings, to keep each check
as cheap as a Python process can be.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tawasul_platform.tls import ENV_CA, ENV_CERT, ENV_KEY, tls_config

ENV_ADDRESS = "TAWASUL_GRPC_ADDRESS"
# What the server's certificate names for a caller inside the pod (deploy/local's Pki: the
# service's name, localhost and 127.0.0.1).
DEFAULT_SERVER_NAME = "localhost"
# Errors only a server that is up and answering gives: past its call limit, a server without
# grpc.health (or a --service health does not know). Liveness takes them as answers.
ANSWERED = frozenset(
    {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND}
)


def probe_target(address: str) -> str:
    """Where to reach a server listening on `address` from inside its own pod: a wildcard
    host (0.0.0.0, [::], none) becomes the loopback address."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    if host in ("", "0.0.0.0", "[::]", "::", "*"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def check(
    target: str,
    *,
    service: str = "",
    timeout: float = 2.0,
    server_name: str = DEFAULT_SERVER_NAME,
    env: dict[str, str] | None = None,
    alive: bool = False,
) -> int:
    """The health status of `service` ("" for the whole server) at `target`, as an exit code."""
    env = dict(os.environ) if env is None else env

    def path(name: str) -> Path | None:
        value = env.get(name)
        return Path(value) if value else None

    tls = tls_config(cert_file=path(ENV_CERT), key_file=path(ENV_KEY), ca_file=path(ENV_CA))
    if tls is None:
        channel = grpc.insecure_channel(target)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
        )
        channel = grpc.secure_channel(
            target, credentials, options=[("grpc.ssl_target_name_override", server_name)]
        )
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            code = exc.code()
            print(f"tawasul-health: {target}: {code.name}", file=sys.stderr)
            return 0 if alive and code in ANSWERED else 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING and not alive:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"tawasul-health: {target}: {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tawasul-health", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--address", help=f"host:port of the server (default: ${ENV_ADDRESS}, on loopback)"
    )
    parser.add_argument("--service", default="", help="a gRPC service name; '' is the server")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument(
        "--server-name",
        default=DEFAULT_SERVER_NAME,
        help="the name the server's certificate must carry (in Kubernetes: its Service's)",
    )
    parser.add_argument(
        "--alive",
        action="store_true",
        help="any answer passes, NOT_SERVING and RESOURCE_EXHAUSTED too (liveness)",
    )
    args = parser.parse_args(argv)
    address = args.address or os.environ.get(ENV_ADDRESS)
    if not address:
        parser.error(f"give --address or set {ENV_ADDRESS}")
    try:
        target = probe_target(address)
        return check(
            target,
            service=args.service,
            timeout=args.timeout,
            server_name=args.server_name,
            alive=args.alive,
        )
    except ValueError as exc:
        print(f"tawasul-health: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
