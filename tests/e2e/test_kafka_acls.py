"""Kafka's ACLs on the services' listener: each certificate may do what kafka_acls grants its
name and nothing else. A service sees only the topics it reads or writes, cannot publish
another service's events nor read in another service's consumer group, and cannot go through
the dead letters, which only the operator's certificate reads."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from tawasul_devstack.config import SERVICES
from tawasul_devstack.pki import CLIENT
from tawasul_devstack.stack import Stack
from tawasul_platform import topics
from tawasul_platform.kafka_acls import service_grants
from tawasul_platform.kafka_tls import client_context, security

from tests.e2e.operator import run_tool


def _as(stack: Stack, name: str) -> ssl.SSLContext:
    cfg = stack.config
    return client_context(
        cert_file=cfg.tls_cert_file(name), key_file=cfg.tls_key_file(name), ca_file=cfg.tls_ca_file
    )


async def _visible_topics(stack: Stack, name: str) -> set[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=stack.config.kafka_services_bootstrap,
        request_timeout_ms=5000,
        **security(_as(stack, name)),
    )
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_each_service_sees_only_the_topics_it_reads_or_writes(stack: Stack) -> None:
    for service in SERVICES:
        granted = {g.name for g in service_grants(service) if g.resource == "topic"}
        assert await _visible_topics(stack, service) == granted, service
    assert topics.REQUEST_SUBMITTED in await _visible_topics(stack, "routing")
    assert topics.REQUEST_SUBMITTED not in await _visible_topics(stack, "review")
    # A certificate of the office that no grant names (the tests' own client) sees nothing.
    assert await _visible_topics(stack, CLIENT) == set()


async def test_a_service_cannot_publish_another_services_events(stack: Stack) -> None:
    """Notify may publish its notification events, not a submission (intake's)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.config.kafka_services_bootstrap,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=5000,
        **security(_as(stack, "notify")),
    )
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.REQUEST_SUBMITTED, b"forged", key=b"forged")
    finally:
        await producer.stop()


async def _consume_once(stack: Stack, name: str, topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.config.kafka_services_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=5000,
        **security(_as(stack, name)),
    )
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()


async def test_a_service_cannot_read_in_another_services_group_or_another_topic(
    stack: Stack,
) -> None:
    # Routing reads submissions, but not in review's group (it would take review's partitions).
    with pytest.raises(GroupAuthorizationFailedError):
        await _consume_once(stack, "routing", topics.REQUEST_SUBMITTED, "review")
    # Docs reads in its own groups, but not review's status changes, which it has no use for.
    with pytest.raises(TopicAuthorizationFailedError):
        await _consume_once(stack, "docs", topics.REQUEST_STATUS_CHANGED, "docs-probe")


async def test_only_the_operators_certificate_goes_through_the_dead_letters(
    stack: Stack,
) -> None:
    listed = await run_tool(stack, "tawasul-dead-letters", "list")
    assert listed.code == 0, listed.err
    refused = await run_tool(stack, "tawasul-dead-letters", "list", certificate="review")
    assert refused.code != 0
    assert "TopicAuthorizationFailed" in refused.err, refused.err
