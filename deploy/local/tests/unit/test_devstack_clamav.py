"""ClamAV in the dev stack: its configuration, its signature database, its install and probe."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from tawasul_devstack import clamav, install
from tawasul_devstack.procs import Proc, StackError
from tawasul_devstack.stack import PROCESSES, SERVICES, Stack, StackConfig


def conf_dict(text: str) -> dict[str, str]:
    settings = [line.partition(" ")[::2] for line in text.splitlines()]
    keys = [key for key, _ in settings]
    assert len(keys) == len(set(keys)), "a setting given twice"
    return dict(settings)


def size(value: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


# -- signature database and clamd.conf ------------------------------------------------------


def test_the_database_is_one_body_signature_for_eicar() -> None:
    lines = clamav.signature_database().splitlines()

    assert len(lines) == 1
    name, target, offset, hex_bytes = lines[0].split(":")
    assert name == "Tawasul.Eicar-Test-Signature"
    assert (target, offset) == ("0", "*")  # any file type, anywhere in it
    assert bytes.fromhex(hex_bytes) == clamav.EICAR
    assert clamav.EICAR.startswith(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR")
    assert len(clamav.EICAR) == 68
    assert clamav.REPORTED_SIGNATURE == "Tawasul.Eicar-Test-Signature.UNOFFICIAL"


def test_clamd_conf_listens_on_loopback_in_the_foreground(tmp_path: Path) -> None:
    conf = conf_dict(
        clamav.clamd_conf(
            port=20010,
            database_dir=tmp_path / "db",
            log_file=tmp_path / "clamd.log",
            temp_dir=tmp_path / "tmp",
            user="root",
        )
    )

    assert conf["DatabaseDirectory"] == str(tmp_path / "db")
    assert conf["TCPSocket"] == "20010"
    assert conf["TCPAddr"] == "127.0.0.1"
    assert conf["Foreground"] == "true"
    assert conf["User"] == "root"
    assert conf["LogFile"] == str(tmp_path / "clamd.log")
    assert conf["TemporaryDirectory"] == str(tmp_path / "tmp")
    assert "LocalSocket" not in conf


def test_clamd_conf_takes_the_largest_upload(tmp_path: Path) -> None:
    conf = conf_dict(
        clamav.clamd_conf(
            port=1,
            database_dir=tmp_path,
            log_file=tmp_path / "log",
            temp_dir=tmp_path,
            user=None,
        )
    )
    # The catalog's largest document is 10 MiB.
    largest_upload = 10 * 1024 * 1024

    assert "User" not in conf  # not root: clamd runs as whoever starts it
    assert size(conf["StreamMaxLength"]) == 25 * 1024 * 1024
    assert size(conf["StreamMaxLength"]) > largest_upload
    assert size(conf["MaxFileSize"]) >= size(conf["StreamMaxLength"])
    assert size(conf["MaxScanSize"]) >= size(conf["MaxFileSize"])


def test_prepare_writes_the_database_and_the_conf_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    home = tmp_path / "state" / "clamd"
    log = tmp_path / "state" / "logs" / "clamd.log"

    conf = clamav.prepare(home, port=20010, log_file=log)

    assert conf == home / "clamd.conf"
    settings = conf_dict(conf.read_text())
    assert settings["User"] == "root"
    assert settings["TCPSocket"] == "20010"
    database = Path(settings["DatabaseDirectory"]) / clamav.DATABASE_FILE
    assert database.read_text() == clamav.signature_database()
    assert Path(settings["TemporaryDirectory"]).is_dir()
    assert log.parent.is_dir()
    assert not list(home.rglob("*.partial"))

    # Unchanged files are left alone: clamd rereads a database whose file changed.
    before = (conf.stat().st_mtime_ns, database.stat().st_mtime_ns)
    os.utime(conf, ns=(1, 1))
    os.utime(database, ns=(1, 1))
    clamav.prepare(home, port=20010, log_file=log)
    assert (conf.stat().st_mtime_ns, database.stat().st_mtime_ns) == (1, 1)
    assert before != (1, 1)

    clamav.prepare(home, port=20011, log_file=log)
    assert conf_dict(conf.read_text())["TCPSocket"] == "20011"


# -- the stack's settings -------------------------------------------------------------------


def test_clamd_port_derives_from_the_port_base(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path, port_base=20000)

    assert config.clamd_port == 20010
    assert config.clamd_address == "127.0.0.1:20010"
    assert config.service_env("docs")["TAWASUL_CLAMD_ADDRESS"] == "127.0.0.1:20010"
    others = {
        config.kafka_port,
        config.kafka_controller_port,
        config.minio_port,
        config.minio_console_port,
        config.sms_gateway_port,
        config.smtp_port,
        *(config.grpc_port(s) for s in SERVICES),
    }
    assert config.clamd_port not in others


def test_clamd_is_one_of_the_stacks_processes(tmp_path: Path) -> None:
    stack = Stack(StackConfig(tmp_path / "state", tmp_path / "cache"))

    assert "clamd" in PROCESSES
    assert stack.status()["clamd"] is False
    assert stack.pid("clamd") is None
    assert stack.log_path("clamd") == tmp_path / "state" / "logs" / "clamd.log"
    stack.stop_service("clamd")  # nothing runs: a no-op


def test_start_clamd_needs_it_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clamav, "clamd_binary", lambda: None)
    stack = Stack(StackConfig(tmp_path / "state", tmp_path / "cache"))

    with pytest.raises(StackError, match="tawasul-stack install"):
        stack.start_service("clamd")


# -- install --------------------------------------------------------------------------------


class FakeApt:
    """Records apt-get runs; clamd "appears" once the install has run."""

    def __init__(self, installed: bool) -> None:
        self.installed = installed
        self.runs: list[list[str]] = []

    def clamd_binary(self) -> str | None:
        return "/usr/sbin/clamd" if self.installed else None

    def run(self, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        assert env is not None
        assert env["DEBIAN_FRONTEND"] == "noninteractive"
        self.runs.append(list(argv))
        if "install" in argv:
            self.installed = True


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    fake = FakeApt(installed=False)
    monkeypatch.setattr(clamav, "clamd_binary", fake.clamd_binary)
    monkeypatch.setattr(install, "_run", fake.run)
    monkeypatch.setattr(install, "tool", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return fake


def test_install_runs_apt_once_when_clamd_is_missing(apt: FakeApt, tmp_path: Path) -> None:
    assert install.ensure_clamav(tmp_path) == "/usr/sbin/clamd"
    assert install.ensure_clamav(tmp_path) == "/usr/sbin/clamd"

    assert len(apt.runs) == 2
    update, add = apt.runs
    assert update[0] == add[0] == "/usr/bin/apt-get"
    assert update[-1] == "update"
    assert add[-4:] == ["install", "-y", "--no-install-recommends", "clamav-daemon"]


def test_install_does_nothing_when_clamd_is_there(apt: FakeApt, tmp_path: Path) -> None:
    apt.installed = True

    assert install.ensure_clamav(tmp_path) == "/usr/sbin/clamd"
    assert apt.runs == []


def test_install_without_root_says_what_to_run(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    with pytest.raises(StackError, match="apt-get install -y --no-install-recommends"):
        install.ensure_clamav(tmp_path)
    assert apt.runs == []


def test_install_fails_if_the_package_brings_no_clamd(
    apt: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apt, "clamd_binary", lambda: None)
    monkeypatch.setattr(clamav, "clamd_binary", apt.clamd_binary)

    with pytest.raises(StackError, match="no clamd"):
        install.ensure_clamav(tmp_path)


# -- readiness probe and process output -----------------------------------------------------


@pytest.fixture
def one_reply_server() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback server answering each connection with the next reply of a list."""
    replies: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                if replies:
                    conn.sendall(replies.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, replies
    listener.close()
    thread.join(5)


def test_ping_wants_pong(one_reply_server: tuple[int, list[bytes]]) -> None:
    port, replies = one_reply_server
    replies.extend([b"PONG\0", b"PONG", b"UNKNOWN COMMAND\0"])

    assert clamav.ping(port) is True
    assert clamav.ping(port) is False  # no terminator: the connection ended first
    assert clamav.ping(port) is False


def test_ping_on_a_closed_port_is_false() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    assert clamav.ping(port, timeout=0.5) is False


def test_a_process_can_keep_its_stdout_out_of_the_log(tmp_path: Path) -> None:
    proc = Proc("echo", tmp_path / "echo.pid", tmp_path / "echo.log")
    # The log's header line holds the command: the words printed are not in it.
    script = "import sys; print('on', 'stdout'); print('on', 'stderr', file=sys.stderr)"

    proc.spawn([sys.executable, "-c", script], dict(os.environ), stdout_to_log=False)
    deadline = time.monotonic() + 10
    while proc.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)

    log = proc.log_file.read_text()
    assert "on stderr" in log
    assert "on stdout" not in log
