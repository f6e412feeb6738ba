"""What the chaos tests share: a stream of requests submitted and claimed while a process is
SIGKILLed, proof that it really died holding work, and the per-request counts once the whole
system has gone quiet."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from aiokafka.structs import TopicPartition
from sqlalchemy import text
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.intake.v1 import intake_pb2, intake_pb2_grpc
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_devstack.journey import eventually, new_citizen
from tawasul_devstack.offsets import Offsets
from tawasul_devstack.stack import SERVICES, Stack
from tawasul_platform import topics
from tawasul_platform.grpc import bearer
from tawasul_platform.identity import Role
from tawasul_platform.testing import async_engine
from tawasul_platform.tls import open_channel

T = TypeVar("T")
Ends = dict[TopicPartition, int]

# Nothing here counts a queue: every count is of this load's own request ids.
SUB_SERVICE = "reports.general-inquiry"
DEPARTMENT = "reports"
REQUESTS = 40
CONCURRENCY = 4
# What a client may retry with the same idempotency key: the call may or may not have landed.
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
ATTEMPT_SECONDS = 5.0
# A killed service is back within seconds; a killed broker takes longer.
LOAD_SECONDS = 150.0
# Records a consumer is held stopped for before it is killed working through them.
BACKLOG = 10
# Short reconnect backoff: gRPC's default grows to two minutes while a server is down.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
# The kinds of message a request of this load gets, each on SMS and in-app (no e-mail given).
KINDS = ("submitted", "under_review")
CHANNELS = ("sms", "inapp")


@dataclass
class Filed:
    """One request of the load: who files it, under which key, and what became of it."""

    n: int
    citizen: str
    mobile: str
    key: str
    reviewer: str
    request_id: str = ""
    number: str = ""
    # Attempts of SubmitRequest (and of ClaimRequest) that failed and were retried.
    submit_failures: list[grpc.StatusCode] = field(default_factory=list)
    claim_failures: list[grpc.StatusCode] = field(default_factory=list)
    claimed: bool = False

    @property
    def e164(self) -> str:
        return "+966" + self.mobile[1:]


class Load:
    """`requests` requests submitted a few at a time, each by a citizen of its own with a
    mobile of its own, and each claimed by a reviewer of its own once it is queued: its
    `submitted` SMS and its `under_review` SMS are then the two notifications it must get.

    Every call that fails UNAVAILABLE or DEADLINE_EXCEEDED is retried as a client would: the
    same idempotency key for a submission, the same request for a claim. The last `held`
    requests are submitted only once `release` is called: a test that must see submissions
    taken after a kill has them, however quickly the rest went through.
    """

    def __init__(self, stack: Stack, *, requests: int = REQUESTS, held: int = 0) -> None:
        self.stack = stack
        self._held = held
        self._released = asyncio.Event()
        tag = secrets.randbelow(1000)
        self.filed = [
            Filed(
                n=n,
                citizen=new_citizen(),
                # 055: phonenumbers knows it as a mobile prefix (051, 052 are not).
                mobile=f"055{tag:03d}{n:04d}",
                key=f"chaos-{uuid.uuid4()}",
                # Ids of the employees' form; one each, so no reviewer reaches capacity.
                reviewer=f"C{tag:03d}{n:04d}",
            )
            for n in range(requests)
        ]
        tls = stack.config.tls()
        self._intake = open_channel(
            stack.config.grpc_address("intake"), tls, options=CHANNEL_OPTIONS
        )
        self._review = open_channel(
            stack.config.grpc_address("review"), tls, options=CHANNEL_OPTIONS
        )
        self.intake = intake_pb2_grpc.IntakeServiceStub(self._intake)
        self.review = review_pb2_grpc.ReviewServiceStub(self._review)
        # SubmitRequest calls sent and not answered yet, and submissions answered.
        self.submitting = 0
        self.submitted = 0
        self.claimed = 0
        self._deadline = time.monotonic() + LOAD_SECONDS
        # The gateway keeps its log across sessions of a kept stack: only what came after.
        self.began = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None and not self._task.done():
            # The test failed before the load was through: stop it with the test.
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self._intake.close()
        await self._review.close()

    @property
    def ids(self) -> set[str]:
        return {f.request_id for f in self.filed}

    def token(self, subject: str, role: Role, departments: frozenset[str] = frozenset()) -> str:
        return self.stack.config.identity.token(subject, role, departments)

    async def run(self) -> None:
        """Submits every request, and claims each once review has it."""
        submitters = asyncio.Semaphore(CONCURRENCY)
        claimers = asyncio.Semaphore(CONCURRENCY)

        async def one(filed: Filed) -> None:
            if filed.n >= len(self.filed) - self._held:
                await self._released.wait()
            async with submitters:
                await self._submit(filed)
            async with claimers:
                await self._claim(filed)

        await asyncio.gather(*(one(f) for f in self.filed))

    async def started(self) -> asyncio.Task[None]:
        """Runs the load in the background; returns once a few requests are in."""
        task = self._task = asyncio.create_task(self.run())
        await self.until(lambda: self.submitted >= len(self.filed) // 4, task, "a quarter in")
        return task

    def release(self) -> None:
        """Lets the held requests be submitted."""
        self._released.set()

    async def until(
        self, condition: Callable[[], bool], task: asyncio.Task[None], what: str
    ) -> None:
        """Waits for `condition` on the load's progress; fails if the load itself failed."""
        while not condition():
            if task.done():
                task.result()  # raises what ended it
                raise AssertionError(f"the load ended before {what}")
            if time.monotonic() > self._deadline:
                raise AssertionError(f"no {what} in {LOAD_SECONDS:.0f} s")
            await asyncio.sleep(0.01)

    async def _retrying(
        self,
        call: Callable[[], Awaitable[T]],
        failures: list[grpc.StatusCode],
        also: frozenset[grpc.StatusCode] = frozenset(),
    ) -> T:
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code not in RETRIED | also or time.monotonic() > self._deadline:
                    raise
                failures.append(code)
                await asyncio.sleep(0.2)

    async def _submit(self, filed: Filed) -> None:
        token = self.token(filed.citizen, Role.CITIZEN)
        message = intake_pb2.SubmitRequestRequest(
            idempotency_key=filed.key,
            sub_service_code=SUB_SERVICE,
            description=f"Please extend exit re-entry visa number {filed.n:06d} by 30 days",
            contact=common_pb2.Contact(mobile=filed.mobile, locale="en"),
        )

        async def attempt() -> intake_pb2.SubmitRequestResponse:
            self.submitting += 1
            try:
                return await self.intake.SubmitRequest(
                    message, timeout=ATTEMPT_SECONDS, metadata=bearer(token)
                )
            finally:
                self.submitting -= 1

        answer = await self._retrying(attempt, filed.submit_failures)
        filed.request_id, filed.number = answer.request.request_id, answer.request.request_number
        self.submitted += 1

    async def _claim(self, filed: Filed) -> None:
        token = self.token(filed.reviewer, Role.REVIEWER, frozenset({DEPARTMENT}))
        message = review_pb2.ClaimRequestRequest(request_id=filed.request_id)

        async def attempt() -> review_pb2.ClaimRequestResponse:
            return await self.review.ClaimRequest(
                message, timeout=ATTEMPT_SECONDS, metadata=bearer(token)
            )

        # NOT_FOUND until routing has routed it and review has queued it.
        not_yet: list[grpc.StatusCode] = []
        await self._retrying(attempt, not_yet, also=frozenset({grpc.StatusCode.NOT_FOUND}))
        filed.claim_failures = [c for c in not_yet if c is not grpc.StatusCode.NOT_FOUND]
        filed.claimed = True
        self.claimed += 1

    def failures(self) -> Counter[grpc.StatusCode]:
        return Counter(c for f in self.filed for c in (*f.submit_failures, *f.claim_failures))


