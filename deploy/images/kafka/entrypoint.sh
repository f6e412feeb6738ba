#!/bin/bash
# One KRaft node: server.properties from the environment, storage formatted on first start
# (auto.create.topics.enable=false: the topics come from tawasul_platform.topics, created by
# whoever starts the stack, as deploy/local does with ensure_topics). Offset commits are written
# at once, not lingered for 5 ms: every consumer commits after each batch before it polls again.
set -euo pipefail
port="${KAFKA_PORT:-9092}"
controller="${KAFKA_CONTROLLER_PORT:-9093}"
advertised="${KAFKA_ADVERTISED:-127.0.0.1:$port}"
data=/var/lib/kafka/data
props=/var/lib/kafka/server.properties
cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://0.0.0.0:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=6
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.coordinator.append.linger.ms=0
auto.create.topics.enable=false
PROPS
jvm=(/usr/bin/java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -Dlog4j2.configurationFile=/opt/kafka/log4j2.xml -cp '/opt/kafka/libs/*')
if [ ! -f "$data/meta.properties" ]; then
    # A cluster id as `StorageTool random-uuid` makes it: URL-safe base64 of 16 random bytes.
    cluster="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    case "$cluster" in -*) cluster="A${cluster:1}" ;; esac
    "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster" -c "$props"
fi
exec "${jvm[@]}" kafka.Kafka "$props"
