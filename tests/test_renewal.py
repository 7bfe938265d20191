"""Device identities close to expiry get a renewal profile bound to the device."""

import datetime as dt
import plistlib
from io import StringIO

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7
from django.core.management import call_command
from django.utils import timezone

from certs.challenges import consume_challenge
from certs.cms import signed_content
from certs.models import IssuedCertificate, PushCertificate
from commands.models import QueuedCommand
from devices.models import Device
from enrollment.links import link_certificate
from enrollment.models import Enrollment
from enrollment.renewal import renew_expiring_identities
from enrollment.tasks import renew_device_identities
from tests.conftest import new_identity
from tests.simulator import TOPIC, SimulatedDevice

pytestmark = pytest.mark.django_db


@pytest.fixture
def enrolled_via_enrollment(ca, send):
    PushCertificate.objects.create(
        topic=TOPIC,
        certificate_pem="-",
        private_key_pem=b"k",
        not_after=timezone.now() + dt.timedelta(days=300),
    )
    enrollment = Enrollment.objects.create(name="Staff", access_rights=8191)
    certificate, key, record = new_identity()
    link_certificate(record, enrollment)
    sim = SimulatedDevice(send=send, certificate=certificate, key=key)
    sim.enroll()
    QueuedCommand.objects.filter(device__udid=sim.udid).delete()
    return sim, record


def expire_in(record, days: int) -> None:
    IssuedCertificate.objects.filter(pk=record.pk).update(
        not_after=timezone.now() + dt.timedelta(days=days)
    )


def test_expiring_identity_gets_an_encrypted_renewal_profile_bound_to_the_device(
    enrolled_via_enrollment,
):
    sim, record = enrolled_via_enrollment
    assert renew_expiring_identities(30) == {"renewed": 0, "failed": 0}  # not due yet
    expire_in(record, 10)
    assert renew_expiring_identities(30) == {"renewed": 1, "failed": 0}
    assert renew_expiring_identities(30) == {"renewed": 0, "failed": 0}  # already on its way

    command = sim.idle().plist()["Command"]
    assert command["RequestType"] == "InstallProfile"
    profile = plistlib.loads(signed_content(command["Payload"]))
    content = plistlib.loads(
        pkcs7.pkcs7_decrypt_der(profile["EncryptedPayloadContent"], sim.certificate, sim.key, [])
    )
    scep = next(p for p in content if p["PayloadType"] == "com.apple.security.scep")
    accepted, challenge = consume_challenge(scep["PayloadContent"]["Challenge"])
    assert accepted
    assert challenge.enrollment_link.device == Device.objects.get(udid=sim.udid)
    # A renewal counts no use of the enrollment link.
    assert Enrollment.objects.get().uses == 0


def test_devices_without_an_enrollment_are_reported_not_renewed(enrolled):
    record = IssuedCertificate.objects.get(binding__device__udid=enrolled.udid)
    expire_in(record, 5)
    assert renew_expiring_identities(30) == {"renewed": 0, "failed": 1}


def test_task_and_command(enrolled_via_enrollment):
    sim, record = enrolled_via_enrollment
    expire_in(record, 3)
    assert renew_device_identities() == {"renewed": 1, "failed": 0}
    assert QueuedCommand.objects.filter(command__identity_renewal__isnull=False).count() == 1
    out = StringIO()
    call_command("mdm_enrollment", "renew", "--device", sim.udid, stdout=out)
    assert "renewal profile queued" in out.getvalue()
