from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tawasul_devstack.journey import Clients
from tawasul_devstack.sms_gateway import MessageStore, SmsGatewayServer
from tawasul_devstack.stack import StackConfig


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "sms" / "messages.jsonl"


def _serve(store_path: Path, credentials: tuple[str, str] | None = None) -> Iterator[httpx.Client]:
    server = SmsGatewayServer(("127.0.0.1", 0), MessageStore(store_path), credentials)
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


# -- idempotency ----------------------------------------------------------------------------


def send(
    client: httpx.Client, to: str = "+966500000001", *, key: str | None = None, **auth: Any
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    body = {"from": "Tawasul", "to": to, "text": f"to {to}", "reference": "ref"}
    return client.post("/v1/messages", json=body, headers=headers, **auth)


def test_a_repeated_key_is_recorded_once_and_answered_with_the_same_id(
    client: httpx.Client,
) -> None:
    first = send(client, key="k-1")
    again = send(client, key="k-1")
    other = send(client, key="k-2")  # the same reference: the header is the key

    assert first.status_code == 201
    assert first.json() == {"id": first.json()["id"], "status": "accepted"}
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "status": "accepted", "duplicate": True}
    assert other.status_code == 201
    messages = client.get("/v1/messages").json()
    assert [m["id"] for m in messages] == [first.json()["id"], other.json()["id"]]
    assert messages[0] == {
        "id": first.json()["id"],
        "from": "Tawasul",
        "to": "+966500000001",
        "text": "to +966500000001",
        "reference": "ref",
        "key": "k-1",
        "received_at": messages[0]["received_at"],
        "status": "delivered",
    }


def test_without_the_header_the_reference_is_the_key(client: httpx.Client) -> None:
    body = {"to": "+966500000001", "text": "hi", "reference": "r-7"}

    first = client.post("/v1/messages", json=body)
    again = client.post("/v1/messages", json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    [message] = client.get("/v1/messages").json()
    assert (message["key"], message["from"]) == ("r-7", "")


def test_concurrent_sends_of_one_key_record_one_message(client: httpx.Client) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: send(client, key="same"), range(32)))

    assert sorted(a.status_code for a in answers) == [200] * 31 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(client.get("/v1/messages").json()) == 1


def test_keys_survive_a_restart(store_path: Path) -> None:
    for client in _serve(store_path):
        first = send(client, key="k-1")

    for client in _serve(store_path):
        again = send(client, key="k-1")
        listed = client.get("/v1/messages").json()

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert [m["id"] for m in listed] == [first.json()["id"]]


