"""A device enrolls end to end: enrollment link -> signed profile -> SCEP -> check-in ->
a signed and encrypted InstallProfile that only it can read."""

import datetime as dt
import plistlib
import subprocess
from io import StringIO

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7
from django.core.management import call_command
from django.utils import timezone

from certs.cms import signed_content
from certs.models import IssuedCertificate, PushCertificate
from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, DeviceGroup
from enrollment.links import device_enrollment, enrollment_of
from simulator import scep as scep_client
from tests.simulator import TOPIC, SimulatedDevice

pytestmark = pytest.mark.django_db

SECRET_WIFI = {
    "PayloadType": "Configuration",
    "PayloadVersion": 1,
    "PayloadIdentifier": "com.example.wifi",
    "PayloadUUID": "0B7A7D37-6B37-4C06-9C1F-2E2B5C5C1D11",
    "PayloadContent": [
        {
            "PayloadType": "com.apple.wifi.managed",
            "PayloadVersion": 1,
            "PayloadIdentifier": "com.example.wifi.payload",
            "PayloadUUID": "4E0D2C3B-9A1B-4D52-8E7A-6C6F2F4E1A22",
            "SSID_STR": "Office",
            "Password": "only-this-device",
        }
    ],
}


def scep_enroll(client, scep: dict):
    """The device's SCEP exchange through Django's test client."""
    path = "/" + scep["URL"].split("://", 1)[1].split("/", 1)[1]  # the path, for the client

    def get(params):
        answer = client.get(path, params)
        return answer.status_code, answer["Content-Type"], answer.content

    def post(params, body):
        answer = client.post(
            f"{path}?operation={params['operation']}",
            body,
            content_type="application/x-pki-message",
        )
        return answer.status_code, answer["Content-Type"], answer.content

    return scep_client.enroll_with_payload(get, post, scep)


def test_enrollment_link_to_encrypted_profile(client, ca, send, tmp_path):
    PushCertificate.objects.create(
        topic=TOPIC,
        certificate_pem="-",
        private_key_pem=b"k",
        not_after=timezone.now() + dt.timedelta(days=300),
    )
    out = StringIO()
    call_command(
        "mdm_enrollment",
        "create",
        "--name",
        "Staff phones",
        "--access-rights",
        "8191",
        "--group",
        "Staff",
        stdout=out,
    )
    token = out.getvalue().strip().rstrip("/").rsplit("/", 1)[-1].split()[0]

    # 1. The link serves a signed profile that openssl accepts.
    download = client.get(f"/enroll/{token}/profile")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/x-apple-aspen-config"
    signed = tmp_path / "enroll.mobileconfig"
    signed.write_bytes(download.content)
    verified = subprocess.run(
        ["openssl", "smime", "-verify", "-inform", "DER", "-noverify", "-in", str(signed)],
        capture_output=True,
        check=True,
    ).stdout
    profile = plistlib.loads(verified)
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    scep, mdm = payloads["com.apple.security.scep"], payloads["com.apple.mdm"]
    assert mdm["IdentityCertificateUUID"] == scep["PayloadUUID"]
    assert mdm["Topic"] == TOPIC

    # 2. SCEP with the device's own key and the profile's one-time challenge.
    certificate, key = scep_enroll(client, scep["PayloadContent"])
    record = IssuedCertificate.objects.get(serial=format(certificate.serial_number, "x"))
    assert enrollment_of(record).name == "Staff phones"

    # 3. Check-in with that identity (Mdm-Signature), landing in the enrollment's group.
    device = SimulatedDevice(send=send, certificate=certificate, key=key)
    device.enroll()
    stored = Device.objects.get(udid=device.udid)
    assert device_enrollment(stored).name == "Staff phones"
    assert stored.group == DeviceGroup.objects.get(name="Staff")
    QueuedCommand.objects.filter(device=stored).delete()

    # 4. A signed profile encrypted for this device: it alone can read the content.
    command = enqueue(
        stored,
        "InstallProfile",
        {"Payload": plistlib.dumps(SECRET_WIFI)},
        options={"encrypt": True},
    )
    delivered = device.idle().plist()
    assert delivered["CommandUUID"] == command.uuid
    received = plistlib.loads(signed_content(delivered["Command"]["Payload"]))
    assert b"only-this-device" not in plistlib.dumps(received)
    content = pkcs7.pkcs7_decrypt_der(received["EncryptedPayloadContent"], certificate, key, [])
    assert plistlib.loads(content) == SECRET_WIFI["PayloadContent"]
    assert device.report(command.uuid).status == 200
    assert QueuedCommand.objects.get(command=command).status == Status.ACKNOWLEDGED

    # 5. The profile's challenge was one-time: a second SCEP request with it is refused.
    other_key = scep_client.make_key()
    csr = scep_client.make_scep_csr(other_key, "again", scep["PayloadContent"]["Challenge"])
    signer = scep_client.signer_for(other_key, csr)
    ca_answer = client.get("/scep", {"operation": "GetCACert"})
    ca_cert, recipient = scep_client.split_ca_certs(ca_answer.content, ca_answer["Content-Type"])
    reply = client.post(
        "/scep?operation=PKIOperation",
        scep_client.build_pkcs_req(csr, signer, other_key, recipient),
        content_type="application/x-pki-message",
    )
    status, fail_info, issued, _n, _t = scep_client.read_cert_rep(
        reply.content, signer, other_key, ca_cert
    )
    assert status == scep_client.FAILURE and issued is None
