"""Secrets made once in the state dir (the identity providers' keys, the tracking-code and
MinIO keys): readable by their owner only from the moment they exist, and one per state dir
even when several processes use a fresh one at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import jwt
import pytest
from tawasul_devstack.config import kept_secret
from tawasul_devstack.identity import DevIdentity
from tawasul_platform.identity import Role

PROCESSES = 4
ATTEMPTS = 8


def _token(directory: str) -> str:
    return DevIdentity(Path(directory)).token("1000000008", Role.CITIZEN)


def _secret(path: str) -> str:
    return kept_secret(Path(path))


def _run(target: Callable[[str], str], arg: str, start: Any, queue: Queue[str]) -> None:
    start.wait()
    try:
        queue.put(target(arg))
    except Exception as error:  # the test's to report, not this process's
        queue.put(f"ERROR {error!r}")


def _at_once(target: Callable[[str], str], arg: str) -> list[str]:
    """What `target(arg)` returns in each of PROCESSES processes, started together."""
    start = multiprocessing.Barrier(PROCESSES)
    queue: Queue[str] = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=_run, args=(target, arg, start, queue))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=30) for _ in processes]
    for process in processes:
        process.join()
    assert not [r for r in results if r.startswith("ERROR")], results
    return results


def test_tokens_of_processes_first_using_a_state_dir_at_once_all_verify(tmp_path: Path) -> None:
    for attempt in range(ATTEMPTS):
        directory = tmp_path / f"identity-{attempt}"
        tokens = _at_once(_token, str(directory))
        jwks = json.loads((directory / "users.jwks.json").read_text())
        kids = {key["kid"] for key in jwks["keys"]}
        assert {jwt.get_unverified_header(token)["kid"] for token in tokens} == kids


def test_processes_first_asking_for_a_secret_at_once_get_the_same(tmp_path: Path) -> None:
    for attempt in range(ATTEMPTS):
        path = tmp_path / f"tracking-{attempt}.secret"
        assert len(set(_at_once(_secret, str(path)))) == 1


@pytest.fixture
def created_modes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The mode each file is created with (its name: mode), the umask applied."""
    modes: dict[str, int] = {}
    real_open = os.open
    umask = os.umask(0o022)
    os.umask(umask)

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and not os.path.exists(path):
            modes[os.path.basename(path)] = mode & ~umask
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return modes


def test_a_kept_secret_is_never_readable_by_others(
    tmp_path: Path, created_modes: dict[str, int]
) -> None:
    kept_secret(tmp_path / "tracking.secret")

    assert [oct(mode) for mode in created_modes.values()] == ["0o600"]
    assert stat.S_IMODE((tmp_path / "tracking.secret").stat().st_mode) == 0o600


def test_identity_keys_are_never_readable_by_others(
    tmp_path: Path, created_modes: dict[str, int]
) -> None:
    DevIdentity(tmp_path)

    keys = {name: mode for name, mode in created_modes.items() if ".key.pem" in name}
    assert sorted(name.split(".")[1] for name in keys) == ["staff", "users"]
    assert {oct(mode) for mode in keys.values()} == {"0o600"}
    for key in tmp_path.glob("*.key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_the_public_keys_are_replaced_whole_never_rewritten_in_place(tmp_path: Path) -> None:
    """A service reading users.jwks.json while another process writes it must read one whole
    file: the old one it opened stays whole, and the path names a new one."""
    DevIdentity(tmp_path)
    path = tmp_path / "users.jwks.json"
    before = path.stat().st_ino
    with path.open("rb") as reading:
        DevIdentity(tmp_path)
        assert json.loads(reading.read())["keys"]
    assert path.stat().st_ino != before
