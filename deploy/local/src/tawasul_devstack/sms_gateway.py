"""A stand-in for the external SMS provider: accepts messages over HTTP and records them.

POST /v1/messages {"to", "text", "reference"} -> 201 {"id", "status": "accepted"}
GET  /v1/messages -> 200 [{"id", "to", "text", "reference", "received_at"}, ...] in arrival order
Messages are appended to a JSONL file, so they survive a restart of the gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

PATH = "/v1/messages"
FIELDS = ("to", "text", "reference")


class MessageStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        self._messages: list[dict[str, str]] = [json.loads(line) for line in lines if line]

    def add(self, to: str, text: str, reference: str) -> dict[str, str]:
        message = {
            "id": str(uuid.uuid4()),
            "to": to,
            "text": text,
            "reference": reference,
            "received_at": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(message, ensure_ascii=False) + "\n")
            self._messages.append(message)
        return message

    def all(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._messages)


class SmsGatewayServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], store: MessageStore) -> None:
        super().__init__(address, _Handler)
        self.store = store


class _Handler(BaseHTTPRequestHandler):
    server: SmsGatewayServer

    def do_GET(self) -> None:
        if urlsplit(self.path).path != PATH:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path; use {PATH}"})
            return
        self._reply(HTTPStatus.OK, self.server.store.all())

    def do_POST(self) -> None:
        if urlsplit(self.path).path != PATH:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path; use {PATH}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not valid JSON"})
            return
        if not isinstance(body, dict):
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body must be a JSON object"})
            return
        bad = [field for field in FIELDS if not isinstance(body.get(field), str)]
        if bad:
            self._reply(
                HTTPStatus.BAD_REQUEST,
                {"error": f"missing or non-string field(s): {', '.join(bad)}"},
            )
            return
        message = self.server.store.add(body["to"], body["text"], body["reference"])
        self._reply(HTTPStatus.CREATED, {"id": message["id"], "status": "accepted"})

    def _reply(self, status: HTTPStatus, payload: object) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
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
    args = parser.parse_args()
    server = SmsGatewayServer(("127.0.0.1", args.port), MessageStore(args.store))
    print(f"sms gateway on http://127.0.0.1:{args.port}{PATH}, store {args.store}", flush=True)
    server.serve_forever()
