"""ACME enrollment end to end, over real HTTP against a live portal: simulated devices download
an enrollment profile whose identity is an ACME payload, get their certificate from the portal's
ACME server (/acme/directory) with an Apple-style device attestation (device-attest-01, made by
a test attestation CA the portal trusts through MDM_ACME_ATTESTATION_ROOTS), Authenticate,
TokenUpdate, and answer commands. A device whose attestation names another UDID than the one it
authenticates with is refused; one without an attestation CA does not enroll; an enrollment
that allows ACME without attestation enrolls devices that attest nothing."""

import asyncio
import json
import plistlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certs.models import IssuedCertificate
from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from enrollment.models import Enrollment
from simulator.attestation import AttestationCA
from simulator.device import NO_ATTESTATION_CA, ExchangeFailed, Fleet, SimulatedDevice
from simulator.report import Stats
from simulator.state import new_device
from tests.simulator_support import Portal, in_thread, ready_to_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def acme_enrollment(url: str, *, attestation: bool = True) -> Portal:
    spec = EnrollmentSpec(
        name="ACME fleet" if attestation else "ACME fleet, not attested",
        identity=Enrollment.Identity.ACME,
        acme_attestation=attestation,
        sign_message=True,
    )
    return Portal(url, create_enrollment(spec, by="tests").token)


@pytest.fixture
def acme_portal(live_server, settings, tmp_path):
    """A live portal with an ACME enrollment, trusting a fresh test attestation CA."""
    settings.MDM_PUBLIC_URL = live_server.url
    folder = tmp_path / "attestation-ca"
    authority = AttestationCA.create()
    settings.MDM_ACME_ATTESTATION_ROOTS = str(authority.save(folder))
    ready_to_enroll()
    return acme_enrollment(live_server.url), authority, folder


def identity_record(device: Device) -> IssuedCertificate:
    return IssuedCertificate.objects.get(binding__device=device)


def test_devices_enroll_by_acme_with_attestation_and_answer_commands(acme_portal, tmp_path):
    portal, _authority, folder = acme_portal
    state = tmp_path / "fleet.json"

    stats = portal.run(devices=2, state=str(state), attestation_ca=str(folder))

    assert not stats.failed, stats.as_dict()
    assert stats.enrolled == 2
    assert stats.requests_by_kind["acme"] > 0 and "scep" not in stats.requests_by_kind
    simulated = {d["udid"]: d for d in json.loads(state.read_text())["devices"]}
    devices = Device.objects.all()
    assert set(devices.values_list("udid", flat=True)) == set(simulated)
    for device in devices:
        assert device.state == Device.State.ENROLLED
        assert device.serial_number == simulated[device.udid]["serial"]
        record = identity_record(device)
        assert record.delivery == "acme"
        assert (record.attested_udid, record.attested_serial) == (
            device.udid,
            simulated[device.udid]["serial"],
        )
        # The certificate the device holds is the one the portal issued and bound, for its
        # hardware-bound P-384 key.
        held = x509.load_pem_x509_certificate(simulated[device.udid]["certificate_pem"].encode())
        assert held.public_key().curve.name == ec.SECP384R1().name
        assert record.certificate_pem.strip() == simulated[device.udid]["certificate_pem"].strip()

    # A command queued through the portal's own queue is delivered and answered.
    device = devices.first()
    command = enqueue(device, "DeviceInformation", {"Queries": ["SerialNumber", "UDID"]})
    again = portal.run(devices=2, state=str(state), attestation_ca=str(folder))
    assert not again.failed, again.as_dict()
    assert again.restored == 2 and again.enrolled == 0
    row = QueuedCommand.objects.get(device=device, command=command)
    assert row.status == Status.ACKNOWLEDGED
    answers = plistlib.loads(row.result)["QueryResponses"]
    assert answers == {"SerialNumber": device.serial_number, "UDID": device.udid}


class OtherDeviceAttestation:
    """The test attestation CA, attesting another device's UDID than the one enrolling: what a
    device replaying someone else's attestation, or lying in Authenticate, amounts to."""

    def __init__(self, authority: AttestationCA, udid: str):
        self.authority, self.udid = authority, udid

    def attestation_object(self, public_key, *, udid: str, serial: str, token: str) -> bytes:
        return self.authority.attestation_object(
            public_key, udid=self.udid, serial=serial, token=token
        )


def enroll_one(portal: Portal, attestation_ca) -> tuple[SimulatedDevice, Exception | None]:
    """One simulated device enrolling, outside a fleet run: (the device, what stopped it)."""

    async def attempt():
        fleet = Fleet(
            url=portal.url, token=portal.token, stats=Stats(), attestation_ca=attestation_ca
        )
        device = SimulatedDevice(new_device(0), fleet)
        try:
            await device.enroll()
            return device, None
        except ExchangeFailed as exc:
            return device, exc
        finally:
            await fleet.close()

    return in_thread(asyncio.run, attempt())


def test_a_device_attested_as_another_udid_is_refused_on_authenticate(acme_portal):
    portal, authority, _folder = acme_portal
    other = "00008110-000A1B2C3D4E5F60"

    device, stopped = enroll_one(portal, OtherDeviceAttestation(authority, other))

    assert stopped is not None
    assert dict(device.stats.errors) == {"checkin: Authenticate HTTP 403": 1}
    # ACME issued the certificate (the attestation itself was sound) and recorded what it
    # proved; the portal then refused the device that claimed to be someone else.
    record = IssuedCertificate.objects.get(attested_udid=other)
    assert record.delivery == "acme" and record.attested_serial == device.state.serial
    assert not Device.objects.filter(udid=device.state.udid, state=Device.State.ENROLLED).exists()
    assert not Device.objects.filter(udid=other).exists()


def test_without_an_attestation_ca_a_device_says_what_to_pass(acme_portal):
    portal, _authority, _folder = acme_portal
    stats = portal.run(devices=1)
    assert stats.failed and stats.enroll_failed == 1
    assert dict(stats.errors) == {NO_ATTESTATION_CA: 1}
    assert Device.objects.count() == 0


def test_an_enrollment_without_attestation_enrolls_devices_that_attest_nothing(acme_portal):
    portal = acme_enrollment(acme_portal[0].url, attestation=False)

    stats = portal.run(devices=1)  # no attestation CA: none is asked for

    assert not stats.failed, stats.as_dict()
    device = Device.objects.get()
    assert device.state == Device.State.ENROLLED
    record = identity_record(device)
    assert record.delivery == "acme" and not record.attested_udid and not record.attested_serial
