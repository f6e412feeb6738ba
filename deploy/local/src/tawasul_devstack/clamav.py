"""ClamAV's daemon for the stack: its configuration, a local signature database, a PING probe.

No signature download is possible here (freshclam cannot reach its mirrors), so clamd runs on
one local body signature: the EICAR test file, which is what the tests and the demo upload.
In production the same daemon runs with the full, updated signature set.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path

__all__ = [
    "DATABASE_FILE",
    "EICAR",
    "PACKAGE",
    "REPORTED_SIGNATURE",
    "SIGNATURE",
    "clamd_binary",
    "clamd_conf",
    "ping",
    "prepare",
    "signature_database",
]

# The 68-byte EICAR anti-virus test file: harmless, and detected by every scanner.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Tawasul.Eicar-Test-Signature"
# clamd names a signature from outside the official databases with this suffix.
REPORTED_SIGNATURE = f"{SIGNATURE}.UNOFFICIAL"
DATABASE_FILE = "tawasul.ndb"
# Debian's package of clamd.
PACKAGE = "clamav-daemon"
# The largest upload the catalog allows is 10 MiB; a stream longer than this is refused by
# clamd ("INSTREAM size limit exceeded"), which the scanner client treats as unavailable.
STREAM_MAX_LENGTH = "25M"
MAX_FILE_SIZE = "25M"
# Counts what clamd extracts from a file too (PDF streams, archives): above the file size.
MAX_SCAN_SIZE = "100M"
# clamd sits here on Debian; /usr/sbin is not on every user's PATH.
_SBIN_CLAMD = Path("/usr/sbin/clamd")


def signature_database() -> str:
    """The text of tawasul.ndb: one body signature, Name:TargetType:Offset:HexBytes."""
    return f"{SIGNATURE}:0:*:{EICAR.hex()}\n"


def clamd_binary() -> str | None:
    """The path of clamd if it is installed."""
    found = shutil.which("clamd")
    if found is not None:
        return found
    return str(_SBIN_CLAMD) if os.access(_SBIN_CLAMD, os.X_OK) else None


def clamd_conf(
    *, port: int, database_dir: Path, log_file: Path, temp_dir: Path, user: str | None
) -> str:
    """clamd.conf for a daemon in the foreground, on 127.0.0.1:`port`, logging to `log_file`.

    `user`: the account clamd switches to when started as root (None when not root).
    """
    settings: list[tuple[str, str]] = [
        ("DatabaseDirectory", str(database_dir)),
        ("TCPSocket", str(port)),
        ("TCPAddr", "127.0.0.1"),
        ("Foreground", "true"),
        *([("User", user)] if user is not None else []),
        ("LogFile", str(log_file)),
        # The stack's log files grow without rotation; so does this one.
        ("LogFileMaxSize", "0"),
        ("LogTime", "true"),
        ("TemporaryDirectory", str(temp_dir)),
        ("StreamMaxLength", STREAM_MAX_LENGTH),
        ("MaxFileSize", MAX_FILE_SIZE),
        ("MaxScanSize", MAX_SCAN_SIZE),
    ]
    return "".join(f"{key} {value}\n" for key, value in settings)


def _write_if_changed(path: Path, text: str) -> None:
    """Replace `path` atomically, and only when its content differs (clamd rereads its
    database when the file changes)."""
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        pass
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def prepare(home: Path, *, port: int, log_file: Path) -> Path:
    """Write the signature database and clamd.conf under `home`; return the conf's path."""
    database_dir = home / "db"
    temp_dir = home / "tmp"
    for directory in (database_dir, temp_dir, log_file.parent):
        directory.mkdir(parents=True, exist_ok=True)
    _write_if_changed(database_dir / DATABASE_FILE, signature_database())
    # As root clamd drops to `User`; run as the account that owns the state dir (root here).
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    conf = home / "clamd.conf"
    _write_if_changed(
        conf,
        clamd_conf(
            port=port,
            database_dir=database_dir,
            log_file=log_file,
            temp_dir=temp_dir,
            user=user,
        ),
    )
    return conf


def ping(port: int, *, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether a clamd answers PING with PONG on host:port (its readiness)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"zPING\0")
            reply = b""
            while not reply.endswith(b"\0"):
                data = sock.recv(64)
                if not data:
                    return False
                reply += data
    except OSError:
        return False
    return reply == b"PONG\0"
