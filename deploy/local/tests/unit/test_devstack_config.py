from __future__ import annotations

import json
from pathlib import Path

import pytest
from tawasul_devstack.config import (
    MAX_REPLICAS,
    PG_MAX_CONNECTIONS,
    PG_SUPERUSER_RESERVED,
    SERVICES,
    TOOLS_CONNECTIONS,
    StackConfig,
    replica_name,
    split_replica,
)
from tawasul_devstack.kafka import TlsListener, cluster_id, server_properties

ENV_VARS = (
    "TAWASUL_STACK_DIR",
    "TAWASUL_CACHE_DIR",
    "TAWASUL_PORT_BASE",
    "TAWASUL_BACKGROUND_NICE",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_into_the_repo_and_the_user_cache() -> None:
    config = StackConfig.from_env()

    assert config.state_dir.parts[-2:] == (".state", "stack")
    assert (config.state_dir.parent.parent / "deploy" / "local" / "pyproject.toml").is_file()
    assert config.cache_dir == Path.home() / ".cache" / "tawasul"
    assert config.port_base == 19000


def test_environment_then_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAWASUL_STACK_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TAWASUL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TAWASUL_PORT_BASE", "21000")

    from_env = StackConfig.from_env()
    overridden = StackConfig.from_env(port_base=22000, state_dir=tmp_path / "other")

    assert from_env == StackConfig(tmp_path / "state", tmp_path / "cache", 21000)
    assert overridden.port_base == 22000
    assert overridden.state_dir == tmp_path / "other"
    assert overridden.cache_dir == tmp_path / "cache"


def test_relative_paths_become_absolute() -> None:
    config = StackConfig(Path("rel/state"), Path("rel/cache"))

    assert config.state_dir.is_absolute()
    assert config.cache_dir.is_absolute()


def test_addresses_derive_from_the_port_base(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path, port_base=20000)

    assert config.kafka_bootstrap == "127.0.0.1:20092"
    assert config.kafka_controller_port == 20093
    assert config.minio_endpoint == "127.0.0.1:20000"
    assert config.minio_console_port == 20001
    assert config.sms_gateway_url == "http://127.0.0.1:20080"
    assert config.smtp_port == 20025
    assert config.gateway_url == "http://127.0.0.1:20088"
    assert [config.grpc_address(s) for s in SERVICES] == [
        "127.0.0.1:20101",
        "127.0.0.1:20102",
        "127.0.0.1:20103",
        "127.0.0.1:20104",
        "127.0.0.1:20105",
    ]


def test_two_port_bases_share_no_port(tmp_path: Path) -> None:
    def ports(config: StackConfig) -> set[int]:
        return {
            config.kafka_port,
            config.kafka_controller_port,
            config.minio_port,
            config.minio_console_port,
            config.sms_gateway_port,
            config.smtp_port,
            config.gateway_port,
            *(config.grpc_port(s) for s in SERVICES),
            *(config.metrics_port(s) for s in (*SERVICES, "gateway")),
        }

    dev = ports(StackConfig(tmp_path, tmp_path, port_base=19000))
    tests = ports(StackConfig(tmp_path, tmp_path, port_base=29000))

    assert len(dev) == 8 + 2 * len(SERVICES)
    assert not dev & tests


def test_every_replica_has_a_grpc_port_of_its_own_in_the_layout(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path, port_base=20000)
    others = {
        config.kafka_port,
        config.kafka_controller_port,
        config.minio_port,
        config.minio_console_port,
        config.sms_gateway_port,
        config.smtp_port,
        config.clamd_port,
        config.gateway_port,
        config.metrics_port("gateway"),
    }
    grpc = [
        config.grpc_port(s, replica) for s in SERVICES for replica in range(1, MAX_REPLICAS + 1)
    ]
    scraped = [
        config.metrics_port(s, replica) for s in SERVICES for replica in range(1, MAX_REPLICAS + 1)
    ]

    assert config.grpc_address("routing", 2) == "127.0.0.1:20113"
    assert config.metrics_url("routing", 2) == "http://127.0.0.1:20213/metrics"
    assert len(set(grpc + scraped)) == len(grpc) + len(scraped)
    assert not others & set(grpc + scraped)
    # Below the next stack's base, however many replicas there are.
    assert max(grpc + scraped) < 20000 + 1000
    env = config.service_env("review", 2)
    assert env["TAWASUL_GRPC_ADDRESS"] == "127.0.0.1:20114"
    assert env["TAWASUL_METRICS_ADDRESS"] == "127.0.0.1:20214"
    assert env["TAWASUL_DATABASE_URL"] == config.service_env("review")["TAWASUL_DATABASE_URL"]


def test_replica_names_read_back_and_nothing_else_passes_for_one() -> None:
    assert replica_name("routing", 1) == "routing"
    assert replica_name("routing", 2) == "routing-2"
    for service in SERVICES:
        for replica in range(1, MAX_REPLICAS + 1):
            assert split_replica(replica_name(service, replica)) == (service, replica)
    for other in ("sms-gateway", "kafka", "routing-1", f"routing-{MAX_REPLICAS + 1}", "x-2"):
        assert split_replica(other) is None
    with pytest.raises(ValueError, match="replicas are 1 to"):
        replica_name("routing", MAX_REPLICAS + 1)


def test_database_url_uses_the_socket_dir_of_the_running_server(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path)
    assert config.database_url("intake") == (
        f"postgresql+asyncpg://postgres@/tawasul_intake?host={tmp_path / 'pg'}"
    )

    # The layout PostgreSQL writes: pid, data dir, start time, port, socket dir, host, shm, status
    config.pg_dir.mkdir()
    (config.pg_dir / "postmaster.pid").write_text(
        f"123\n{config.pg_dir}\n1700000000\n5432\n/run/pg-sock\n\n  1 2\nready   \n"
    )
    assert config.database_url("review").endswith("/tawasul_review?host=/run/pg-sock")


def test_service_env_has_every_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOME_UNRELATED", "kept")
    config = StackConfig(tmp_path, tmp_path, port_base=20000)

    env = config.service_env("routing")

    assert env["SOME_UNRELATED"] == "kept"
    assert env["TAWASUL_DATABASE_URL"] == config.database_url("routing")
    assert env["TAWASUL_KAFKA_BOOTSTRAP"] == "127.0.0.1:20094"  # the TLS listener
    assert env["TAWASUL_GRPC_ADDRESS"] == "127.0.0.1:20103"
    assert [i["jwks"] for i in json.loads(env["TAWASUL_IDENTITY_ISSUERS"])] == [
        str(tmp_path / "identity" / "users.jwks.json"),
        str(tmp_path / "identity" / "staff.jwks.json"),
    ]
    # Services get public keys only.
    assert "PRIVATE" not in "".join(env.values())
    assert env["TAWASUL_S3_ENDPOINT"] == "127.0.0.1:20000"
    assert env["TAWASUL_S3_ACCESS_KEY"] == config.minio_access_key
    assert env["TAWASUL_S3_SECRET_KEY"] == config.minio_secret_key
    assert env["TAWASUL_S3_BUCKET"] == "tawasul-attachments"
    assert env["TAWASUL_DOCS_ADDRESS"] == "127.0.0.1:20101"
    assert env["TAWASUL_SMS_GATEWAY_URL"] == "http://127.0.0.1:20080"
    assert env["TAWASUL_SMS_GATEWAY_USER"] == config.sms_gateway_user == "tawasul"
    assert env["TAWASUL_SMS_GATEWAY_PASSWORD"] == config.sms_gateway_password
    assert env["TAWASUL_SMS_SENDER"] == "Tawasul"
    assert env["TAWASUL_SMTP_HOST"] == "127.0.0.1"
    assert env["TAWASUL_SMTP_PORT"] == "20025"
    assert env["TAWASUL_SMTP_SENDER"] == "Tawasul <no-reply@tawasul.example>"


def test_unknown_service_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="billing"):
        StackConfig(tmp_path, tmp_path).grpc_address("billing")


