"""TLS settings: all three files or none; anything between stops the service at start. Kafka
over TLS shows the same certificate."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from tawasul_platform.kafka_tls import ENV_KAFKA_TLS, from_env, security
from tawasul_platform.settings import ServiceSettings
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


def test_all_three_set_loads_them(env: pytest.MonkeyPatch, files: dict[str, Path]) -> None:
    for name, path in files.items():
        env.setenv(name, str(path))
    settings = ServiceSettings()
    assert settings.tls == TlsConfig(cert=b"CERT", key=b"KEY", ca=b"CA")
    assert settings.tls_ca_file == files["TAWASUL_TLS_CA_FILE"]


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
    cert, key = _self_signed(tmp_path)
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
    cert, key = _self_signed(tmp_path)
    for name, path in zip(TLS_ENV, (cert, key, cert), strict=True):
        monkeypatch.setenv(name, str(path))
    context = from_env()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "kafka-cert.pem", directory / "kafka-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
