"""The key of a `next` whose answer was lost, kept for the `next` run after it.

Review's ClaimNext sent again under an earlier call's idempotency key answers the item that
call claimed, while the reviewer still holds it; under a new key it claims another, and the
first stays held by them, unseen, until its lease lapses. So `next` keeps its key in a file of
the reviewer's ($XDG_STATE_HOME, or ~/.local/state, /tawasul-review-cli/pending-claims) from
before it is sent until an answer is printed: a `next` run again, for the same department,
reviewer and service, sends it again and gets that item.

One `next` at a time uses the file (`PendingClaim.held`): two run at once (two terminals)
would share one key, the second getting the first's item instead of its own, or one's write
would undo the other's.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

# Review's claim lease by default (TAWASUL_CLAIM_LEASE_SECONDS, 1800): past it the claim may
# have lapsed back to the queue, and its key would only claim anew.
LEASE = timedelta(minutes=30)


def state_file() -> Path:
    # The XDG base directory spec: a relative $XDG_STATE_HOME is ignored, as an unset one.
    base = Path(os.environ.get("XDG_STATE_HOME", ""))
    root = base if base.is_absolute() else Path.home() / ".local" / "state"
    return root / "tawasul-review-cli" / "pending-claims"


def token_subject(token: str) -> str:
    """Whom a JWT names (`sub`), read unchecked: only to keep one reviewer's key from another's
    on a shared account (the service checks the token). A token that is no JWT stands for
    itself, by its hash."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (IndexError, KeyError, TypeError, ValueError):
        return hashlib.sha256(token.encode()).hexdigest()


class Busy(Exception):
    """Another `next` holds the file of kept keys."""


@dataclass(frozen=True)
class PendingClaim:
    """One `next`'s key: for a service's address, a reviewer and a department ("" for all)."""

    address: str
    reviewer: str
    department: str
    path: Path

    @property
    def _for(self) -> str:
        return json.dumps([self.address, self.reviewer, self.department])

    @contextmanager
    def held(self) -> Iterator[None]:
        """The file of kept keys, this `next`'s alone from its key to its answer (a lock beside
        it, let go when the process ends however it ends); Busy while another `next` holds it."""
        lock: int | None
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            lock = None  # no key is kept there either (_write): there is nothing to share
        if lock is None:
            yield
            return
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy from None
            yield
        finally:
            os.close(lock)

    def key(self, now: datetime) -> str:
        """The key of a lost answer's claim, or a new one; kept before it is sent, for as long
        as the claim it makes (or renews) may be held."""
        kept = self._read(now)
        key = kept[self._for][0] if self._for in kept else f"cli-{uuid.uuid4()}"
        kept[self._for] = (key, now + LEASE)
        self._write(kept)
        return key

    def answered(self, now: datetime) -> None:
        """Its answer was printed: the next `next` claims anew."""
        kept = self._read(now)
        if kept.pop(self._for, None) is not None:
            self._write(kept)

    def _read(self, now: datetime) -> dict[str, tuple[str, datetime]]:
        """Each key kept whose claim may still be held; none from a file unread or not ours."""
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            kept = {
                name: (str(key), datetime.fromisoformat(until))
                for name, (key, until) in stored.items()
            }
            return {name: (key, until) for name, (key, until) in kept.items() if until > now}
        except (OSError, AttributeError, TypeError, ValueError):
            return {}

    def _write(self, kept: dict[str, tuple[str, datetime]]) -> None:
        """Whole or not at all (a file beside it, renamed over it), readable by its owner only."""
        stored = {name: [key, until.isoformat()] for name, (key, until) in kept.items()}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not stored:
                self.path.unlink(missing_ok=True)
                return
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".pending-")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(stored, file)
                os.replace(temporary, self.path)
            finally:
                Path(temporary).unlink(missing_ok=True)
        except OSError:
            # Not kept (a home that cannot be written): the claim goes on as before, only a
            # lost answer's item is not asked for again.
            pass