def test_kafka_properties_follow_the_ports(tmp_path: Path) -> None:
    props = dict(
        line.split("=", 1)
        for line in server_properties(20092, 20093, tmp_path / "data").splitlines()
    )

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:20092,CONTROLLER://127.0.0.1:20093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:20092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:20093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "6"
    assert props["group.coordinator.append.linger.ms"] == "0"
    # Plaintext only (the containers' tier): nothing to tell clients apart by, no ACLs.
    assert "authorizer.class.name" not in props


def test_kafkas_tls_listener_requires_a_certificate_of_the_ca(tmp_path: Path) -> None:
    listener = TlsListener(20094, tmp_path / "keystore.pem", tmp_path / "ca.pem")
    props = dict(
        line.split("=", 1)
        for line in server_properties(20092, 20093, tmp_path / "data", listener).splitlines()
    )

    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:20092,SSL://127.0.0.1:20094,CONTROLLER://127.0.0.1:20093"
    )
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:20092,SSL://127.0.0.1:20094"
    assert props["listener.security.protocol.map"].split(",") == [
        "PLAINTEXT:PLAINTEXT",
        "CONTROLLER:PLAINTEXT",
        "SSL:SSL",
    ]
    assert props["ssl.keystore.location"] == str(tmp_path / "keystore.pem")
    assert props["ssl.truststore.location"] == str(tmp_path / "ca.pem")
    assert props["ssl.client.auth"] == "required"
    # ACLs hold on the TLS listener, for the certificate's CN as Strimzi names it; the
    # plaintext listener's (and the node's own) ANONYMOUS may do all.
    assert props["authorizer.class.name"].endswith(".StandardAuthorizer")
    assert props["super.users"] == "User:ANONYMOUS"
    assert props["ssl.principal.mapping.rules"] == "RULE:^(CN=[^,]+),.*$/$1/,DEFAULT"


