"""Who holds which partitions in a consumer group, as the broker's group coordinator says
(DescribeGroups), read without joining or disturbing the group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request
from tawasul_devstack.journey import eventually

# aiokafka 0.14's own DescribeGroupsRequest goes up to v3 and reads v3's answer with v2's
# layout (no authorized_operations), which breaks the connection; v2 says all needed here.
_Describe = DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2
# The coordinator lookup's key type for a consumer group (FindCoordinator).
_GROUP = 0


class _DescribeGroups(Request[_Describe]):  # type: ignore[misc]  # aiokafka has no types
    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(self._groups)


@dataclass(frozen=True)
class Membership:
    """A group's state (Stable once a rebalance is over) and each member's partitions of one
    topic (members holding none of it are left out)."""

    state: str
    holders: Mapping[str, frozenset[int]]


async def membership(bootstrap: str, group: str, topic: str) -> Membership:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = await client.coordinator_lookup(_GROUP, group)
        reply = await client.send(node, _DescribeGroups([group]))
    finally:
        await client.close()
    [(error, _, state, _, _, members)] = reply.groups
    assert error == 0, f"DescribeGroups {group}: error code {error}"
    holders: dict[str, frozenset[int]] = {}
    for member_id, _, _, _, assignment in members:
        if not assignment:  # mid-rebalance: nothing assigned yet
            continue
        decoded = ConsumerProtocolMemberAssignment.decode(assignment)
        partitions = frozenset(p for t, parts in decoded.assignment if t == topic for p in parts)
        if partitions:
            holders[member_id] = partitions
    return Membership(state=state, holders=holders)


async def settled(
    bootstrap: str, group: str, topic: str, *, holders: int, within: float = 90.0
) -> Membership:
    """The group once it is Stable with `holders` members holding partitions of `topic`."""

    async def look() -> Membership | None:
        found = await membership(bootstrap, group, topic)
        return found if found.state == "Stable" and len(found.holders) == holders else None

    return await eventually(look, within=within, what=f"{holders} members of {group} on {topic}")
