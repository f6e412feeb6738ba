"""Scale-out: a second replica of routing and of review joins each one's consumer group; the
two share the partitions, both do work, and no event is applied twice.

Which replica is which member of a group: the members holding the topic before the second
replica starts are the first replica's (a member keeps its id through a rebalance); the new
ones are the second's. The holdings are read once both have joined and again once every topic
has gone quiet: unchanged, so no rebalance moved a partition meanwhile, and each replica
applied the records of the partitions it held. Every one of them held some partitions that
carried this test's requests, so each did work; the counts then show none applied twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

from tawasul_devstack.journey import Clients
from tawasul_devstack.stack import Stack, replica_name
from tawasul_platform import topics

from tests.e2e.chaos import Load, assert_exactly_once, settled_counts, start
from tests.e2e.groups import membership, settled
from tests.e2e.topics import records

REQUESTS = 200
# The topic each replicated service consumes the load's requests from, in its own group.
REPLICATED = {"routing": topics.REQUEST_SUBMITTED, "review": topics.REQUEST_ROUTED}


async def test_two_replicas_of_routing_and_review_share_the_work_and_apply_nothing_twice(
    stack: Stack, clients: Clients
) -> None:
    bootstrap = stack.config.kafka_bootstrap
    assert stack.replicas() == []
    first: dict[str, set[str]] = {}
    for service, topic in REPLICATED.items():
        alone = await settled(bootstrap, service, topic, holders=1)
        first[service] = set(alone.holders)
    seconds = [replica_name(service, 2) for service in REPLICATED]
    try:
        await asyncio.gather(*(start(stack, name) for name in seconds))
        shared = {
            service: await settled(bootstrap, service, topic, holders=2)
            for service, topic in REPLICATED.items()
        }
        for service, members in shared.items():
            # The first replica's member is still in, and one more holds partitions.
            assert first[service] < set(members.holders), (service, first, members)

        async with Load(stack, requests=REQUESTS) as load:
            await load.run()
        counts = await settled_counts(stack, load, clients.sms_received)
        # One decision, one work item, one under-review change, one message each: never twice.
        assert_exactly_once(counts, load)
        ids = load.ids
        routed = await records(bootstrap, topics.REQUEST_ROUTED, ids, at_least=len(ids))
        assert Counter(r.key.decode() for r in routed if r.key) == dict.fromkeys(ids, 1)
        submitted = await records(bootstrap, topics.REQUEST_SUBMITTED, ids, at_least=len(ids))
        carried = {
            topics.REQUEST_SUBMITTED: {r.partition for r in submitted},
            topics.REQUEST_ROUTED: {r.partition for r in routed},
        }

        for service, topic in REPLICATED.items():
            after = await membership(bootstrap, service, topic)
            assert after.holders == shared[service].holders, f"{service}'s group rebalanced"
            by_replica = _by_replica(after.holders, first[service])
            print(f"{service}: partitions of {topic} per replica {by_replica}")
            for replica, partitions in by_replica.items():
                assert partitions & carried[topic], f"{service} replica {replica} did no work"
    finally:
        for name in seconds:
            await asyncio.to_thread(stack.stop_service, name)
    assert stack.replicas() == []


def _by_replica(holders: Mapping[str, frozenset[int]], first: set[str]) -> dict[int, set[int]]:
    by_replica: dict[int, set[int]] = {1: set(), 2: set()}
    for member, partitions in holders.items():
        by_replica[1 if member in first else 2] |= partitions
    return by_replica
