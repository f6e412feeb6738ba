"""A stand-in for the external SMS provider: accepts messages over HTTP and records them.

POST   /v1/messages {"from"?, "to", "text", "reference"}, header Idempotency-Key (else the
       reference is the key) -> 201 {"id", "status": "accepted"}; a key seen before -> 200
       {"id", "status", "duplicate": true} with the first message's id, and nothing recorded
GET    /v1/messages -> 200 [{"id", "from", "to", "text", "reference", "key", "received_at",
       "status"}, ...] in arrival order
GET    /v1/messages/<id> -> 200 {"id", "status": "delivered", "delivered_at"} (the delivery
       receipt: the stand-in delivers at once), {"id", "status": "undelivered"} for a message
       to an unreachable number, 404 for an unknown id
PUT    /v1/faults {"numbers": {"<to>": <status>, ...}, "everyone": <status> | null,
       "slow": {"<to>": <seconds>, ...}, "unreachable": ["<to>", ...]} replaces the faults; GET
       returns them, DELETE clears them. A faulted POST answers its status and records nothing;
       with "everyone" set, every POST does and the health check fails. A slow number's message
       is recorded at once and answered only after its delay: the window in which a sender may
       die having sent it. A message to an unreachable number (a phone off past the validity
       period) is taken, and its receipt says it was not delivered.
GET    /v1/health -> 200 {"status": "ok"}, or 503 {"status": "failing"} while failing everyone

With --user and --password every request but the health check needs HTTP Basic auth (401).
Messages, with their keys, are appended to a JSONL file, so they survive a restart of the
gateway; faults live in memory.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MESSAGES = "/v1/messages"
FAULTS = "/v1/faults"
HEALTH = "/v1/health"
FIELDS = ("to", "text", "reference")
REALM = 'Basic realm="tawasul-sms-gateway"'


class Refused(Exception):
    """A message turned away by an injected fault."""

    def __init__(self, status: int, to: str) -> None:
        super().__init__(f"fault injected: answering {status} for {to}")
        self.status = status


@dataclass(frozen=True)
class Faults:
    numbers: Mapping[str, int] = field(default_factory=dict)
    everyone: int | None = None
    slow: Mapping[str, float] = field(default_factory=dict)
    unreachable: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Faults:
        """The fault set a PUT asks for; ValueError says what is wrong with it."""
        numbers = body.get("numbers", {})
        everyone = body.get("everyone")
        if not isinstance(numbers, dict) or not all(
            isinstance(to, str) and _error_status(status) for to, status in numbers.items()
        ):
            raise ValueError('"numbers" must map numbers to HTTP error statuses (400-599)')
        if everyone is not None and not _error_status(everyone):
            raise ValueError('"everyone" must be an HTTP error status (400-599) or null')
        slow = body.get("slow", {})
        if not isinstance(slow, dict) or not all(
            isinstance(to, str) and type(delay) in (int, float) and 0 <= delay <= 600
            for to, delay in slow.items()
        ):
            raise ValueError('"slow" must map numbers to delays in seconds (0-600)')
        unreachable = body.get("unreachable", [])
        if not isinstance(unreachable, list) or not all(isinstance(to, str) for to in unreachable):
            raise ValueError('"unreachable" must be a list of numbers')
        return cls(
            dict(numbers),
            everyone,
            {to: float(d) for to, d in slow.items()},
            frozenset(unreachable),
        )

    def status_for(self, to: str) -> int | None:
        return self.everyone if self.everyone is not None else self.numbers.get(to)

    def as_json(self) -> dict[str, Any]:
        return {
            "numbers": dict(self.numbers),
            "everyone": self.everyone,
            "slow": dict(self.slow),
            "unreachable": sorted(self.unreachable),
        }


def _error_status(value: object) -> bool:
    # bool is an int to Python, not a status to anyone.
    return type(value) is int and 400 <= value <= 599


class MessageStore:
    """The recorded messages and the faults in force. One lock guards both, so a new fault set
    applies from one message to the next, never halfway through one."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._faults = Faults()
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        self._messages: list[dict[str, str]] = [json.loads(line) for line in lines if line]
        self._by_id: dict[str, dict[str, str]] = {}
        self._by_key: dict[str, dict[str, str]] = {}
        for message in self._messages:
            # Lines recorded before senders and keys were: the reference was, in effect, the key.
            message.setdefault("from", "")
            message.setdefault("key", message["reference"])
            self._by_id[message["id"]] = message
            self._by_key.setdefault(message["key"], message)

    def add(self, sender: str, to: str, text: str, reference: str, key: str) -> tuple[str, bool]:
        """Records a message unless its key was seen before; returns its id and whether it is
        new. Raises Refused when a fault covers `to`."""
        with self._lock:
            status = self._faults.status_for(to)
            if status is not None:
                raise Refused(status, to)
            if key in self._by_key:
                return self._by_key[key]["id"], False
            message = {
                "id": str(uuid.uuid4()),
                "from": sender,
                "to": to,
                "text": text,
                "reference": reference,
                "key": key,
                "received_at": datetime.now(UTC).isoformat(),
                "status": "undelivered" if to in self._faults.unreachable else "delivered",
            }
            with self._path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(message, ensure_ascii=False) + "\n")
            self._messages.append(message)
            self._by_id[message["id"]] = message
            self._by_key[key] = message
            return message["id"], True

    def all(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"status": "delivered", **message} for message in self._messages]

    def receipt(self, message_id: str) -> dict[str, str] | None:
        with self._lock:
            message = self._by_id.get(message_id)
        if message is None:
            return None
        if message.get("status") == "undelivered":
            return {"id": message_id, "status": "undelivered"}
        return {"id": message_id, "status": "delivered", "delivered_at": message["received_at"]}

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults


