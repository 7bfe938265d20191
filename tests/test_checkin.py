"""Check-in: Authenticate, TokenUpdate, CheckOut and the newer messages, over real requests."""

import plistlib

import pytest

from certs.models import IssuedCertificate
from commands.models import QueuedCommand, Status
from devices.models import Device
from mdm_portal.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_authenticate_records_pending_device_and_binds_certificate(device):
    response = device.authenticate()
    assert response.status == 200
    stored = Device.objects.get(udid=device.udid)
    assert stored.state == Device.State.PENDING
    assert stored.serial_number == "F2LXK0ABCDEF"
    assert stored.os_version == "17.4"
    assert stored.enrolled_at is None
    record = IssuedCertificate.objects.get(binding__device=stored)
    assert record.binding.bound_at is not None
    assert AuditEntry.objects.filter(action="device.authenticated", target=device.udid).exists()


def test_token_update_manages_device_and_queues_initial_inventory(device):
    device.authenticate()
    assert device.token_update().status == 200
    stored = Device.objects.get(udid=device.udid)
    assert stored.state == Device.State.ENROLLED
    assert stored.push_token == device.token.hex()
    assert stored.push_magic == device.push_magic
    assert stored.topic == device.topic
    assert stored.unlock_token == device.unlock_token
    queued = list(QueuedCommand.objects.filter(device=stored).order_by("id"))
    assert [row.request_type for row in queued] == [
        "DeviceInformation",
        "SecurityInfo",
        "ProfileList",
        "InstalledApplicationList",
        "CertificateList",
    ]
    queries = queued[0].command.command_dict()["Queries"]
    assert {"UDID", "SerialNumber", "WiFiMAC", "OSVersion"} <= set(queries)


def test_unlock_token_is_encrypted_at_rest(device):
    from django.db import connection

    device.enroll()
    with connection.cursor() as cursor:
        cursor.execute("SELECT unlock_token FROM devices_device WHERE udid = %s", [device.udid])
        (raw,) = cursor.fetchone()
    assert raw is not None
    assert device.unlock_token not in bytes(raw)


def test_second_token_update_queues_nothing_more(enrolled):
    before = QueuedCommand.objects.count()
    assert enrolled.token_update(Token=b"\x01" * 32).status == 200
    assert QueuedCommand.objects.count() == before
    assert Device.objects.get(udid=enrolled.udid).push_token == ("01" * 32)


def test_initial_inventory_respects_access_rights(device):
    device.authenticate()
    Device.objects.filter(udid=device.udid).update(access_rights=16 | 1)
    device.token_update()
    rows = QueuedCommand.objects.filter(device__udid=device.udid).order_by("id")
    assert [r.request_type for r in rows] == ["DeviceInformation", "ProfileList", "CertificateList"]
    queries = set(rows[0].command.command_dict()["Queries"])
    assert "SerialNumber" in queries and "UDID" in queries
    assert "WiFiMAC" not in queries  # network information needs bit 32


def test_repeated_authenticate_starts_new_enrollment_and_cancels_old_commands(enrolled):
    pending = QueuedCommand.objects.filter(device__udid=enrolled.udid)
    assert pending.filter(status=Status.QUEUED).count() == 5
    assert enrolled.authenticate().status == 200
    stored = Device.objects.get(udid=enrolled.udid)
    assert stored.state == Device.State.PENDING
    assert stored.enrollment_count == 2
    assert stored.push_token == "" and stored.unlock_token is None
    assert pending.filter(status=Status.CANCELED).count() == 5  # kept in history
    assert enrolled.token_update().status == 200
    assert pending.filter(status=Status.QUEUED).count() == 5  # the new enrollment's inventory


def test_token_update_before_authenticate_is_401(device):
    assert device.token_update().status == 401
    assert not Device.objects.filter(udid=device.udid).exists()


def test_checkout_then_every_request_is_401_until_authenticate(enrolled):
    assert enrolled.checkin("CheckOut", Topic=enrolled.topic).status == 200
    stored = Device.objects.get(udid=enrolled.udid)
    assert stored.state == Device.State.CHECKED_OUT
    assert not QueuedCommand.objects.filter(device=stored, status=Status.QUEUED).exists()
    assert enrolled.idle().status == 401
    assert enrolled.token_update().status == 401
    assert enrolled.checkin("GetBootstrapToken").status == 401
    assert enrolled.authenticate().status == 200
    assert enrolled.token_update().status == 200
    assert enrolled.idle().status == 200


def test_bootstrap_token_escrow_round_trip(enrolled):
    empty = enrolled.checkin("GetBootstrapToken")
    assert empty.status == 200 and empty.body == b""
    assert enrolled.checkin("SetBootstrapToken", BootstrapToken=b"bootstrap!").status == 200
    got = enrolled.checkin("GetBootstrapToken")
    assert got.status == 200
    assert plistlib.loads(got.body) == {"BootstrapToken": b"bootstrap!"}
    assert enrolled.checkin("SetBootstrapToken").status == 200  # missing token: remove it
    assert enrolled.checkin("GetBootstrapToken").body == b""