# -- killing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Killed:
    name: str
    pid: int
    # The exit status, when this process is its parent (a stack this session started).
    signalled: int | None


async def sigkill(stack: Stack, name: str) -> Killed:
    """SIGKILLs the process at once (no grace, no shutdown hooks) and proves it is gone."""
    pid = stack.pid(name)
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGKILL)
    signalled = None
    try:
        # This session's stack is this process's child: its status says how it ended.
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.WIFSIGNALED(status), f"{name} exited with status {status}, not by a signal"
        signalled = os.WTERMSIG(status)
        assert signalled == signal.SIGKILL
    except ChildProcessError:
        pass  # a kept stack another session started: the pid's absence has to do
    # Also sweeps the process group and forgets the pid file.
    await asyncio.to_thread(stack.stop_service, name, signal.SIGKILL)
    await asyncio.to_thread(_assert_gone, stack, name, pid)
    return Killed(name, pid, signalled)


def _alive(pid: int) -> bool:
    """Whether any thread of the pid still runs. Not a zombie's: a kept stack's processes
    outlive the session that started them and nobody may reap them; and a dying leader shows
    as a zombie while its other threads still hold its sockets."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def _assert_gone(stack: Stack, name: str, pid: int) -> None:
    assert stack.pid(name) is None
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, f"{name} (pid {pid}) survived SIGKILL"
        time.sleep(0.05)
    # Killed, not stopped: its last run logged no orderly shutdown.
    last_run = stack.log_path(name).read_text(errors="replace").rpartition("\n=== ")[2]
    # The service's own line, not a dependency's words quoted in another ("the database
    # system is shutting down", logged by a relay that waited out a database crash).
    assert '"event": "shutting down"' not in last_run, name
    assert "shutting_down" not in last_run.lower(), name


async def start(stack: Stack, name: str) -> None:
    await asyncio.to_thread(stack.start_service, name)


@dataclass(frozen=True)
class Behind:
    """Proof that a consumer died holding work: records that were on its topics before it was
    killed and that it had not committed when it died."""

    killed: Killed
    uncommitted: dict[tuple[str, str], int]


async def kill_behind(
    stack: Stack,
    service: str,
    subscriptions: Sequence[tuple[str, str]],
    task: asyncio.Task[None],
    offsets: Offsets,
    holding: Callable[[], Awaitable[bool]] | None = None,
) -> Behind:
    """SIGKILLs `service` while the load's submissions (`task`) flow, at a moment its groups
    lag on their topics.

    A consumer as quick as routing can keep up with the whole load, so it is first frozen
    (SIGSTOP) until `BACKLOG` records wait for it, then thawed and killed while it works
    through them. The end offsets are read before the kill and the committed offsets after
    it, when no commit can come any more: a record below the one and above the other was on
    the topic, delivered or not, and unfinished when the process died. Should it have caught
    up in the instant between looking and killing, it is started again and killed again.
    `holding`, if given, must hold too, before the kill and after it (what it left behind).

    Once the load is through, nothing can lag any more: that fails at once rather than
    waiting for ever.
    """

    def through(what: str) -> None:
        if task.done():
            task.result()  # raises what ended it
            raise AssertionError(f"the load was through before {service} {what}")

    async def lags() -> tuple[dict[tuple[str, str], Ends], list[int]]:
        ends = {pair: await offsets.ends(pair[0]) for pair in subscriptions}
        return ends, [await offsets.behind(g, ends[(t, g)]) for t, g in subscriptions]

    for _ in range(5):
        pid = stack.pid(service)
        assert pid is not None, f"{service} is not running"
        os.killpg(pid, signal.SIGSTOP)
        try:
            while sum((await lags())[1]) < BACKLOG:
                through("had a backlog")
                await asyncio.sleep(0.01)
        finally:
            os.killpg(pid, signal.SIGCONT)
        while True:
            through("was seen behind")
            ends, lagging = await lags()
            if any(lagging) and (holding is None or await holding()):
                break
            await asyncio.sleep(0.01)
        killed = await sigkill(stack, service)
        uncommitted = {(t, g): await offsets.behind(g, ends[(t, g)]) for t, g in subscriptions}
        # What `holding` saw may have been finished in the instant before the kill: it is asked
        # again of what the dead process left.
        if any(uncommitted.values()) and (holding is None or await holding()):
            return Behind(killed, uncommitted)
        await start(stack, service)
    raise AssertionError(f"{service} caught up at every kill")


# -- counting ----------------------------------------------------------------------------------


async def rows(stack: Stack, service: str, query: str, **values: object) -> list[Any]:
    engine = async_engine(stack.config.database_url(service), pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(query), values)).all())
    finally:
        await engine.dispose()


async def unsent(stack: Stack, service: str) -> int:
    found = await rows(stack, service, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return int(found[0][0])


async def quiet(stack: Stack) -> bool:
    """No outbox row waits to be published, and every group has committed its topics' ends."""
    for service in SERVICES:
        if await unsent(stack, service):
            return False
    groups: dict[str, list[str]] = {}
    for topic, group in topics.SUBSCRIPTIONS:
        groups.setdefault(group, []).append(topic)
    async with Offsets(stack.config.kafka_bootstrap) as offsets:
        for group, subscribed in groups.items():
            ends: dict[TopicPartition, int] = {}
            for topic in subscribed:
                ends.update(await offsets.ends(topic))
            if await offsets.behind(group, ends):
                return False
    return True