def test_services_reach_the_local_kafka_over_tls_and_the_containers_plaintext(
    tmp_path: Path,
) -> None:
    local = StackConfig(tmp_path, tmp_path, port_base=20000).service_env("routing")
    assert local["TAWASUL_KAFKA_BOOTSTRAP"] == "127.0.0.1:20094"
    assert local["TAWASUL_KAFKA_TLS"] == "true"
    plain = StackConfig(tmp_path, tmp_path, port_base=20000, services_kafka_tls=False)
    assert plain.service_env("routing")["TAWASUL_KAFKA_BOOTSTRAP"] == "127.0.0.1:20092"
    assert plain.service_env("routing")["TAWASUL_KAFKA_TLS"] == "false"
    contained = StackConfig(tmp_path, tmp_path, port_base=20000, infra="containers")
    assert contained.service_env("routing")["TAWASUL_KAFKA_BOOTSTRAP"] == "127.0.0.1:20092"
    assert contained.service_env("routing")["TAWASUL_KAFKA_TLS"] == "false"


def test_cluster_id_has_kafkas_shape() -> None:
    ids = {cluster_id() for _ in range(200)}

    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_the_services_pools_and_the_tools_fit_in_postgres_max_connections(
    tmp_path: Path,
) -> None:
    config = StackConfig(state_dir=tmp_path, cache_dir=tmp_path)
    # make_engine allows pool_size plus as many overflow connections; every replica of every
    # service may run at once.
    services = sum(
        2 * int(config.service_env(s, replica)["TAWASUL_DB_POOL_SIZE"])
        for s in SERVICES
        for replica in range(1, MAX_REPLICAS + 1)
    )
    assert services + TOOLS_CONNECTIONS <= PG_MAX_CONNECTIONS - PG_SUPERUSER_RESERVED


def test_the_gateway_calls_intake_and_docs_with_its_own_certificate(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path, port_base=20000)
    env = config.gateway_env()

    assert (
        env["TAWASUL_HTTP_PORT"],
        env["TAWASUL_INTAKE_ADDRESS"],
        env["TAWASUL_DOCS_ADDRESS"],
    ) == (
        "20088",
        "127.0.0.1:20102",
        "127.0.0.1:20101",
    )
    assert env["TAWASUL_TLS_CERT_FILE"] == str(config.tls_cert_file("gateway"))
    assert env["TAWASUL_DEV_SIGN_IN"] == "true"
    assert Path(env["TAWASUL_DEV_REGISTRY_FILE"]).is_file()
    assert (Path(env["TAWASUL_DEV_IDENTITY_DIR"]) / "users.key.pem").is_file()


def test_background_processes_yield_and_the_request_path_does_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = StackConfig(tmp_path, tmp_path)
    background = ["notify", "notify-2", "sms-gateway", "smtp", "prometheus"]
    foreground = ["intake", "routing", "routing-2", "review", "docs", "gateway", "kafka"]
    foreground += ["postgres", "minio", "clamd"]

    assert {name: config.niceness(name) for name in background} == dict.fromkeys(background, 10)
    assert {name: config.niceness(name) for name in foreground} == dict.fromkeys(foreground, 0)
    assert StackConfig(tmp_path, tmp_path, background_nice=0).niceness("notify") == 0
    monkeypatch.setenv("TAWASUL_BACKGROUND_NICE", "5")
    assert StackConfig.from_env().niceness("smtp") == 5
