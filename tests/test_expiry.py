"""Certificate expiry: the inventory of every certificate the portal depends on, and renewal."""

import datetime as dt
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.db import connection
from django.test.utils import CaptureQueriesContext

from certs.ca import PROFILE_SIGNING, ensure_server_identity, issue_certificate
from certs.expiry import certificate_inventory
from certs.models import IssuedCertificate, PushCertificate
from devices.identities import bind, identities_due_for_renewal
from devices.models import CertificateBinding, Device
from tests.simulator import make_csr, make_key

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)


def at(days: float) -> dt.datetime:
    return NOW + dt.timedelta(days=days)


def device(state: str = "enrolled") -> Device:
    return Device.objects.create(udid=str(uuid.uuid4()).upper(), state=state, topic="t")


def identity(dev: Device | None, not_after: dt.datetime, **fields) -> IssuedCertificate:
    """A registry row as our CA records it (the certificate itself is not needed here),
    bound to `dev` unless None."""
    record = IssuedCertificate.objects.create(
        authority_id=fields.pop("authority_id"),
        serial=uuid.uuid4().hex,
        subject=f"CN={dev.udid if dev else 'unbound'}",
        sha256=uuid.uuid4().hex + uuid.uuid4().hex,
        certificate_pem="-",
        not_before=NOW - dt.timedelta(days=300),
        not_after=not_after,
        **fields,
    )
    if dev is not None:
        bind(record, dev)
    return record


def push_certificate(not_after: dt.datetime) -> PushCertificate:
    return PushCertificate.objects.create(
        topic="com.apple.mgmt.External.expiry",
        certificate_pem="-",
        private_key_pem=b"k",
        subject="CN=APSP:expiry",
        not_after=not_after,
    )


def by_kind(entries, kind):
    return [e for e in entries if e["kind"] == kind]


@pytest.mark.parametrize(
    ("days", "days_left", "severity", "threshold"),
    [
        (45.5, 45, "ok", None),
        (30.5, 30, "notice", 30),
        (20, 20, "notice", 30),
        (14.2, 14, "warning", 14),
        (10, 10, "warning", 14),
        (6.9, 6, "warning", 7),
        (1.5, 1, "critical", 1),
        (0.25, 0, "critical", 1),
        (-0.25, -1, "expired", None),
        (-10, -10, "expired", None),
    ],
)
def test_days_left_and_severity_of_the_push_certificate(ca, days, days_left, severity, threshold):
    push_certificate(at(days))
    (push,) = by_kind(certificate_inventory(now=NOW), "push")
    assert push["name"] == "com.apple.mgmt.External.expiry"
    assert push["not_after"] == at(days)
    assert (push["days_left"], push["severity"], push["threshold"]) == (
        days_left,
        severity,
        threshold,
    )


def test_thresholds_come_from_settings(ca, settings):
    settings.MDM_EXPIRY_WARNING_DAYS = [10, 60]
    push_certificate(at(50))
    assert by_kind(certificate_inventory(now=NOW), "push")[0]["severity"] == "notice"
    settings.MDM_EXPIRY_WARNING_DAYS = "90,50,5"
    entry = by_kind(certificate_inventory(now=NOW), "push")[0]
    assert (entry["severity"], entry["threshold"]) == ("warning", 50)


def test_inventory_lists_push_ca_signing_and_device_identities(ca):
    signing = ensure_server_identity(PROFILE_SIGNING)
    push_certificate(at(20))
    enrolled = device()
    identity(enrolled, at(5.5), authority_id=ca.pk)
    checked_out = device("checked_out")
    identity(checked_out, at(100), authority_id=ca.pk)
    identity(None, at(3), authority_id=ca.pk)  # never bound: not a device's identity
    now = dt.datetime.now(dt.UTC)

    entries = certificate_inventory(now=now)
    kinds = [e["kind"] for e in entries]
    assert sorted(kinds) == sorted(
        ["push", "ca", "server-identity", "device-identity", "device-identity"]
    )
    assert [e["not_after"] for e in entries] == sorted(e["not_after"] for e in entries)

    (ca_entry,) = by_kind(entries, "ca")
    assert ca_entry["name"] == ca.name
    assert f"CN={ca.name}" in ca_entry["subject"]
    assert ca_entry["days_left"] == (ca.not_after - now).days
    assert ca_entry["severity"] == "ok"

    (signing_entry,) = by_kind(entries, "server-identity")
    assert signing_entry["name"] == PROFILE_SIGNING
    assert "MDM Portal profile-signing" in signing_entry["subject"]
    assert signing_entry["days_left"] == (signing.not_after - now).days

    devices = {e["name"]: e for e in by_kind(entries, "device-identity")}
    assert set(devices) == {enrolled.udid, checked_out.udid}
    assert devices[enrolled.udid]["device_state"] == "enrolled"
    assert devices[checked_out.udid]["device_state"] == "checked_out"

    # With NOW pinned the dates of the rows above give exact figures.
    pinned = {e["name"]: e for e in by_kind(certificate_inventory(now=NOW), "device-identity")}
    assert (pinned[enrolled.udid]["days_left"], pinned[enrolled.udid]["severity"]) == (
        5,
        "warning",
    )
    assert pinned[checked_out.udid]["severity"] == "ok"
    assert by_kind(certificate_inventory(now=NOW), "push")[0]["days_left"] == 20


