"""TLS settings: all three files or none; anything between stops the service at start. Kafka
over TLS shows the same certificate."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError
from tawasul_platform import deadletters, rewind
from tawasul_platform.kafka_tls import ENV_KAFKA_TLS, from_env, security
from tawasul_platform.settings import ServiceSettings
from tawasul_platform.testing import self_signed
from tawasul_platform.tls import TlsConfig

REQUIRED = {
    "TAWASUL_DATABASE_URL": "postgresql+asyncpg://u@/d",
    "TAWASUL_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "TAWASUL_GRPC_ADDRESS": "127.0.0.1:0",
    "TAWASUL_IDENTITY_ISSUERS": "[]",
    "TAWASUL_IDENTITY_AUDIENCE": "tawasul-test",
}
TLS_ENV = ("TAWASUL_TLS_CERT_FILE", "TAWASUL_TLS_KEY_FILE", "TAWASUL_TLS_CA_FILE")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name, content in zip(TLS_ENV, ("CERT", "KEY", "CA"), strict=True):
        path = tmp_path / f"{content.lower()}.pem"
        path.write_text(content)
        found[name] = path
    return found


def test_none_set_is_plaintext(env: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().tls is None


def test_all_three_set_loads_them(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "intake", ca=True)
    for name, path in zip(TLS_ENV, (cert, key, cert), strict=True):
        env.setenv(name, str(path))
    settings = ServiceSettings()
    assert settings.tls == TlsConfig(
        cert=cert.read_bytes(), key=key.read_bytes(), ca=cert.read_bytes()
    )
    assert settings.tls_ca_file == cert


@pytest.mark.parametrize("broken", ["cert", "key", "ca"])
def test_a_file_that_is_no_pem_fails_at_start_naming_it(
    env: pytest.MonkeyPatch, tmp_path: Path, broken: str
) -> None:
    cert, key = self_signed(tmp_path, "intake", ca=True)
    paths = {"cert": cert, "key": key, "ca": tmp_path / "ca.pem"}
    paths["ca"].write_bytes(cert.read_bytes())
    paths[broken].write_text("not PEM")
    for name, path in zip(TLS_ENV, paths.values(), strict=True):
        env.setenv(name, str(path))
    with pytest.raises(ValidationError, match=f"cannot read a TLS file: {paths[broken]} holds no"):
        ServiceSettings()


def test_a_key_that_is_not_the_certificates_fails_at_start(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, _ = self_signed(tmp_path, "intake", ca=True)
    _, other_key = self_signed(tmp_path, "other", ca=True)
    for name, path in zip(TLS_ENV, (cert, other_key, cert), strict=True):
        env.setenv(name, str(path))
    with pytest.raises(ValidationError, match=f"{other_key} is not the key of the certificate"):
        ServiceSettings()


@pytest.mark.parametrize("unset", TLS_ENV)
def test_one_missing_fails_naming_it(
    env: pytest.MonkeyPatch, files: dict[str, Path], unset: str
) -> None:
    for name, path in files.items():
        if name != unset:
            env.setenv(name, str(path))
    with pytest.raises(ValidationError, match=f"TLS is half configured: .* but {unset} not"):
        ServiceSettings()


def test_a_missing_file_fails_at_start(
    env: pytest.MonkeyPatch, files: dict[str, Path], tmp_path: Path
) -> None:
    for name, path in files.items():
        env.setenv(name, str(path))
    env.setenv("TAWASUL_TLS_KEY_FILE", str(tmp_path / "nowhere.key"))
    with pytest.raises(ValidationError, match=r"cannot read a TLS file: .*nowhere\.key"):
        ServiceSettings()


def test_kafka_is_plaintext_unless_kafka_tls(env: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().kafka_ssl is None


def test_kafka_tls_without_the_processs_certificate_fails(env: pytest.MonkeyPatch) -> None:
    env.setenv("TAWASUL_KAFKA_TLS", "true")
    with pytest.raises(ValidationError, match="kafka_tls needs this process's certificate"):
        ServiceSettings()


def test_kafka_tls_shows_the_processs_certificate_and_checks_the_brokers(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path, "kafka-test", ca=True)
    for name, path in zip(TLS_ENV, (cert, key, cert), strict=True):
        env.setenv(name, str(path))
    env.setenv("TAWASUL_KAFKA_TLS", "true")
    context = ServiceSettings().kafka_ssl
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kafka-test"),),)]
    assert security(context) == {"security_protocol": "SSL", "ssl_context": context}
    assert security(None) == {}


def test_a_tool_in_a_pod_takes_kafka_tls_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (*TLS_ENV, ENV_KAFKA_TLS):
        monkeypatch.delenv(name, raising=False)
    assert from_env() is None
    monkeypatch.setenv(ENV_KAFKA_TLS, "true")
    with pytest.raises(ValueError, match="TAWASUL_KAFKA_TLS needs"):
        from_env()
    cert, key = self_signed(tmp_path, "kafka-test", ca=True)
    for name, path in zip(TLS_ENV, (cert, key, cert), strict=True):
        monkeypatch.setenv(name, str(path))
    context = from_env()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("prog", "tool", "argv"),
    [
        ("tawasul-dead-letters", deadletters.main, ["list"]),
        ("tawasul-rewind", rewind.main, ["routing", "--to", "2026-12-06T09:00:00Z"]),
    ],
)
@pytest.mark.parametrize("broken", ["absent", "not PEM"])
def test_a_tool_whose_certificate_files_cannot_be_loaded_says_which_they_are(
    prog: str,
    tool: Callable[[Sequence[str]], None],
    argv: list[str],
    broken: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A Secret not mounted, or mounted with the wrong data: an error line naming the files,
    not ssl's traceback (which names none), and before any Kafka is dialled."""
    cert, key = self_signed(tmp_path, "operator", ca=True)
    ca = tmp_path / "ca.pem"
    if broken == "not PEM":
        ca.write_text("CA")
    for name, path in zip(TLS_ENV, (cert, key, ca), strict=True):
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv(ENV_KAFKA_TLS, "true")
    with pytest.raises(SystemExit) as exited:
        tool(["--bootstrap", "127.0.0.1:1", *argv])
    assert str(exited.value.code).startswith(
        f"{prog}: cannot load Kafka's TLS files (TAWASUL_TLS_CERT_FILE={cert},"
        f" TAWASUL_TLS_KEY_FILE={key}, TAWASUL_TLS_CA_FILE={ca}): "
    )
