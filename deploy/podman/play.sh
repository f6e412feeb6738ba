#!/usr/bin/env bash
# The dev overlay with `podman kube play` (tawasul_devstack.podplay), from the images of
# deploy/images/build.sh. Ports from TAWASUL_POD_PORT_BASE (35000): gRPC 35101-35105 (second
# replicas 35111-35115), the gateway 35088, Kafka 35092, MinIO 35000, PostgreSQL 35054.
#
#   deploy/podman/play.sh up      # infrastructure, migrations, services (routing, review: 2)
#   deploy/podman/play.sh demo    # the demo's journey through the pods
#   deploy/podman/play.sh status  # the pods
#   deploy/podman/play.sh down
#   deploy/podman/play.sh render  # only the kube YAML, into .state/pods-<base>/kube
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m uv run tawasul-podplay "$@"