@dataclass(frozen=True)
class Counts:
    """Per request of a load, what each service holds and what the SMS gateway took."""

    requests: dict[str, int]  # intake: rows per idempotency key
    decisions: dict[str, int]  # routing: decisions per request id
    work_items: dict[str, int]  # review: work items per request id
    under_review: dict[str, int]  # review: under-review status changes published per request
    deliveries: dict[tuple[str, str, str], int]  # notify: (request, kind, channel) -> rows
    unsettled: dict[str, str]  # notify: delivery id -> status, for deliveries not sent
    sms: dict[str, int]  # the gateway: messages per mobile of the load
    sms_of: dict[tuple[str, str], int]  # the gateway: messages per (request, kind)


async def count(stack: Stack, load: Load, sms_log: list[dict[str, str]]) -> Counts:
    ids = [uuid.UUID(f.request_id) for f in load.filed]
    applicants = [f.citizen for f in load.filed]
    requests = await rows(
        stack,
        "intake",
        "SELECT idempotency_key, count(*) FROM requests WHERE applicant_id = ANY(:applicants)"
        " GROUP BY idempotency_key",
        applicants=applicants,
    )
    decisions = await rows(
        stack,
        "routing",
        "SELECT request_id, count(*) FROM decisions WHERE request_id = ANY(:ids) GROUP BY 1",
        ids=ids,
    )
    items = await rows(
        stack,
        "review",
        "SELECT request_id, count(*) FROM work_items WHERE request_id = ANY(:ids) GROUP BY 1",
        ids=ids,
    )
    changes = await rows(
        stack,
        "review",
        "SELECT key, payload FROM outbox WHERE topic = :topic AND key = ANY(:keys)",
        topic=topics.REQUEST_STATUS_CHANGED,
        keys=[str(i) for i in ids],
    )
    under_review: Counter[str] = Counter()
    for key, payload in changes:
        change = events_pb2.Envelope.FromString(payload).request_status_changed
        if change.status == common_pb2.REQUEST_STATUS_UNDER_REVIEW:
            under_review[key] += 1
    deliveries = await rows(
        stack,
        "notify",
        "SELECT id, request_id, kind, channel, status FROM deliveries WHERE request_id = ANY(:ids)",
        ids=ids,
    )
    by_delivery = {str(d.id): (str(d.request_id), d.kind) for d in deliveries}
    mobiles = {f.e164 for f in load.filed}
    mine = [
        m
        for m in sms_log
        if m["to"] in mobiles and datetime.fromisoformat(m["received_at"]) >= load.began
    ]
    return Counts(
        requests={k: n for k, n in requests},
        decisions={str(i): n for i, n in decisions},
        work_items={str(i): n for i, n in items},
        under_review=dict(under_review),
        deliveries=dict(Counter((str(d.request_id), d.kind, d.channel) for d in deliveries)),
        unsettled={
            str(d.id): d.status for d in deliveries if d.status not in ("sent", "delivered")
        },
        sms=dict(Counter(m["to"] for m in mine)),
        sms_of=dict(Counter(by_delivery.get(m["key"], ("?", m["key"])) for m in mine)),
    )


