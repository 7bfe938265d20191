"""An identity whose key the device attested (ACME device-attest-01) names the device: its
Authenticate must carry the attested UDID and SerialNumber, or it is refused with 403 and
nothing but an audit entry is recorded. Over real requests signed with Mdm-Signature; the
certificates are issued as the ACME server's finalize issues them."""

import pytest

from certs.ca import issue_certificate
from certs.challenges import consume_challenge
from certs.models import IssuedCertificate, ScepChallenge
from devices.identities import bound_device_id
from devices.models import CertificateBinding, Device
from enrollment.links import issue_enrollment_challenge
from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry
from tests.simulator import SimulatedDevice, make_csr, make_key

pytestmark = pytest.mark.django_db

UDID = "00008120-001A4C2E0A3B801E"
SERIAL = "F2LXK0ABCDEF"  # what SimulatedDevice.authenticate sends


def attested_device(send, *, udid=UDID, serial=SERIAL, attested_udid=UDID, **keys):
    """A device whose certificate's attestation named `attested_udid` and `serial`."""
    key = make_key("ec")
    certificate, record = issue_certificate(
        make_csr(key, "MDM Identity 1A2B3C4D"),
        delivery="acme",
        attested={"udid": attested_udid, "serial": serial},
    )
    return SimulatedDevice(send=send, certificate=certificate, key=key, udid=udid, **keys), record


def refusals() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="device.authenticate_refused"))


def test_the_attested_device_is_accepted_and_bound(ca, send):
    sim, record = attested_device(send)
    response = sim.authenticate()
    assert response.status == 200, response.body
    device = Device.objects.get(udid=UDID)
    assert device.serial_number == SERIAL
    assert bound_device_id(record) == device.pk
    assert sim.token_update().status == 200
    assert Device.objects.get(udid=UDID).state == Device.State.ENROLLED
    assert refusals() == []


def test_another_udid_is_refused_and_nothing_is_recorded(ca, send):
    sim, record = attested_device(send, udid="00008120-00FFFFFFFFFFFFFF")
    response = sim.authenticate()
    assert response.status == 403
    assert b"device attestation" in response.body and b"UDID" in response.body
    assert not Device.objects.exists()
    assert not CertificateBinding.objects.exists()
    assert not AuditEntry.objects.filter(action="device.authenticated").exists()
    (entry,) = refusals()
    assert entry.target == "00008120-00FFFFFFFFFFFFFF"
    assert entry.details["attested_udid"] == UDID
    assert entry.details["certificate"] == record.sha256
    assert "UDID" in entry.details["reason"]
    # Nothing else of it gets through: the next messages find no device bound to it.
    assert sim.token_update().status in (401, 403)
    assert not Device.objects.exists()


def test_another_serial_is_refused(ca, send):
    sim, _record = attested_device(send)
    response = sim.authenticate(SerialNumber="C02ZZ9ZZZZZZ")
    assert response.status == 403 and b"SerialNumber" in response.body
    assert not Device.objects.exists()
    (entry,) = refusals()
    assert entry.details["serial_number"] == "C02ZZ9ZZZZZZ"
    assert entry.details["attested_serial"] == SERIAL


def test_an_attested_serial_needs_the_message_to_carry_one(ca, send):
    sim, _record = attested_device(send)
    response = sim.checkin("Authenticate", Topic=sim.topic, DeviceName="x", Model="m",
                           ModelName="iPhone")  # fmt: skip
    assert response.status == 403 and b"serial number" in response.body
    assert not Device.objects.exists()
    assert len(refusals()) == 1


def test_without_an_attested_serial_the_udid_alone_decides(ca, send):
    sim, _record = attested_device(send, serial="")
    response = sim.checkin("Authenticate", Topic=sim.topic, DeviceName="x", Model="m",
                           ModelName="iPhone")  # fmt: skip
    assert response.status == 200, response.body
    assert Device.objects.filter(udid=UDID).exists()


def test_case_does_not_matter(ca, send):
    sim, _record = attested_device(send, udid=UDID.lower())
    assert sim.authenticate(SerialNumber=SERIAL.lower()).status == 200


def test_an_enrolled_device_is_left_as_it_was(ca, send, enrolled):
    """A known device that authenticates with an identity attested for another one: refused,
    and the device keeps its state, its token and its enrollment count."""
    before = Device.objects.get(udid=enrolled.udid)
    sim, _record = attested_device(send, udid=enrolled.udid, attested_udid=UDID)
    assert sim.authenticate().status == 403
    after = Device.objects.get(udid=enrolled.udid)
    assert after.state == before.state == Device.State.ENROLLED
    assert after.enrollment_count == before.enrollment_count
    assert (
        after.push_token == before.push_token and after.authenticated_at == before.authenticated_at
    )


def test_the_server_url_refuses_it_too(ca, send):
    sim, _record = attested_device(send, udid="00008120-00FFFFFFFFFFFFFF")
    response = sim.checkin(
        "Authenticate",
        path="/mdm/connect",
        Topic=sim.topic,
        DeviceName="x",
        Model="m",
        ModelName="iPhone",
        SerialNumber=SERIAL,
    )
    assert response.status == 403
    assert not Device.objects.exists()
    assert len(refusals()) == 1


def test_acme_without_attestation_authenticates_as_scep_does(ca, send):
    key = make_key("ec")
    certificate, record = issue_certificate(make_csr(key, "device"), delivery="acme")
    assert record.attested_udid == "" and record.attested_serial == ""
    sim = SimulatedDevice(send=send, certificate=certificate, key=key)
    assert sim.authenticate(SerialNumber="ANYTHING").status == 200
    assert refusals() == []


# --- a renewal over ACME binds only to the device it attests -----------------------------------


def renewal_certificate(device: Device, attested_udid: str) -> IssuedCertificate:
    """What the ACME server's finalize does with a renewal profile's ClientIdentifier."""
    enrollment = Enrollment.objects.create(name="Phones", identity=Enrollment.Identity.ACME)
    identifier = issue_enrollment_challenge(
        enrollment, device=device, purpose=ScepChallenge.Purpose.ACME
    )
    accepted, challenge = consume_challenge(identifier, purpose=ScepChallenge.Purpose.ACME)
    assert accepted
    _certificate, record = issue_certificate(
        make_csr(make_key("ec"), "renewed"),
        challenge=challenge,
        delivery="acme",
        attested={"udid": attested_udid, "serial": device.serial_number},
    )
    return record


def test_a_renewal_attested_by_its_device_binds_to_it(ca, enrolled):
    device = Device.objects.get(udid=enrolled.udid)
    record = renewal_certificate(device, attested_udid=device.udid)
    assert bound_device_id(record) == device.pk


def test_a_renewal_attested_by_another_device_does_not_bind(ca, enrolled):
    device = Device.objects.get(udid=enrolled.udid)
    record = renewal_certificate(device, attested_udid=UDID)
    assert bound_device_id(record) is None
    entry = AuditEntry.objects.get(action="certificate.binding_refused")
    assert entry.target == device.udid and entry.details["serial"] == record.serial
    assert UDID in entry.details["reason"]
