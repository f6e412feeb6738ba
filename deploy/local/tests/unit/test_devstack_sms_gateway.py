from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tawasul_devstack.sms_gateway import MessageStore, SmsGatewayServer


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "sms" / "messages.jsonl"


def _serve(store_path: Path) -> Iterator[httpx.Client]:
    server = SmsGatewayServer(("127.0.0.1", 0), MessageStore(store_path))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}") as client:
            yield client
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def client(store_path: Path) -> Iterator[httpx.Client]:
    yield from _serve(store_path)


def test_accepts_and_lists_messages_in_arrival_order(client: httpx.Client) -> None:
    first = client.post(
        "/v1/messages", json={"to": "+9665000001", "text": "مرحبا", "reference": "r-1"}
    )
    second = client.post(
        "/v1/messages", json={"to": "+9665000002", "text": "two", "reference": "r-2"}
    )

    assert first.status_code == 201
    assert first.json()["status"] == "accepted"
    listed = client.get("/v1/messages")
    assert listed.status_code == 200
    messages = listed.json()
    assert [m["id"] for m in messages] == [first.json()["id"], second.json()["id"]]
    assert messages[0]["to"] == "+9665000001"
    assert messages[0]["text"] == "مرحبا"
    assert messages[0]["reference"] == "r-1"
    assert messages[0]["received_at"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"to": "+9665", "text": "hi"}', "reference"),
        (b'{"to": 5, "text": "hi", "reference": "r"}', "to"),
    ],
)
def test_rejects_bad_requests(client: httpx.Client, body: bytes, error: str) -> None:
    response = client.post(
        "/v1/messages", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert error in response.json()["error"]
    assert client.get("/v1/messages").json() == []


def test_unknown_path_is_not_found(client: httpx.Client) -> None:
    assert client.get("/v2/other").status_code == 404
    assert client.post("/v2/other", json={}).status_code == 404


def test_messages_survive_a_restart(store_path: Path) -> None:
    for client in _serve(store_path):
        sent = client.post("/v1/messages", json={"to": "1", "text": "t", "reference": "r"})

    for client in _serve(store_path):
        assert [m["id"] for m in client.get("/v1/messages").json()] == [sent.json()["id"]]
