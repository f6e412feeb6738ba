#!/usr/bin/env bash
# The container tiers (issue 13), `make test-containers`, when podman is installed: the
# images built (deploy/images/build.sh; cached layers make a rebuild short), then
#   1. the e2e journey with PostgreSQL, Kafka and MinIO as containers started by
#      testcontainers on podman's Docker-compatible API (TAWASUL_TEST_INFRA=containers), the
#      services as local processes;
#   2. the dev overlay under `podman kube play` (tests/e2e/test_podman_play.py, -m pods).
# Says at the end which tiers ran. It installs nothing: without podman nothing runs and a
# banner says so, with exit 0: the local-process tier (`make test`) is the one that always
# runs, and CI must not spend ~15 min installing podman and building every image.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV="${UV:-python3 -m uv}"
started=$SECONDS
say() { printf 'test-containers: %s\n' "$*"; }

if ! command -v podman >/dev/null; then
    # Not installed here for CI's sake: from nothing, podman and every image take ~15 min
    # (deploy/README). `apt-get install podman runc debootstrap uidmap slirp4netns
    # fuse-overlayfs` as INFRA.md says, and this tier runs.
    rule='########################################################################'
    printf '%s\n' "$rule" \
        '### NO CONTAINER TIER RAN: podman is not installed here.' \
        '### Neither the testcontainers tier nor the podman kube play tier was tested;' \
        '### only `make test` (the local-process tier) was. To run them:' \
        '###   apt-get install podman runc debootstrap uidmap slirp4netns fuse-overlayfs' \
        '###   make test-containers' \
        "$rule"
    say "NO container tier ran"
    exit 0
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
# The journey; two replicas sharing the work are the kube play tier's (and the local one's).
TAWASUL_TEST_INFRA=containers $UV run pytest -p no:cacheprovider tests/e2e/test_journey.py
say "testcontainers tier (PostgreSQL, Kafka, MinIO in containers) passed in $((SECONDS - tier_started)) s"
tier_started=$SECONDS
$UV run pytest -p no:cacheprovider -m pods tests/e2e/test_podman_play.py
say "podman kube play tier (the dev overlay) passed in $((SECONDS - tier_started)) s"
say "ran: testcontainers tier (the journey) + podman kube play tier, in $((SECONDS - started)) s in all"