class SmsGatewayServer(ThreadingHTTPServer):
    # socketserver's backlog of 5 resets connections when many senders connect at once.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        store: MessageStore,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.credentials = credentials


class _Handler(BaseHTTPRequestHandler):
    server: SmsGatewayServer
    _body: bytes = b""
    # Keep-alive, as real gateways offer: a connection per message costs both sides a handshake.
    protocol_version = "HTTP/1.1"
    # An answer is two writes (headers, then body): with Nagle's algorithm the body waited for
    # the client's delayed ACK of the headers, 40 ms an answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        store = self.server.store
        path = urlsplit(self.path).path
        # Read whole whatever the answer: on a kept-alive connection, an unread body would be
        # taken for the next request.
        try:
            self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        except ValueError:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "Content-Length is not a number"})
            return
        if (method, path) == ("GET", HEALTH):
            failing = store.faults.everyone is not None
            if failing:
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "failing"})
            else:
                self._reply(HTTPStatus.OK, {"status": "ok"})
        elif not self._authorized():
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                {"error": "HTTP Basic credentials missing or wrong"},
                {"WWW-Authenticate": REALM},
            )
        elif (method, path) == ("POST", MESSAGES):
            self._send()
        elif (method, path) == ("GET", MESSAGES):
            self._reply(HTTPStatus.OK, store.all())
        elif method == "GET" and path.startswith(f"{MESSAGES}/"):
            receipt = store.receipt(path.removeprefix(f"{MESSAGES}/"))
            if receipt is None:
                self._reply(HTTPStatus.NOT_FOUND, {"error": "no message with that id"})
            else:
                self._reply(HTTPStatus.OK, receipt)
        elif (method, path) == ("GET", FAULTS):
            self._reply(HTTPStatus.OK, store.faults.as_json())
        elif (method, path) == ("PUT", FAULTS):
            self._set_faults()
        elif (method, path) == ("DELETE", FAULTS):
            store.faults = Faults()
            self._reply(HTTPStatus.OK, store.faults.as_json())
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no {method} {path}; see --help"})

    def _authorized(self) -> bool:
        if self.server.credentials is None:
            return True
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:  # not base64, or not even ASCII
            return False
        user, password = self.server.credentials
        expected = f"{user}:{password}".encode()
        return scheme.lower() == "basic" and hmac.compare_digest(given, expected)

    def _send(self) -> None:
        body = self._json_object()
        if body is None:
            return
        bad = [name for name in FIELDS if not isinstance(body.get(name), str)]
        sender = body.get("from", "")
        if not isinstance(sender, str):
            bad.append("from")
        if bad:
            self._reply(
                HTTPStatus.BAD_REQUEST,
                {"error": f"missing or non-string field(s): {', '.join(bad)}"},
            )
            return
        key = self.headers.get("Idempotency-Key") or body["reference"]
        try:
            message_id, new = self.server.store.add(
                sender, body["to"], body["text"], body["reference"], key
            )
        except Refused as refused:
            self._reply(refused.status, {"error": str(refused)})
            return
        delay = self.server.store.faults.slow.get(body["to"], 0.0)
        if new and delay:
            time.sleep(delay)  # this handler's own thread: the others go on
        if new:
            self._reply(HTTPStatus.CREATED, {"id": message_id, "status": "accepted"})
        else:
            self._reply(HTTPStatus.OK, {"id": message_id, "status": "accepted", "duplicate": True})

    def _set_faults(self) -> None:
        body = self._json_object()
        if body is None:
            return
        try:
            faults = Faults.parse(body)
        except ValueError as error:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        self.server.store.faults = faults
        self._reply(HTTPStatus.OK, faults.as_json())

    def _json_object(self) -> dict[str, Any] | None:
        """The request's JSON object body; None once a 400 has been answered."""
        try:
            body = json.loads(self._body)
        except (ValueError, UnicodeDecodeError):
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not valid JSON"})
            return None
        if not isinstance(body, dict):
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body must be a JSON object"})
            return None
        return body

    def _reply(
        self, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="tawasul-sms-gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("TAWASUL_SMS_GATEWAY_PORT"),
        required="TAWASUL_SMS_GATEWAY_PORT" not in os.environ,
        help="port on 127.0.0.1 (env TAWASUL_SMS_GATEWAY_PORT)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=os.environ.get("TAWASUL_SMS_GATEWAY_STORE"),
        required="TAWASUL_SMS_GATEWAY_STORE" not in os.environ,
        help="JSONL file of received messages (env TAWASUL_SMS_GATEWAY_STORE)",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("TAWASUL_SMS_GATEWAY_USER"),
        help="with --password, the Basic auth every request needs (env TAWASUL_SMS_GATEWAY_USER)",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("TAWASUL_SMS_GATEWAY_PASSWORD"),
        help="see --user (env TAWASUL_SMS_GATEWAY_PASSWORD)",
    )
    args = parser.parse_args()
    if bool(args.user) != bool(args.password):
        parser.error("--user and --password go together")
    credentials = (args.user, args.password) if args.user else None
    server = SmsGatewayServer(("127.0.0.1", args.port), MessageStore(args.store), credentials)
    auth = f"Basic auth as {args.user}" if credentials else "no auth"
    print(
        f"sms gateway on http://127.0.0.1:{args.port}{MESSAGES}, store {args.store}, {auth}",
        flush=True,
    )
    server.serve_forever()
