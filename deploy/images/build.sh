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
CACHE_DIR="${TAWASUL_CACHE_DIR:-$HOME/.cache/tawasul}"

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
    # Docker's format keeps the HEALTHCHECK (OCI's has none).
    podman build \
        --format docker \
        --build-arg "SERVICE=$service" \
        --build-arg "BASE=$BASE_IMAGE" \
        --file "$ROOT/deploy/images/Containerfile" \
        --tag "localhost/tawasul/$service:$TAG" \
        "$ROOT"
}

main() {
    local services=("$@")
    [ "${#services[@]}" -gt 0 ] || services=("${ALL_SERVICES[@]}")
    for service in "${services[@]}"; do
        case " ${ALL_SERVICES[*]} " in
            *" $service "*) ;;
            *) log "unknown service '$service': one of ${ALL_SERVICES[*]}"; exit 2 ;;
        esac
    done
    command -v podman >/dev/null || { log "podman is not installed"; exit 1; }
    build_base
    for service in "${services[@]}"; do
        build_service "$service"
    done
    log "done: ${services[*]} as localhost/tawasul/<service>:$TAG"
}

main "$@"
