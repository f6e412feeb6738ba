#!/usr/bin/env bash
# Builds Tawasul's images with podman, with no registry of images at hand (INFRA.md,
# "Containers"): first the base, Debian bookworm from debootstrap, imported as
# localhost/tawasul/base:bookworm; then one image per Python process from deploy/images/Containerfile,
# tagged localhost/tawasul/<service>:$TAG, the names the manifests in deploy/k8s use.
#
#   deploy/images/build.sh                 # the base (once) and all six images
#   deploy/images/build.sh intake docs     # some images only
#   TAG=0.1.1 REBUILD_BASE=1 deploy/images/build.sh
#
# Needs root (debootstrap) and: apt-get install -y podman runc debootstrap uidmap slirp4netns
# fuse-overlayfs; on hybrid-cgroup machines /etc/containers/containers.conf must choose runc
# ([engine] runtime = "runc") and default_ulimits = [] under [containers] (INFRA.md).
# The Debian mirror is the host's (from /etc/apt/sources.list*), or $DEBIAN_MIRROR.
# Apt and PyPI are reached from inside `podman build`, as on these machines.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TAG="${TAG:-0.1.0}"
BASE_IMAGE="localhost/tawasul/base:bookworm"
SUITE=bookworm
ALL_SERVICES=(intake routing review docs notify gateway)
# The infrastructure for `podman kube play` of the dev overlay and the testcontainers tier:
# devstack (the SMS gateway and SMTP stand-ins of deploy/local, and PostgreSQL's binaries),
# postgres, kafka, minio, clamav.
ALL_INFRA=(devstack postgres kafka minio clamav)
KAFKA_VERSION=4.1.1
PG_TAG=18
CACHE_DIR="${TAWASUL_CACHE_DIR:-$HOME/.cache/tawasul}"
# The workspace's interpreter (tawasul_devstack writes the Kafka logging and ClamAV files).
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# The host's CA bundle goes to the builder as a build secret (never into a layer): PyPI may be
# reached through a TLS-intercepting proxy whose CA only the host trusts.
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
CA_SECRET=()
[ -s "$HOST_CA_BUNDLE" ] && CA_SECRET=(--secret "id=ca-bundle,src=$HOST_CA_BUNDLE")

log() { printf '%s build.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

host_mirror() {
    # deb822 (.sources: "URIs: <uri>") or one-line ("deb <uri> <suite> ..."): the first
    # archive of Debian itself, not its security archive.
    local files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    awk '
        /^[[:space:]]*#/ { next }
        $1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }
        $1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }
    ' "${files[@]}" | grep -v -- '-security' | grep -E '/debian/?$' | head -n 1
}

build_base() {
    if [ -z "${REBUILD_BASE:-}" ] && podman image exists "$BASE_IMAGE"; then
        log "$BASE_IMAGE exists (REBUILD_BASE=1 to make it again)"
        return
    fi
    local mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
    if [ -z "$mirror" ]; then
        log "no Debian mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR"
        exit 1
    fi
    local dir
    mkdir -p "$CACHE_DIR"
    dir="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    trap 'rm -rf "$dir"' EXIT
    log "debootstrap $SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase "$SUITE" "$dir" "$mirror"
    # Smaller images: no apt lists or caches in the base.
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
    log "podman import -> $BASE_IMAGE"
    tar -C "$dir" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
    rm -rf "$dir"
    trap - EXIT
}

build_service() {
    local service="$1"
    log "building localhost/tawasul/$service:$TAG"
    [ -f "$ROOT/deploy/images/Containerfile" ] || exit 1
    # Docker's format keeps the HEALTHCHECK (OCI's has none).
    podman build \
        --format docker \
        --build-arg "SERVICE=$service" \
        --build-arg "BASE=$BASE_IMAGE" \
        "${CA_SECRET[@]}" \
        --file "$ROOT/deploy/images/Containerfile" \
        --tag "localhost/tawasul/$service:$TAG" \
        "$ROOT"
}

# The tag of an infrastructure image: the version of what it runs.
infra_tag() {
    case "$1" in
        kafka) echo "$KAFKA_VERSION" ;;
        postgres) echo "$PG_TAG" ;;
        *) echo "$TAG" ;;
    esac
}

