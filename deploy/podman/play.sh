#!/usr/bin/env bash
# The dev overlay with `podman kube play` (tawasul_devstack.podplay), from the images of
# deploy/images/build.sh. Ports from TAWASUL_POD_PORT_BASE (26000; the play refuses ports in
# the host's ephemeral range): gRPC 26101-26105 (second replicas 26111-26115), the gateway
# 26088, Kafka 26092, MinIO 26000, PostgreSQL 26054.
#
#   deploy/podman/play.sh up      # infrastructure, migrations, services (routing, review: 2)
#   deploy/podman/play.sh demo    # the demo's journey through the pods
#   deploy/podman/play.sh status  # the pods
#   deploy/podman/play.sh down
#   deploy/podman/play.sh render  # only the kube YAML, into .state/pods-<base>/kube
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m uv run tawasul-podplay "$@"
