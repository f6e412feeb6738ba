"""A single-node KRaft Kafka (broker and controller in one JVM) for the local stack."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaClient, AIOKafkaConsumer
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import CreateAclsRequest
from tawasul_platform.kafka_acls import Grant, grants, principal
from tawasul_platform.topics import TOPICS, ensure_topics

# WARN keeps the log readable; the start line tells when the broker came up.
LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Root level="WARN"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"""

PROBE_GROUP = "tawasul-devstack-readiness"


@dataclass(frozen=True)
class TlsListener:
    """The listener the services use: mutual TLS, a client certificate of the CA required."""

    port: int
    # The broker's key, its certificate and the CA's, PEM in one file (Kafka's PEM keystore).
    keystore: Path
    ca_file: Path


def server_properties(
    port: int, controller_port: int, data_dir: Path, tls: TlsListener | None = None
) -> str:
    # auto.create.topics.enable=false: every topic comes from tawasul_platform.topics.
    # group.coordinator.append.linger.ms=0: an offset commit otherwise waits 5 ms for others to
    # share its write, and every consumer commits after each batch before it polls again (a
    # commit's round trip went from 6.4 to about 1 ms).
    # PLAINTEXT stays for the tests' and the bench's own clients, and between the node's roles:
    # with the TLS listener, ACLs hold there (kafka_acls), and PLAINTEXT's ANONYMOUS may do all.
    # A certificate's subject (CN=intake,O=...) is known by its CN alone, as Strimzi knows it.
    listeners = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    ssl = ""
    if tls is not None:
        listeners += f",SSL://127.0.0.1:{tls.port}"
        protocols += ",SSL:SSL"
        ssl = f"""\
ssl.keystore.type=PEM
ssl.keystore.location={property_value(str(tls.keystore))}
ssl.truststore.type=PEM
ssl.truststore.location={property_value(str(tls.ca_file))}
ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^(CN=[^,]+),.*$/$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
"""
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners={listeners},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={listeners}
controller.listener.names=CONTROLLER
listener.security.protocol.map={protocols}
inter.broker.listener.name=PLAINTEXT
{ssl}log.dirs={property_value(str(data_dir))}
num.partitions=6
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.coordinator.append.linger.ms=0
auto.create.topics.enable=false
"""


def property_value(value: str) -> str:
    """`value` escaped as java.util.Properties reads it: Kafka loads server.properties as
    ISO-8859-1, so a path under a non-ASCII directory (/home/محمد) must be \\uXXXX escapes
    (UTF-16 units), a backslash doubled, a leading space and Properties' separators and
    comment marks escaped."""
    escaped = []
    for index, char in enumerate(value):
        if char == "\\" or char in ":=#!" or (char == " " and index == 0):
            escaped.append(f"\\{char}")
        elif " " <= char <= "~":
            escaped.append(char)
        else:
            units = char.encode("utf-16-be")
            escaped.extend(f"\\u{units[i]:02X}{units[i + 1]:02X}" for i in range(0, len(units), 2))
    return "".join(escaped)


def cluster_id() -> str:
    """A Kafka cluster id (URL-safe base64 of a random UUID), as `StorageTool random-uuid` gives,
    without starting a JVM for it."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):  # Kafka's own generator avoids these too
            return value


def java_argv(java: str, lib: Path, log4j: Path, main: str, *args: str) -> list[str]:
    return [
        java,
        "-Xms256m",
        "-Xmx512m",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        str(lib / "*"),
        main,
        *args,
    ]


async def _topics_and_group(bootstrap: str) -> None:
    while True:
        try:
            await ensure_topics(bootstrap)
            break
        except (KafkaError, OSError):  # the broker accepts connections before it serves
            await asyncio.sleep(0.5)
    # Right after start the group coordinator is unavailable for a few seconds (while
    # __consumer_offsets is created): ready means a consumer group can be joined.
    coordinator_log = logging.getLogger("aiokafka.consumer.group_coordinator")
    level = coordinator_log.level
    # The probe provokes these errors on purpose until the coordinator is up: keep them quiet.
    coordinator_log.setLevel(logging.CRITICAL)
    consumer = AIOKafkaConsumer(
        TOPICS[0].name,
        bootstrap_servers=bootstrap,
        group_id=PROBE_GROUP,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()
        coordinator_log.setLevel(level)


def ensure_topics_and_group(bootstrap: str, timeout: float) -> None:
    """Create the declared topics, then wait until a consumer group can be joined."""
    asyncio.run(asyncio.wait_for(_topics_and_group(bootstrap), timeout))


# The wire codes of Kafka's ACL API (org.apache.kafka.common.{resource,acl}).
_RESOURCE = {"topic": 2, "group": 3}
_PATTERN = {"literal": 3, "prefix": 4}
_OPERATION = {"Read": 3, "Write": 4}
_ALLOW = 3


async def _grant(bootstrap: str, wanted: frozenset[Grant]) -> None:
    # aiokafka's admin client has no ACL calls: its client sends Kafka's CreateAcls itself.
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        node = client.get_random_node()
        for grant in sorted(wanted):
            request = CreateAclsRequest(
                _RESOURCE[grant.resource],
                grant.name,
                _PATTERN[grant.pattern],
                principal(grant.user),
                "*",
                _OPERATION[grant.operation],
                _ALLOW,
            )
            response = await client.send(node, request)
            for code, message in response.creation_responses:
                if code:
                    raise for_code(code)(f"{grant}: {message}")
    finally:
        await client.close()


def grant_acls(bootstrap: str, timeout: float) -> None:
    """Gives the broker every client's grants (kafka_acls); granting one again is harmless."""
    asyncio.run(asyncio.wait_for(_grant(bootstrap, grants()), timeout))