def test_lines_recorded_before_keys_were_are_keyed_by_their_reference(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    old = {"id": "old-1", "to": "1", "text": "t", "reference": "r-1", "received_at": "then"}
    store_path.write_text(json.dumps(old) + "\n")

    for client in _serve(store_path):
        again = client.post("/v1/messages", json={"to": "1", "text": "t", "reference": "r-1"})
        listed = client.get("/v1/messages").json()

    assert (again.status_code, again.json()["id"]) == (200, "old-1")
    assert listed == [{**old, "from": "", "key": "r-1", "status": "delivered"}]


# -- delivery receipts ----------------------------------------------------------------------


def test_a_message_has_a_delivery_receipt(client: httpx.Client) -> None:
    sent = send(client, key="k-1").json()

    receipt = client.get(f"/v1/messages/{sent['id']}")

    assert receipt.status_code == 200
    [message] = client.get("/v1/messages").json()
    assert receipt.json() == {
        "id": sent["id"],
        "status": "delivered",
        "delivered_at": message["received_at"],
    }


def test_an_unknown_message_has_no_receipt(client: httpx.Client) -> None:
    response = client.get("/v1/messages/no-such-id")

    assert response.status_code == 404
    assert "no message" in response.json()["error"]


# -- faults ---------------------------------------------------------------------------------


def test_faulted_numbers_are_refused_and_nothing_is_recorded(client: httpx.Client) -> None:
    faults: dict[str, Any] = {
        "numbers": {"+966500000004": 400, "+966500000005": 503},
        "everyone": None,
        "slow": {},
        "unreachable": [],
    }

    put = client.put("/v1/faults", json=faults)
    invalid = send(client, "+966500000004", key="k-4")
    down = send(client, "+966500000005", key="k-5")
    fine = send(client, "+966500000006", key="k-6")

    assert put.status_code == 200
    assert put.json() == faults
    assert client.get("/v1/faults").json() == faults
    assert invalid.status_code == 400
    assert "+966500000004" in invalid.json()["error"]
    assert down.status_code == 503
    assert "+966500000005" in down.json()["error"]
    assert fine.status_code == 201
    assert [m["to"] for m in client.get("/v1/messages").json()] == ["+966500000006"]
    assert client.get("/v1/health").json() == {"status": "ok"}


def test_a_fault_for_everyone_refuses_every_message_and_fails_the_health_check(
    client: httpx.Client,
) -> None:
    client.put("/v1/faults", json={"numbers": {}, "everyone": 503})

    answers = [send(client, f"+96650000000{n}", key=f"k-{n}") for n in range(3)]
    health = client.get("/v1/health")

    assert [a.status_code for a in answers] == [503] * 3
    assert all("fault" in a.json()["error"] for a in answers)
    assert (health.status_code, health.json()) == (503, {"status": "failing"})
    assert client.get("/v1/messages").json() == []


def test_a_fault_set_replaces_the_last_one_and_clearing_ends_them(client: httpx.Client) -> None:
    client.put("/v1/faults", json={"numbers": {"+966500000001": 400}, "everyone": 503})
    client.put("/v1/faults", json={"numbers": {"+966500000002": 400}})
    refused = send(client, "+966500000002", key="k-2")
    taken = send(client, "+966500000001", key="k-1")

    cleared = client.delete("/v1/faults")
    after = send(client, "+966500000002", key="k-2")

    assert (refused.status_code, taken.status_code) == (400, 201)
    assert cleared.status_code == 200
    assert cleared.json() == {"numbers": {}, "everyone": None, "slow": {}, "unreachable": []}
    assert client.get("/v1/faults").json() == {
        "numbers": {},
        "everyone": None,
        "slow": {},
        "unreachable": [],
    }
    assert after.status_code == 201
    assert client.get("/v1/health").status_code == 200
    assert [m["to"] for m in client.get("/v1/messages").json()] == [
        "+966500000001",
        "+966500000002",
    ]


def test_a_retried_key_is_refused_while_its_number_is_faulted(client: httpx.Client) -> None:
    first = send(client, key="k-1")
    client.put("/v1/faults", json={"numbers": {}, "everyone": 503})

    assert send(client, key="k-1").status_code == 503
    client.delete("/v1/faults")
    assert send(client, key="k-1").json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "faults",
    [
        {"numbers": {"+966500000001": 200}},
        {"numbers": {"+966500000001": "503"}},
        {"numbers": {"+966500000001": True}},
        {"numbers": ["+966500000001"]},
        {"everyone": 600},
        {"everyone": "503"},
    ],
)
def test_bad_fault_sets_are_rejected(client: httpx.Client, faults: dict[str, Any]) -> None:
    response = client.put("/v1/faults", json=faults)

    assert response.status_code == 400
    assert "400-599" in response.json()["error"]
    assert client.get("/v1/faults").json() == {
        "numbers": {},
        "everyone": None,
        "slow": {},
        "unreachable": [],
    }


def test_a_slow_numbers_message_is_recorded_before_it_is_answered(
    client: httpx.Client, store_path: Path
) -> None:
    client.put("/v1/faults", json={"slow": {"+966500000001": 1.0}})
    answers: list[httpx.Response] = []
    sending = threading.Thread(target=lambda: answers.append(send(client, key="k-1")))
    sending.start()
    deadline = time.monotonic() + 5
    while '"k-1"' not in (store_path.read_text() if store_path.exists() else ""):
        assert time.monotonic() < deadline, "the message was never recorded"
        time.sleep(0.02)
    assert answers == []  # recorded, not yet answered: a sender dying now has sent it
    sending.join(5)
    assert [a.status_code for a in answers] == [201]
    again = send(client, key="k-1")  # a duplicate is answered at once
    assert (again.status_code, again.json()["id"]) == (200, answers[0].json()["id"])


def test_faults_live_in_memory(store_path: Path) -> None:
    for client in _serve(store_path):
        client.put("/v1/faults", json={"everyone": 503})

    for client in _serve(store_path):
        assert client.get("/v1/faults").json() == {
            "numbers": {},
            "everyone": None,
            "slow": {},
            "unreachable": [],
        }
        assert send(client, key="k-1").status_code == 201


# -- credentials ----------------------------------------------------------------------------

USER, PASSWORD = "tawasul", "s3cret"


@pytest.fixture
def locked(store_path: Path) -> Iterator[httpx.Client]:
    yield from _serve(store_path, (USER, PASSWORD))


