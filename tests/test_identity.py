"""Device identity: the certificate must chain to our CA, be in date, unrevoked, and bound."""

import base64
import datetime as dt
import plistlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certs.ca import active_ca, ca_certificate, ca_private_key, revoke, sha256_hex
from certs.models import IssuedCertificate
from commands.models import QueuedCommand
from devices.identities import bound_device_id
from devices.models import Device
from tests.conftest import new_identity
from tests.simulator import SimulatedDevice, make_csr, make_key, sign_detached

pytestmark = pytest.mark.django_db

PROXY = {"MDM_CLIENT_CERT_HEADER": "X-Ssl-Client-Cert"}


def snapshot():
    return (
        list(Device.objects.values().order_by("id")),
        list(QueuedCommand.objects.values("id", "status", "sent_count").order_by("id")),
    )


def test_ec_p256_identity_enrolls(make_device):
    sim = make_device(key_kind="ec")
    sim.enroll()
    assert sim.idle().status == 200


@pytest.mark.parametrize("header_format", ["pem", "rfc9440"])
def test_proxy_client_certificate_header(settings, make_device, header_format):
    settings.MDM_CLIENT_CERT_HEADER = PROXY["MDM_CLIENT_CERT_HEADER"]
    sim = make_device(auth="header", header_format=header_format)
    sim.enroll()
    assert sim.idle().plist()["Command"]["RequestType"] == "DeviceInformation"


def test_proxy_header_is_not_trusted_unless_configured(settings, make_device):
    settings.MDM_CLIENT_CERT_HEADER = ""
    sim = make_device(auth="header")
    response = sim.authenticate()
    assert response.status == 403
    assert not Device.objects.filter(udid=sim.udid).exists()


def test_no_identity_at_all_is_403(make_device):
    sim = make_device(auth=None)
    response = sim.authenticate()
    assert response.status == 403
    assert b"no client certificate and no Mdm-Signature" in response.body


def test_signature_over_other_bytes_is_403_and_changes_nothing(enrolled, send):
    before = snapshot()
    signed = plistlib.dumps({"UDID": enrolled.udid, "Status": "Idle"})
    tampered = plistlib.dumps({"UDID": enrolled.udid, "Status": "Idle", "X": "y"})
    headers = {"Content-Type": "application/x-apple-aspen-mdm", "Mdm-Signature": ""}
    headers["Mdm-Signature"] = sign_detached(signed, enrolled.certificate, enrolled.key)
    response = send("/mdm/connect", tampered, headers)
    assert response.status == 403
    assert b"digest does not match" in response.body
    assert snapshot() == before


@pytest.mark.parametrize(
    "signature",
    ["not base64!!", base64.b64encode(b"not a CMS structure").decode(), ""],
)
def test_garbage_signature_is_403(enrolled, send, signature):
    body = plistlib.dumps({"UDID": enrolled.udid, "Status": "Idle"})
    headers = {"Content-Type": "application/x-apple-aspen-mdm"}
    if signature:
        headers["Mdm-Signature"] = signature
    assert send("/mdm/connect", body, headers).status == 403


def _self_signed(key, common_name="rogue"):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def test_certificate_from_another_ca_is_403(ca, send):
    key = make_key()
    sim = SimulatedDevice(send=send, certificate=_self_signed(key), key=key)
    response = sim.authenticate()
    assert response.status == 403
    assert b"does not chain" in response.body


def _ca_signed(key, not_before, not_after):
    ca = active_ca()
    issuer = ca_certificate(ca)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "direct")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_private_key(ca), hashes.SHA256())
    )
    return ca, certificate


def _record(ca, certificate):
    return IssuedCertificate.objects.create(
        authority=ca,
        serial=format(certificate.serial_number, "x"),
        subject="CN=direct",
        sha256=sha256_hex(certificate),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def test_expired_certificate_is_403(ca, send):
    key = make_key()
    now = dt.datetime.now(dt.UTC)
    authority, certificate = _ca_signed(
        key, now - dt.timedelta(days=30), now - dt.timedelta(days=1)
    )
    _record(authority, certificate)
    response = SimulatedDevice(send=send, certificate=certificate, key=key).authenticate()
    assert response.status == 403
    assert b"validity" in response.body


def test_certificate_missing_from_registry_is_403(ca, send):
    key = make_key()
    now = dt.datetime.now(dt.UTC)
    _, certificate = _ca_signed(key, now - dt.timedelta(days=1), now + dt.timedelta(days=1))
    response = SimulatedDevice(send=send, certificate=certificate, key=key).authenticate()
    assert response.status == 403
    assert b"registry" in response.body


def test_revoked_certificate_is_403_and_never_401(enrolled):
    revoke(IssuedCertificate.objects.get(binding__device__udid=enrolled.udid), reason="lost")
    before = snapshot()
    response = enrolled.idle()
    assert response.status == 403
    assert b"revoked" in response.body
    assert snapshot() == before
    assert Device.objects.get(udid=enrolled.udid).state == Device.State.ENROLLED


def test_certificate_bound_to_another_device_is_refused(make_device):
    first, second = make_device(), make_device()
    first.enroll()
    second.enroll()
    before = snapshot()
    # The first device's certificate, claiming the second device's UDID.
    impostor = SimulatedDevice(
        send=first.send, certificate=first.certificate, key=first.key, udid=second.udid
    )
    assert impostor.idle().status == 403
    assert impostor.token_update().status == 403
    assert impostor.authenticate().status == 403
    assert snapshot() == before


def test_unbound_certificate_cannot_speak_for_an_enrolled_device(enrolled, send):
    certificate, key, _ = new_identity()
    stranger = SimulatedDevice(send=send, certificate=certificate, key=key, udid=enrolled.udid)
    response = stranger.idle()
    assert response.status == 403
    assert b"never bound" in response.body


def test_renewed_certificate_issued_to_the_device_binds_to_it(enrolled, send):
    device = Device.objects.get(udid=enrolled.udid)
    certificate, key, record = new_identity(device=device)
    renewed = SimulatedDevice(send=send, certificate=certificate, key=key, udid=enrolled.udid)
    assert renewed.idle().status == 200
    assert bound_device_id(record) == device.pk
    assert enrolled.idle().status == 200  # the earlier certificate still belongs to it


def test_new_enrollment_profile_certificate_binds_on_authenticate(enrolled, send):
    certificate, key, record = new_identity()
    reenrolled = SimulatedDevice(send=send, certificate=certificate, key=key, udid=enrolled.udid)
    reenrolled.enroll()
    assert Device.objects.get(bindings__certificate=record).udid == enrolled.udid
    assert Device.objects.get(udid=enrolled.udid).enrollment_count == 2


def test_issued_certificates_are_recorded_with_unique_serials(ca):
    records = [new_identity(f"d{i}")[2] for i in range(5)]
    assert len({r.serial for r in records}) == 5
    for record in records:
        certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
        assert record.sha256 == sha256_hex(certificate)
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
        certificate.verify_directly_issued_by(ca_certificate(ca))


def test_csr_with_bad_signature_is_refused(ca):
    from certs.ca import CAError, issue_certificate

    csr = make_csr(make_key(), "x")
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # corrupt the signature
    with pytest.raises(CAError):
        issue_certificate(x509.load_der_x509_csr(bytes(der)))