def test_bootstrap_token_encrypted_and_cleared_by_authenticate(enrolled):
    from django.db import connection

    enrolled.checkin("SetBootstrapToken", BootstrapToken=b"secret-bootstrap")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bootstrap_token FROM devices_device WHERE udid = %s", [enrolled.udid]
        )
        (raw,) = cursor.fetchone()
    assert b"secret-bootstrap" not in bytes(raw)
    enrolled.authenticate()
    enrolled.token_update()
    assert enrolled.checkin("GetBootstrapToken").body == b""


def test_user_authenticate_is_declined_with_410(enrolled):
    response = enrolled.checkin("UserAuthenticate", UserID="A1B2C3")
    assert response.status == 410


def test_not_yet_supported_messages_get_a_clear_4xx(enrolled):
    # (DeclarativeManagement is answered: tests/test_declarative_protocol.py.)
    response = enrolled.checkin("GetToken", TokenServiceType="com.apple.maid")
    assert response.status == 400
    assert b"not supported" in response.body


def test_unknown_message_type_is_400(enrolled):
    response = enrolled.checkin("Reboot")
    assert response.status == 400
    assert b"unknown MessageType" in response.body


@pytest.mark.parametrize(
    ("message_type", "keys", "problem"),
    [
        ("Authenticate", {}, b"required key Topic"),
        ("Authenticate", {"Topic": 42}, b"key Topic must be <string>"),
        ("Authenticate", {"Topic": "com.apple.mgmt.x", "SerialNumber": b"x"}, b"SerialNumber"),
        ("TokenUpdate", {"Topic": "com.apple.mgmt.x", "PushMagic": "m"}, b"required key Token"),
        ("TokenUpdate", {"Topic": "t", "Token": "not-data", "PushMagic": "m"}, b"<data>"),
        ("TokenUpdate", {"Topic": "t", "Token": b"t", "PushMagic": 1}, b"PushMagic"),
        (
            "TokenUpdate",
            {"Topic": "t", "Token": b"t", "PushMagic": "m", "UnlockToken": "u"},
            b"UnlockToken",
        ),
        (
            "TokenUpdate",
            {"Topic": "t", "Token": b"t", "PushMagic": "m", "AwaitingConfiguration": 1},
            b"AwaitingConfiguration",
        ),
        ("CheckOut", {}, b"required key Topic"),
        ("SetBootstrapToken", {"BootstrapToken": "text"}, b"BootstrapToken"),
        ("UserAuthenticate", {}, b"required key UserID"),
    ],
)
def test_missing_or_wrongly_typed_keys_are_400_and_change_nothing(
    enrolled, message_type, keys, problem
):
    before = Device.objects.values().get(udid=enrolled.udid)
    response = enrolled.checkin(message_type, **keys)
    assert response.status == 400
    assert problem in response.body
    assert Device.objects.values().get(udid=enrolled.udid) == before


def test_missing_udid_is_400(device):
    body = {"MessageType": "Authenticate", "Topic": device.topic}
    response = device.put("/mdm/checkin", body)
    assert response.status == 400
    assert b"UDID" in response.body


def test_topic_must_match_active_push_certificate(device):
    from certs.models import PushCertificate

    PushCertificate.objects.create(
        topic="com.apple.mgmt.Other",
        certificate_pem="-",
        private_key_pem=b"k",
        not_after="2030-01-01T00:00:00Z",
    )
    response = device.authenticate()
    assert response.status == 400
    assert b"push certificate" in response.body
    assert not Device.objects.filter(udid=device.udid).exists()
    PushCertificate.objects.update(topic=device.topic)
    assert device.authenticate().status == 200


def test_checkin_messages_also_accepted_on_server_url(device):
    assert device.checkin("Authenticate", path="/mdm/connect", Topic=device.topic).status == 200
    assert (
        device.checkin(
            "TokenUpdate", path="/mdm/connect", Topic=device.topic, Token=b"tok", PushMagic="pm"
        ).status
        == 200
    )
    assert Device.objects.get(udid=device.udid).state == Device.State.ENROLLED


def test_device_takes_rights_and_group_from_the_enrollment_of_its_certificate(send, ca):
    from commands.queue import EnqueueError, enqueue
    from devices.models import DeviceGroup
    from enrollment.models import Enrollment
    from tests.conftest import new_identity
    from tests.simulator import SimulatedDevice

    group = DeviceGroup.objects.create(name="Kiosks")
    enrollment = Enrollment.objects.create(name="Kiosk", access_rights=1 | 16, group=group)
    from enrollment.links import device_enrollment, link_certificate

    certificate, key, record = new_identity()
    link_certificate(record, enrollment)
    sim = SimulatedDevice(send=send, certificate=certificate, key=key)
    sim.enroll()
    stored = Device.objects.get(udid=sim.udid)
    assert device_enrollment(stored) == enrollment
    assert stored.access_rights == 1 | 16
    assert stored.group == group
    # The initial inventory followed the enrollment's rights, and the queue enforces them.
    queued = set(QueuedCommand.objects.filter(device=stored).values_list("request_type", flat=True))
    assert queued == {"DeviceInformation", "ProfileList", "CertificateList"}
    with pytest.raises(EnqueueError, match="AccessRights 8"):
        enqueue(stored, "EraseDevice")
