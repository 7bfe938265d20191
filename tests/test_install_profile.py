"""InstallProfile: the profile is signed by the portal, and can be encrypted for one device."""

import plistlib
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from certs.ca import PROFILE_SIGNING, active_ca, ca_certificate
from certs.cms import signed_content, verify_detached
from certs.models import ServerIdentity
from commands.models import QueuedCommand
from commands.queue import EnqueueError, enqueue
from devices.models import Device
from enrollment.profiles import load_profile

pytestmark = pytest.mark.django_db

PROFILE = {
    "PayloadType": "Configuration",
    "PayloadVersion": 1,
    "PayloadIdentifier": "com.example.wifi",
    "PayloadUUID": "0B7A7D37-6B37-4C06-9C1F-2E2B5C5C1D11",
    "PayloadDisplayName": "Office Wi-Fi",
    "PayloadContent": [
        {
            "PayloadType": "com.apple.wifi.managed",
            "PayloadVersion": 1,
            "PayloadIdentifier": "com.example.wifi.payload",
            "PayloadUUID": "4E0D2C3B-9A1B-4D52-8E7A-6C6F2F4E1A22",
            "SSID_STR": "Office",
            "Password": "not-for-everyone",
        }
    ],
}


def delivered_payload(sim) -> bytes:
    QueuedCommand.objects.filter(device__udid=sim.udid).exclude(
        request_type="InstallProfile"
    ).delete()
    return sim.idle().plist()["Command"]["Payload"]


def test_profile_is_signed_by_the_portal_and_openssl_accepts_it(enrolled, tmp_path):
    device = Device.objects.get(udid=enrolled.udid)
    enqueue(device, "InstallProfile", {"Payload": plistlib.dumps(PROFILE)})
    payload = delivered_payload(enrolled)
    assert plistlib.loads(signed_content(payload)) == PROFILE
    signed = tmp_path / "profile.mobileconfig"
    signed.write_bytes(payload)
    out = subprocess.run(
        ["openssl", "smime", "-verify", "-inform", "DER", "-noverify", "-in", str(signed)],
        capture_output=True,
        check=True,
    )
    assert plistlib.loads(out.stdout) == PROFILE
    # The signer is the portal's profile-signing identity, issued by our CA.
    signer = verify_detached(payload, signed_content(payload))
    expected = ServerIdentity.objects.get(purpose=PROFILE_SIGNING).certificate_pem.encode()
    assert signer == x509.load_pem_x509_certificate(expected)
    signer.verify_directly_issued_by(ca_certificate(active_ca()))


def test_profile_encrypted_for_one_device_only_that_device_reads(enrolled):
    device = Device.objects.get(udid=enrolled.udid)
    enqueue(
        device,
        "InstallProfile",
        {"Payload": plistlib.dumps(PROFILE)},
        options={"encrypt": True},
    )
    profile = plistlib.loads(signed_content(delivered_payload(enrolled)))
    assert "PayloadContent" not in profile
    assert b"not-for-everyone" not in plistlib.dumps(profile)
    content = pkcs7.pkcs7_decrypt_der(
        profile["EncryptedPayloadContent"], enrolled.certificate, enrolled.key, []
    )
    assert plistlib.loads(content) == PROFILE["PayloadContent"]


def test_encryption_is_for_exactly_one_device(make_device):
    sims = [make_device() for _ in range(2)]
    for sim in sims:
        sim.enroll()
    with pytest.raises(EnqueueError, match="exactly one device"):
        enqueue(
            Device.objects.all(),
            "InstallProfile",
            {"Payload": plistlib.dumps(PROFILE)},
            options={"encrypt": True},
        )


def test_an_ec_identity_cannot_receive_an_encrypted_profile(make_device):
    sim = make_device(key_kind="ec")
    sim.enroll()
    with pytest.raises(EnqueueError, match="not RSA"):
        enqueue(
            Device.objects.get(udid=sim.udid),
            "InstallProfile",
            {"Payload": plistlib.dumps(PROFILE)},
            options={"encrypt": True},
        )


def test_an_already_signed_profile_is_read_and_signed_again(enrolled):
    from certs.cms import sign
    from tests.conftest import new_identity

    certificate, key, _ = new_identity("vendor")
    vendor_signed = sign(plistlib.dumps(PROFILE), certificate, key)
    device = Device.objects.get(udid=enrolled.udid)
    enqueue(device, "InstallProfile", {"Payload": vendor_signed})
    assert load_profile(delivered_payload(enrolled)) == PROFILE


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"plain text", "not a property list"),
        (plistlib.dumps({"PayloadType": "com.apple.wifi.managed"}), "not a configuration profile"),
        (plistlib.dumps(["a", "list"]), "not a configuration profile"),
        (b"\x30\x03\x02\x01\x00", "signed profile cannot be read"),
    ],
)
def test_what_is_not_a_profile_is_refused(enrolled, payload, problem):
    with pytest.raises(EnqueueError, match=problem):
        enqueue(Device.objects.get(udid=enrolled.udid), "InstallProfile", {"Payload": payload})


def test_unsigned_when_asked(enrolled):
    device = Device.objects.get(udid=enrolled.udid)
    raw = plistlib.dumps(PROFILE)
    enqueue(device, "InstallProfile", {"Payload": raw}, options={"sign": False})
    assert delivered_payload(enrolled) == raw
