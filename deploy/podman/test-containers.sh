#!/usr/bin/env bash
# The container tier (issue 13), `make test-containers`: podman installed when it can be (root
# and apt), the images built (deploy/images/build.sh; cached layers make a rebuild short),
# then
#   1. the e2e journey and scale-out with PostgreSQL, Kafka and MinIO as containers started
#      by testcontainers on podman's Docker-compatible API (TAWASUL_TEST_INFRA=containers),
#      the services as local processes;
#   2. the dev overlay under `podman kube play` (tests/e2e/test_podman_play.py).
# Says at the end which tier ran. Without podman (and no way to install it) nothing runs and
# it says so, with exit 0: the local-process tier (`make test`) is the one that always runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV="${UV:-python3 -m uv}"
started=$SECONDS
say() { printf 'test-containers: %s\n' "$*"; }

if ! command -v podman >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing podman (INFRA.md)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            podman runc debootstrap uidmap slirp4netns fuse-overlayfs >/dev/null
    else
        say "podman is not installed and cannot be installed here: NO container tier ran"
        exit 0
    fi
fi
# crun fails on these hybrid cgroups, and ulimits cannot be raised (INFRA.md).
if [ "$(id -u)" = 0 ] && [ ! -f /etc/containers/containers.conf ]; then
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' \
        > /etc/containers/containers.conf
fi

$UV run tawasul-stack install   # the Kafka jars and the MinIO binary the images take
build_started=$SECONDS
deploy/images/build.sh
say "images built in $((SECONDS - build_started)) s"

export TAWASUL_TEST_PORT_BASE="${TAWASUL_TEST_PORT_BASE:-29000}"
tier_started=$SECONDS
# Scale-out first: its load retries, and warms intake up; the journey's first SubmitRequest
# (5 s deadline) missed it against a cold intake on a busy 2-core machine.
TAWASUL_TEST_INFRA=containers $UV run pytest -p no:cacheprovider \
    tests/e2e/test_scale_out.py tests/e2e/test_journey.py
say "testcontainers tier (PostgreSQL, Kafka, MinIO in containers) passed in $((SECONDS - tier_started)) s"
tier_started=$SECONDS
$UV run pytest -p no:cacheprovider tests/e2e/test_podman_play.py
say "podman kube play tier (the dev overlay) passed in $((SECONDS - tier_started)) s"
say "ran: testcontainers tier + podman kube play tier, in $((SECONDS - started)) s in all"
