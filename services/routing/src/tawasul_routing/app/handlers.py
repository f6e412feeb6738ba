"""Routing's use cases."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from tawasul_platform.errors import NotFound
from tawasul_platform.identity import Principal
from tawasul_platform.ports import claim_each

from tawasul_routing.app.ports import UnitOfWork
from tawasul_routing.domain.model import (
    Answer,
    Decision,
    FollowUp,
    IncomingRequest,
    Transfer,
    decide,
)
from tawasul_routing.domain.rules import Attributes, Route, RoutingRules

log = logging.getLogger(__name__)

CONSUMER = "routing"


async def route_requests(
    *,
    uow: UnitOfWork,
    submitted: Sequence[tuple[str, IncomingRequest]],
    rules: RoutingRules,
    now: datetime,
) -> None:
    """Decides the queue of each submitted request once, however often its event arrives:
    a batch of (event id, request) in five statements, whatever its size. Follow-ups and
    answers that came before the submission (it sat in a dead-letter topic, say) count in its
    decision, and a transfer that did (a rewind, a backlog) is applied right after it."""
    async with uow:
        # Before anything is read: else a follow-up, answer or transfer of one of them applied
        # at the same time (another topic of the poll) and this batch would each miss the
        # other's uncommitted rows, and what that one brought would be lost.
        await uow.decisions.lock({r.request_id for _, r in submitted})
        fresh = {r.request_id: r for r in await claim_each(uow, CONSUMER, submitted)}
        done = await uow.decisions.routed(list(fresh))
        waiting = [r for r in fresh.values() if r.request_id not in done]
        decisions: list[Decision] = []
        kept: list[uuid.UUID] = []
        for request, transfer in await uow.decisions.caught_up(waiting):
            first = decide(request, rules, now)
            decisions.append(first)
            if _dropped(request, rules):
                # Routed still, but by its filing's department alone: the catalog (or the
                # rules) may want the sub-service back, or its requests moved by hand.
                log.error(
                    "routing request %s to %s, the department it was filed under: its"
                    " sub-service %s is not in catalog v%d (%s)",
                    request.request_id,
                    first.queue,
                    request.sub_service_code,
                    rules.catalog.version,
                    first.rule,
                )
            if transfer is None:
                continue
            kept.append(request.request_id)
            if not transfer.known(rules):
                # Kept under a catalog that had its department: refused now, as it would be
                # applied, and never at the cost of the submission, which it failed with.
                log.error(
                    "dropping the transfer of request %s to %s kept before its submission:"
                    " not a department of catalog v%d",
                    request.request_id,
                    transfer.to_department,
                    rules.catalog.version,
                )
                continue
            # Decided as if it came after the submission: as the next decision, with its
            # sequence kept to skip older ones (the first applied none, so it is never skipped).
            if moved := first.transfer(transfer, rules, now):
                decisions.append(moved)
        await uow.decisions.add_all(decisions)
        # Read once, with the submission: what stays would only take room.
        await uow.decisions.forget_transfers(kept)
        await uow.commit()


async def transfer_request(
    *, uow: UnitOfWork, event_id: str, transfer: Transfer, rules: RoutingRules, now: datetime
) -> None:
    """Routes a request again to the department a reviewer transferred it to, once; a transfer
    older than one applied already (a dead letter replayed, a late one) is skipped. One read
    before the request's submission (a rewind or a backlog: a poll's topics are applied at
    once) is kept, and applied when the submission is routed."""
    async with uow:
        await uow.decisions.lock([transfer.request_id])
        if not await uow.claim_event(CONSUMER, event_id):
            return
        latest = await uow.decisions.latest(transfer.request_id)
        if latest is None:
            transfer.check(rules)
            await uow.decisions.keep_transfer(transfer)
            await uow.commit()
            return
        _warn_if_dropped(latest.request, rules, "transfer")
        decision = latest.transfer(transfer, rules, now)
        if decision is None:
            log.warning(
                "skipping transfer of request %s to %s: its status change %d is no later than"
                " %d, applied already",
                transfer.request_id,
                transfer.to_department,
                transfer.sequence,
                latest.status_sequence,
            )
        else:
            await uow.decisions.add(decision)
        await uow.commit()


async def follow_up(
    *, uow: UnitOfWork, event_id: str, follow_up: FollowUp, rules: RoutingRules, now: datetime
) -> None:
    """Counts the follow-up, and raises the request's priority, once, when its follow-ups
    meet a rule that says so. The count is kept either way: a later transfer routes with it,
    and so does the submission's decision when the follow-up came first (the submission sat
    in a dead-letter topic, say: the days beneficiaries follow up)."""
    async with uow:
        await uow.decisions.lock([follow_up.request_id])
        if not await uow.claim_event(CONSUMER, event_id):
            return
        # Read before the count is kept, which it merges in: else this one would be no news.
        latest = await uow.decisions.latest(follow_up.request_id)
        await uow.decisions.count_follow_ups(follow_up.request_id, follow_up.count)
        if latest is not None:
            _warn_if_dropped(latest.request, rules, "follow-up", latest.department)
            decision = latest.followed_up(follow_up, rules, now)
            if decision is not None:
                await uow.decisions.add(decision)
        await uow.commit()


async def answered(
    *, uow: UnitOfWork, event_id: str, answer: Answer, rules: RoutingRules, now: datetime
) -> None:
    """Takes the fields the beneficiary's answer replaces into the request, and raises its
    priority, once, when they meet a rule that says so. The fields are kept either way: a
    later transfer or follow-up routes (and republishes) the request with them, and so does
    the submission's decision when the answer came first."""
    if not answer.fields:
        return  # a message or documents only: nothing the rules look at
    async with uow:
        await uow.decisions.lock([answer.request_id])
        if not await uow.claim_event(CONSUMER, event_id):
            return
        # Read before the answer is kept, which it merges in: else this one would be no news.
        latest = await uow.decisions.latest(answer.request_id)
        await uow.decisions.record_answer(answer.request_id, answer.fields)
        if latest is not None:
            _warn_if_dropped(latest.request, rules, "answer", latest.department)
            decision = latest.answered(answer, rules, now)
            if decision is not None:
                await uow.decisions.add(decision)
        await uow.commit()