def test_a_real_issued_identity_is_listed_with_its_certificate_dates(ca):
    dev = device()
    certificate, record = issue_certificate(make_csr(make_key(), "dev"), validity_days=10)
    bind(record, dev)
    now = dt.datetime.now(dt.UTC)
    (entry,) = by_kind(certificate_inventory(now=now), "device-identity")
    assert entry["name"] == dev.udid
    assert entry["serial"] == record.serial
    assert entry["subject"] == record.subject
    assert entry["not_after"] == certificate.not_valid_after_utc
    assert entry["days_left"] == 9  # a few moments less than 10 days
    assert (entry["severity"], entry["threshold"]) == ("warning", 14)


def test_only_the_newest_unrevoked_identity_of_a_device_counts(ca):
    dev = device()
    identity(dev, at(3), authority_id=ca.pk)
    renewed = identity(dev, at(365), authority_id=ca.pk)
    (entry,) = by_kind(certificate_inventory(now=NOW), "device-identity")
    assert entry["serial"] == renewed.serial

    renewed.revoked_at = NOW
    renewed.save()
    (entry,) = by_kind(certificate_inventory(now=NOW), "device-identity")
    assert entry["days_left"] == 3


def _chain_certificate(name: str, not_after: dt.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=10))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_tls_chain_file_lists_each_certificate(ca, settings, tmp_path):
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        _chain_certificate("mdm.example.com", at(12.5)) + _chain_certificate("Example CA", at(900))
    )
    settings.MDM_TLS_CERT_FILE = str(chain)
    tls = by_kind(certificate_inventory(now=NOW), "tls")
    assert [(e["subject"], e["days_left"], e["severity"]) for e in tls] == [
        ("CN=mdm.example.com", 12, "warning"),
        ("CN=Example CA", 900, "ok"),
    ]

    settings.MDM_TLS_CERT_FILE = str(tmp_path / "missing.pem")
    (broken,) = by_kind(certificate_inventory(now=NOW), "tls")
    assert broken["severity"] == "error"
    assert "missing.pem" in broken["error"]


def test_no_tls_entry_without_the_setting(ca, settings):
    settings.MDM_TLS_CERT_FILE = None
    assert by_kind(certificate_inventory(now=NOW), "tls") == []


def test_identities_due_for_renewal_are_near_expiry_and_enrolled(ca):
    def make(state: str, not_after: dt.datetime, **fields) -> IssuedCertificate:
        return identity(device(state), not_after, authority_id=ca.pk, **fields)

    due = make("enrolled", at(10))
    due_soon = make("enrolled", at(0.5))
    make("enrolled", at(45))  # not yet
    make("enrolled", at(-1))  # already expired: it can no longer check in to be renewed
    make("pending", at(5))
    make("checked_out", at(5))
    make("enrolled", at(5), revoked_at=NOW)
    renewed_device = device()
    identity(renewed_device, at(5), authority_id=ca.pk)
    identity(renewed_device, at(400), authority_id=ca.pk)  # already renewed
    identity(None, at(5), authority_id=ca.pk)  # never bound

    found = list(identities_due_for_renewal(now=NOW))
    assert [binding.certificate for binding in found] == [due_soon, due]
    assert found[0].device.state == "enrolled"  # loaded with the certificate
    assert [b.certificate for b in identities_due_for_renewal(days=1, now=NOW)] == [due_soon]
    assert len(identities_due_for_renewal(days=60, now=NOW)) == 3


def _fleet(ca, count: int) -> None:
    devices = Device.objects.bulk_create(
        Device(udid=f"FLEET-{count}-{i}", state="enrolled", topic="t") for i in range(count)
    )
    records = IssuedCertificate.objects.bulk_create(
        IssuedCertificate(
            authority=ca,
            serial=uuid.uuid4().hex,
            subject=f"CN={dev.udid}",
            sha256=uuid.uuid4().hex * 2,
            certificate_pem="-",
            not_before=NOW - dt.timedelta(days=300),
            not_after=at(i % 40),
        )
        for i, dev in enumerate(devices)
    )
    CertificateBinding.objects.bulk_create(
        CertificateBinding(certificate=record, device=dev, bound_at=NOW)
        for record, dev in zip(records, devices, strict=True)
    )


def _queries(now) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        entries = certificate_inventory(now=now)
    return len(captured), len(by_kind(entries, "device-identity"))


def test_inventory_query_count_does_not_grow_with_the_fleet(ca):
    ensure_server_identity(PROFILE_SIGNING)
    push_certificate(at(100))
    _fleet(ca, 1)
    small, listed = _queries(NOW)
    assert listed == 1
    _fleet(ca, 50)
    large, listed = _queries(NOW)
    assert listed == 51
    assert large == small
    assert small <= 5

    with CaptureQueriesContext(connection) as captured:
        due = list(identities_due_for_renewal(now=NOW))
        assert all(binding.device.state == "enrolled" for binding in due)
    assert len(captured) == 1