# A build context of its own for an infrastructure image: its folder under deploy/images, plus
# what deploy/local already downloaded or built into the cache (the stack's `install` step).
infra_context() {
    local name="$1" context
    context="$(mktemp -d "$CACHE_DIR/context-$name.XXXXXX")"
    cp -a "$ROOT/deploy/images/$name/." "$context/"
    case "$name" in
        kafka)
            local lib="$CACHE_DIR/kafka-$KAFKA_VERSION/lib"
            [ -f "$lib/kafka_2.13-$KAFKA_VERSION.jar" ] || {
                log "no Kafka jars in $lib: run \`uv run tawasul-stack install\` first"; exit 1; }
            cp -al "$lib" "$context/lib" 2>/dev/null || cp -a "$lib" "$context/lib"
            "$PYTHON" -c 'from tawasul_devstack.kafka import LOG4J2_XML; print(LOG4J2_XML, end="")' \
                > "$context/log4j2.xml"
            ;;
        minio)
            [ -x "$CACHE_DIR/bin/minio" ] || {
                log "no MinIO binary at $CACHE_DIR/bin/minio: run \`uv run tawasul-stack install\` first"; exit 1; }
            cp -l "$CACHE_DIR/bin/minio" "$context/minio" 2>/dev/null || cp "$CACHE_DIR/bin/minio" "$context/minio"
            ;;
        clamav)
            "$PYTHON" - "$context" <<'PY'
import sys
from pathlib import Path

from tawasul_devstack import clamav

context = Path(sys.argv[1])
(context / clamav.DATABASE_FILE).write_text(clamav.signature_database())
conf = clamav.clamd_conf(
    port=3310,
    database_dir=Path("/var/lib/clamav"),
    log_file=Path("/dev/stderr"),
    temp_dir=Path("/tmp"),
    user=None,
)
# In a container: every address, and no log file but stderr.
conf = conf.replace("TCPAddr 127.0.0.1", "TCPAddr 0.0.0.0").replace("LogFile /dev/stderr\n", "")
(context / "clamd.conf").write_text(conf)
PY
            ;;
    esac
    echo "$context"
}

build_infra() {
    local name="$1" tag context
    tag="$(infra_tag "$name")"
    log "building localhost/tawasul/$name:$tag"
    if [ "$name" = devstack ]; then
        # The services' Containerfile, for the package tawasul-devstack.
        build_service devstack
        return
    fi
    context="$(infra_context "$name")"
    podman build \
        --format docker \
        --build-arg "BASE=$BASE_IMAGE" \
        --build-arg "DEVSTACK=localhost/tawasul/devstack:$TAG" \
        --file "$context/Containerfile" \
        --tag "localhost/tawasul/$name:$tag" \
        "$context"
    rm -rf "$context"
}

main() {
    local names=("$@") services=() infra=()
    [ "${#names[@]}" -gt 0 ] || names=("${ALL_SERVICES[@]}" "${ALL_INFRA[@]}")
    [ "${names[*]}" != infra ] || names=("${ALL_INFRA[@]}")
    [ "${names[*]}" != services ] || names=("${ALL_SERVICES[@]}")
    for name in "${names[@]}"; do
        case " ${ALL_SERVICES[*]} " in
            *" $name "*) services+=("$name"); continue ;;
        esac
        case " ${ALL_INFRA[*]} " in
            *" $name "*) infra+=("$name"); continue ;;
        esac
        log "unknown image '$name': one of ${ALL_SERVICES[*]} ${ALL_INFRA[*]}, infra, services"
        exit 2
    done
    command -v podman >/dev/null || { log "podman is not installed"; exit 1; }
    mkdir -p "$CACHE_DIR"
    build_base
    local started
    for service in "${services[@]}"; do
        started=$SECONDS
        build_service "$service"
        log "$service: $((SECONDS - started)) s"
    done
    # postgres takes its binaries from devstack: that one first.
    for name in "${ALL_INFRA[@]}"; do
        case " ${infra[*]} " in *" $name "*) ;; *) continue ;; esac
        if [ "$name" = postgres ] && ! podman image exists "localhost/tawasul/devstack:$TAG"; then
            build_infra devstack
        fi
        started=$SECONDS
        build_infra "$name"
        log "$name: $((SECONDS - started)) s"
    done
    log "done: ${names[*]}"
}

main "$@"
