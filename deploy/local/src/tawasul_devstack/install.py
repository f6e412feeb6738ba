"""Fetches and builds the stack's servers once: Kafka jars and MinIO into the cache dir, and
ClamAV's daemon from Debian's packages (apt, as root); Prometheus and promtool, which only the
test tier needs, into the cache dir on demand."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tawasul_devstack import clamav
from tawasul_devstack.procs import StackError, tail

_log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
# A pseudo-version of the upstream source: MinIO publishes no tagged Go module releases.
MINIO_MODULE = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
# Prometheus 3.x: its Go module's versions are v0.3xx.y for the server's 3.xx.y.
PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
PROMETHEUS_VERSION = "v0.316.0"
PROMETHEUS_COMMANDS = ("prometheus", "promtool")
# Leaves out every service-discovery plugin (Kubernetes, the clouds, Consul, ...): the dev
# stack's scrape targets are static, and the plugins are most of the build.
PROMETHEUS_BUILD_TAGS = "remove_all_sd"
# Waits for another apt or dpkg run to release its locks rather than fail at once.
APT_LOCK_TIMEOUT = 300
# Pinned so that a new plugin release cannot change what lands in lib/.
COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy-dependencies"

# log4j-slf4j-impl: Kafka 4.1 logs through slf4j 1.7, which the slf4j2 binding does not serve.
KAFKA_POM = f"""\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tawasul.devstack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_lib(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"


def minio_binary(cache_dir: Path) -> Path:
    return cache_dir / "bin" / "minio"


def prometheus_binary(cache_dir: Path, command: str = "prometheus") -> Path:
    """The server (or "promtool") of PROMETHEUS_VERSION, once ensure_prometheus built it."""
    return cache_dir / f"prometheus-{PROMETHEUS_VERSION}" / command


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not on PATH; the local stack needs it")
    return path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`, so concurrent `up`s fetch or build only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
    with log.open("wb") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise StackError(f"`{' '.join(argv)}` failed (exit {code}):\n{tail(log)}")


def ensure_kafka(cache_dir: Path) -> Path:
    """The directory of Kafka's jars, downloaded from Maven Central the first time."""
    lib = kafka_lib(cache_dir)
    if lib.is_dir():
        return lib
    home = lib.parent
    with _locked(home.parent / f"{home.name}.lock"):
        if not lib.is_dir():
            home.mkdir(parents=True, exist_ok=True)
            pom = home / "pom.xml"
            pom.write_text(KAFKA_POM)
            # Copied aside and renamed: an interrupted download never looks complete.
            partial = home / "lib.partial"
            shutil.rmtree(partial, ignore_errors=True)
            _run(
                [
                    tool("mvn"),
                    "-B",
                    "-q",
                    "-f",
                    str(pom),
                    COPY_DEPENDENCIES,
                    f"-DoutputDirectory={partial}",
                ],
                log=home / "mvn.log",
            )
            partial.rename(lib)
    return lib


def ensure_minio(cache_dir: Path) -> Path:
    """The MinIO server binary, built with `go install` the first time (about 6 min)."""
    binary = minio_binary(cache_dir)
    if binary.is_file():
        return binary
    with _locked(binary.parent / "minio.lock"):
        if not binary.is_file():
            build_bin = binary.parent / ".minio-build"
            shutil.rmtree(build_bin, ignore_errors=True)
            build_bin.mkdir(parents=True)
            _run(
                [tool("go"), "install", MINIO_MODULE],
                log=binary.parent / "minio-build.log",
                env={**os.environ, "GOBIN": str(build_bin)},
            )
            (build_bin / "minio").rename(binary)
            build_bin.rmdir()
    return binary


def ensure_prometheus(cache_dir: Path) -> Path:
    """The directory of Prometheus's server and promtool, built with `go install` the first
    time (see PROMETHEUS_BUILD_TAGS)."""
    home = prometheus_binary(cache_dir).parent
    if all(prometheus_binary(cache_dir, c).is_file() for c in PROMETHEUS_COMMANDS):
        return home
    with _locked(home.parent / f"{home.name}.lock"):
        if not all(prometheus_binary(cache_dir, c).is_file() for c in PROMETHEUS_COMMANDS):
            # Built aside and renamed: an interrupted build never looks complete.
            partial = home.parent / f"{home.name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            started = time.monotonic()
            _log.info("building Prometheus %s with go install (once) ...", PROMETHEUS_VERSION)
            _run(
                [
                    tool("go"),
                    "install",
                    "-tags",
                    PROMETHEUS_BUILD_TAGS,
                    *(
                        f"{PROMETHEUS_MODULE}/cmd/{command}@{PROMETHEUS_VERSION}"
                        for command in PROMETHEUS_COMMANDS
                    ),
                ],
                log=home.parent / f"{home.name}-build.log",
                env={**os.environ, "GOBIN": str(partial)},
            )
            shutil.rmtree(home, ignore_errors=True)
            partial.rename(home)
            _log.info("built Prometheus in %.1f s (%s)", time.monotonic() - started, home)
    return home


def ensure_clamav(cache_dir: Path) -> str:
    """The path of clamd, installed from Debian's clamav-daemon package the first time.

    Needs root (as CI's `make setup` runs); apt-get's output goes to <cache>/clamav-apt-*.log.
    """
    found = clamav.clamd_binary()
    if found is not None:
        return found
    with _locked(cache_dir / "clamav.lock"):
        found = clamav.clamd_binary()
        if found is not None:
            return found
        if os.geteuid() != 0:
            raise StackError(
                f"clamd is not installed and installing it needs root: run "
                f"`sudo apt-get install -y --no-install-recommends {clamav.PACKAGE}`"
            )
        apt_get = tool("apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock_wait = f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"
        started = time.monotonic()
        _log.info("installing %s with apt-get (once) ...", clamav.PACKAGE)
        _run(
            [apt_get, "-q", "-o", lock_wait, "update"],
            log=cache_dir / "clamav-apt-update.log",
            env=env,
        )
        _run(
            [
                apt_get,
                "-q",
                "-o",
                lock_wait,
                "install",
                "-y",
                "--no-install-recommends",
                clamav.PACKAGE,
            ],
            log=cache_dir / "clamav-apt-install.log",
            env=env,
        )
        found = clamav.clamd_binary()
        if found is None:
            raise StackError(f"{clamav.PACKAGE} is installed but no clamd was found")
        _log.info("installed %s in %.1f s (%s)", clamav.PACKAGE, time.monotonic() - started, found)
        return found