def test_with_credentials_every_request_needs_them(locked: httpx.Client) -> None:
    requests = [
        ("POST", "/v1/messages"),
        ("GET", "/v1/messages"),
        ("GET", "/v1/messages/some-id"),
        ("GET", "/v1/faults"),
        ("PUT", "/v1/faults"),
        ("DELETE", "/v1/faults"),
        ("GET", "/v2/other"),
    ]
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD)):
        for method, path in requests:
            response = locked.request(method, path, json={"everyone": 503}, auth=auth)

            assert response.status_code == 401, (auth, method, path)
            assert response.headers["WWW-Authenticate"].startswith("Basic ")
            assert "credentials" in response.json()["error"]
    for header in (b"Bearer abc", b"Basic not-base64!", b"Basic", "Basic مرحبا".encode()):
        response = locked.get("/v1/messages", headers={b"Authorization": header})
        assert response.status_code == 401, header

    assert locked.get("/v1/faults").status_code == 401
    assert send(locked, key="k-1", auth=(USER, PASSWORD)).status_code == 201
    assert locked.get("/v1/health").json() == {"status": "ok"}
    listed = locked.get("/v1/messages", auth=(USER, PASSWORD))
    assert [m["key"] for m in listed.json()] == ["k-1"]


# -- the test clients' helpers --------------------------------------------------------------


@pytest.fixture
def stack_gateway(store_path: Path) -> Iterator[tuple[StackConfig, httpx.Client]]:
    """A gateway with the stack's credentials, and a config whose gateway URL is its address."""
    config = StackConfig(store_path.parent, store_path.parent)
    for client in _serve(store_path, (config.sms_gateway_user, config.sms_gateway_password)):
        port = client.base_url.port
        assert port is not None
        yield dataclasses.replace(config, port_base=port - 80), client


async def test_the_clients_use_the_stacks_credentials(
    stack_gateway: tuple[StackConfig, httpx.Client],
) -> None:
    config, http = stack_gateway
    auth = (config.sms_gateway_user, config.sms_gateway_password)
    async with Clients(config) as clients:
        await clients.sms_faults({"+966500000004": 400})
        faults = http.get("/v1/faults", auth=auth).json()
        refused = send(http, "+966500000004", key="k-1", auth=auth)
        await clients.clear_sms_faults()
        taken = send(http, "+966500000004", key="k-1", auth=auth)
        received = await clients.sms_received()
        await clients.sms_faults({}, everyone=503)
        failing = http.get("/v1/health").status_code

    assert faults == {
        "numbers": {"+966500000004": 400},
        "everyone": None,
        "slow": {},
        "unreachable": [],
    }
    assert refused.status_code == 400
    assert taken.status_code == 201
    assert [m["id"] for m in received] == [taken.json()["id"]]
    assert received[0]["status"] == "delivered"
    assert failing == 503


def test_one_kept_alive_connection_carries_refused_and_accepted_messages(
    store_path: Path,
) -> None:
    """A refused request's body is read all the same, so the next one on the connection is
    parsed from its own first line."""
    for gateway in _serve(store_path, ("notify", "secret")):
        message = {"to": "+9665000001", "text": "hello", "reference": "r-1"}
        refused = gateway.post("/v1/messages", json=message)
        accepted = gateway.post("/v1/messages", json=message, auth=("notify", "secret"))
        missing = gateway.post("/v1/nowhere", json=message, auth=("notify", "secret"))
        listed = gateway.get("/v1/messages", auth=("notify", "secret"))
        assert (refused.status_code, accepted.status_code, missing.status_code) == (401, 201, 404)
        assert refused.http_version == "HTTP/1.1"
        assert [m["text"] for m in listed.json()] == ["hello"]


def test_an_unreachable_number_s_message_is_taken_and_receipted_undelivered(
    client: httpx.Client,
) -> None:
    assert client.put("/v1/faults", json={"unreachable": ["+966500000006"]}).status_code == 200
    off = send(client, "+966500000006", key="k-6")
    on = send(client, "+966500000007", key="k-7")
    assert (off.status_code, on.status_code) == (201, 201)
    assert client.get(f"/v1/messages/{off.json()['id']}").json() == {
        "id": off.json()["id"],
        "status": "undelivered",
    }
    assert client.get(f"/v1/messages/{on.json()['id']}").json()["status"] == "delivered"
    listed = {m["to"]: m["status"] for m in client.get("/v1/messages").json()}
    assert listed == {"+966500000006": "undelivered", "+966500000007": "delivered"}
    refused = client.put("/v1/faults", json={"unreachable": "+966500000006"})
    assert refused.status_code == 400