def _dropped(request: IncomingRequest, rules: RoutingRules) -> bool:
    return request.sub_service_code not in rules.catalog.sub_services


def _warn_if_dropped(
    request: IncomingRequest, rules: RoutingRules, cause: str, department: str = ""
) -> None:
    """A request whose sub-service, or the `department` it stays in, the catalog has dropped
    since it was routed is routed still, by the rules that name neither; this says why none
    that did apply."""
    for what, code, known in (
        ("sub-service", request.sub_service_code, not _dropped(request, rules)),
        ("department", department, not department or department in rules.catalog.departments),
    ):
        if not known:
            log.warning(
                "%s of request %s: its %s %s is not in catalog v%d, so no rule on it applies",
                cause,
                request.request_id,
                what,
                code,
                rules.catalog.version,
            )


async def get_decision(*, uow: UnitOfWork, request_id: uuid.UUID, reader: Principal) -> Decision:
    """The latest decision: the queue the request is in now. Only its department's staff (as
    review's record of them leaves them) may read it; to others it is not found, as review's
    work items are."""
    async with uow:
        decision = await uow.decisions.latest(request_id)
        if decision is not None and decision.department in reader.departments:
            reader = reader.narrowed(await uow.staff.get(reader.subject))
    if decision is None or decision.department not in reader.departments:
        # One answer for both: another department's staff learn nothing of which exist.
        raise NotFound("no such request in your departments")
    return decision


def explain_route(*, rules: RoutingRules, request: Attributes) -> Route:
    """Which queue and priority a hypothetical request would get, and why."""
    return rules.explain(request)
