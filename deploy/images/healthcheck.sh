#!/bin/sh
# The container's health check: the gateway's /healthz, or the service's grpc.health.v1 (with
# the process's own TAWASUL_TLS_* client certificate; see tawasul_platform.healthcheck).
set -eu
if [ "${TAWASUL_SERVICE:-}" = gateway ]; then
    exec python3 -c 'import os, sys, urllib.request
port = os.environ.get("TAWASUL_HTTP_PORT", "8080")
with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as answer:
    sys.exit(0 if answer.status == 200 else 1)'
fi
exec tawasul-health --server-name "${TAWASUL_TLS_SERVER_NAME:-${TAWASUL_SERVICE}}"
