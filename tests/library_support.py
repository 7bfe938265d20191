"""What the staff-page tests of the library, the enrollments and the groups share: a
profile with secrets in it, a small fleet, and helpers that post from a known address and read
the audit log, the queue and the errors next to a field."""

import datetime as dt
import plistlib
import re

import pytest
from django.utils import timezone

from certs.models import PushCertificate
from commands.models import QueuedCommand, Status
from devices.models import Device, DeviceGroup, InstalledProfile
from enrollment.library import upload_profile
from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry

ADDRESS = "198.51.100.23"
WIFI_PASSWORD = "correct-horse-wifi-42"


def wifi_profile(identifier="com.example.wifi", uuid="0B1C2D3E-0000-4000-8000-00000000A001"):
    return {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": uuid,
        "PayloadDisplayName": "Office Wi-Fi",
        "PayloadDescription": "Joins the office network.",
        "PayloadContent": [
            {
                "PayloadType": "com.apple.wifi.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": identifier + ".payload",
                "PayloadUUID": "0B1C2D3E-0000-4000-8000-00000000A002",
                "PayloadDisplayName": "Wi-Fi (Office)",
                "SSID_STR": "Office",
                "EncryptionType": "WPA2",
                "Password": WIFI_PASSWORD,
                "AutoJoin": True,
                "EAPClientConfiguration": {"UserName": "alice", "UserPassword": "eap-secret-99"},
                "PayloadCertificateAnchorUUID": ["0B1C2D3E-0000-4000-8000-00000000A003"],
            },
            {
                "PayloadType": "com.apple.security.pkcs12",
                "PayloadVersion": 1,
                "PayloadIdentifier": identifier + ".identity",
                "PayloadUUID": "0B1C2D3E-0000-4000-8000-00000000A004",
                "Password": "p12-secret",
                "PayloadContent": b"\x30\x82" + b"\x01" * 300,
            },
        ],
    }


def mobileconfig(**kwargs) -> bytes:
    return plistlib.dumps(wifi_profile(**kwargs))


def enroll_as(make_device, name: str, serial: str):
    sim = make_device()
    assert sim.authenticate(DeviceName=name, SerialNumber=serial).status == 200
    assert sim.token_update().status == 200
    device = Device.objects.get(udid=sim.udid)
    # Only what the library queues matters here: drop the initial inventory.
    QueuedCommand.objects.filter(device=device).delete()
    return device


@pytest.fixture(name="fleet")
def fleet_fixture(make_device):
    return [enroll_as(make_device, f"iPad {n}", f"DMPX{n:04d}ABCD") for n in range(1, 4)]


@pytest.fixture(name="library_profile")
def library_profile_fixture(ca):
    return upload_profile(mobileconfig(), uploaded_by="tests")


@pytest.fixture(name="group")
def group_fixture(db):
    return DeviceGroup.objects.create(name="Sales", description="Sales team iPads")


@pytest.fixture(name="enrollment")
def enrollment_fixture(db, group):
    return Enrollment.objects.create(name="Staff iPads", access_rights=8191, group=group)


@pytest.fixture(name="push")
def push_fixture(db):
    return PushCertificate.objects.create(
        topic="com.apple.mgmt.External.test",
        certificate_pem="-",
        private_key_pem=b"k",
        not_after=timezone.now() + dt.timedelta(days=300),
    )


def post(client, path, data=None, **extra):
    return client.post(path, data or {}, REMOTE_ADDR=ADDRESS, **extra)


def audited(action: str) -> AuditEntry:
    entry = AuditEntry.objects.filter(action=action).latest("id")
    assert entry.address == ADDRESS, entry
    return entry


def queued(request_type: str) -> list[str]:
    """Device names a request type is queued for (still waiting)."""
    return sorted(
        QueuedCommand.objects.filter(request_type=request_type, status=Status.QUEUED).values_list(
            "device__device_name", flat=True
        )
    )


def field_errors(html: str, field: str) -> str:
    """The text of the error list rendered next to `field`, in lower case (the page
    capitalises the messages)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    assert match, f"no error next to {field}"
    return match.group(1).lower()


def report_installed(profile, *devices) -> None:
    """As if each device's latest ProfileList reported this version of `profile`."""
    for device in devices:
        InstalledProfile.objects.create(
            device=device,
            identifier=profile.identifier,
            uuid=profile.uuid,
            display_name=profile.name,
            reported_at=timezone.now(),
        )