async def settled_counts(
    stack: Stack, load: Load, sms_log: Callable[[], Awaitable[list[dict[str, str]]]]
) -> Counts:
    """The counts once every topic has gone quiet and two looks in a row agree.

    Called once the load is through, when every event it caused is at least in an outbox:
    with every outbox empty and every group at its topics' ends, nothing more can arrive, so
    counts that are still incomplete then are losses, and are returned as they are.
    """
    previous: list[Counts] = []

    async def probe() -> Counts | None:
        if not await quiet(stack):
            return None
        counts = await count(stack, load, await sms_log())
        stable = bool(previous) and previous[-1] == counts
        previous[:] = [counts]
        return counts if stable else None

    try:
        return await eventually(probe, within=120, what="every request counted, all quiet")
    except TimeoutError as exc:
        last = previous[-1] if previous else None
        raise AssertionError(f"{exc}; last counts: {last}") from None


def assert_exactly_once(counts: Counts, load: Load) -> None:
    """One request per key, one decision and one work item per request, one status change to
    under review, and one message per (request, kind, channel): none twice, none missing."""
    ids = load.ids
    assert len(ids) == len(load.filed), "two submissions answered with the same request"
    _once("intake: requests per idempotency key", counts.requests, {f.key: 1 for f in load.filed})
    _once("routing: decisions per request", counts.decisions, dict.fromkeys(ids, 1))
    _once("review: work items per request", counts.work_items, dict.fromkeys(ids, 1))
    _once("review: under-review changes per request", counts.under_review, dict.fromkeys(ids, 1))
    _once(
        "notify: deliveries per (request, kind, channel)",
        counts.deliveries,
        {(i, k, c): 1 for i in ids for k in KINDS for c in CHANNELS},
    )
    assert counts.unsettled == {}, f"notify: deliveries not sent: {counts.unsettled}"
    _once("the gateway: SMS per mobile", counts.sms, {f.e164: len(KINDS) for f in load.filed})
    _once(
        "the gateway: SMS per (request, kind)",
        counts.sms_of,
        {(i, k): 1 for i in ids for k in KINDS},
    )


K = TypeVar("K")


def _once(what: str, found: dict[K, int], expected: dict[K, int]) -> None:
    wrong = {
        key: (found.get(key, 0), expected.get(key, 0))
        for key in {*found, *expected}
        if found.get(key, 0) != expected.get(key, 0)
    }
    assert not wrong, f"{what}, as (found, expected) where they differ: {wrong}"
