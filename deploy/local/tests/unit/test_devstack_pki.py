"""The dev stack's CA: made once and kept, certificates issued once and renewed when stale."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tawasul_devstack.pki import Authority, Pki
from tawasul_devstack.stack import SERVICES, StackConfig


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_name_their_holder_and_are_good_for_localhost(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    pki.ensure(servers=["intake"], clients=["client"])
    ca = _cert(pki.ca_file)
    service = _cert(pki.cert_file("intake"))
    service.verify_directly_issued_by(ca)
    assert service.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "intake"
    names = service.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.IPv4Address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    usage = service.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    client = _cert(pki.cert_file("client"))
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    for key in (pki.ca_key_file, pki.key_file("intake"), pki.key_file("client")):
        assert key.stat().st_mode & 0o077 == 0, key


def test_a_later_up_keeps_the_ca_and_the_certificates(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.ensure(servers=["intake"], clients=["client"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.ensure(servers=["intake"], clients=["client"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_certificate_of_another_ca_or_expiring_is_issued_again(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.ensure(servers=["intake", "docs"], clients=[])
    stranger, _ = Authority.new("another CA").issue("intake", server=True)
    pki.cert_file("intake").write_bytes(stranger)
    expiring, key = pki.authority().issue("docs", server=True, days=1)
    pki.cert_file("docs").write_bytes(expiring)
    pki.key_file("docs").write_bytes(key)

    pki.ensure(servers=["intake", "docs"], clients=[])

    ca = _cert(pki.ca_file)
    for name, stale in (("intake", stranger), ("docs", expiring)):
        renewed = pki.cert_file(name).read_bytes()
        assert renewed != stale
        x509.load_pem_x509_certificate(renewed).verify_directly_issued_by(ca)
    assert _cert(pki.cert_file("docs")).not_valid_after_utc > _expiry(expiring)


def _expiry(pem: bytes) -> datetime:
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def test_each_service_is_given_its_own_certificate_and_the_stack_ca(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, tmp_path)
    config.ensure_pki()
    for service in SERVICES:
        env = config.service_env(service)
        cert = _cert(Path(env["TAWASUL_TLS_CERT_FILE"]))
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == service
        assert env["TAWASUL_TLS_KEY_FILE"] == str(config.tls_key_file(service))
        assert env["TAWASUL_TLS_CA_FILE"] == str(config.tls_ca_file)
        cert.verify_directly_issued_by(_cert(config.tls_ca_file))
