"""commands.queue.enqueue: one command stored once, fanned out in bulk, refused when it must be."""

import plistlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from commands.models import Command, QueuedCommand
from commands.queue import EnqueueError, enqueue
from devices.models import Device
from mdm_portal.models import AuditEntry

pytestmark = pytest.mark.django_db


def fleet(count: int, **fields) -> None:
    Device.objects.bulk_create(
        Device(udid=f"FLEET-{i:06d}", state=Device.State.ENROLLED, **fields) for i in range(count)
    )


def test_ten_thousand_devices_in_a_handful_of_statements(db):
    fleet(10_000)
    devices = Device.objects.filter(state=Device.State.ENROLLED)
    with CaptureQueriesContext(connection) as queries:
        command = enqueue(devices, "ProfileList", queued_by="tests")
    assert QueuedCommand.objects.filter(command=command).count() == 10_000
    assert Command.objects.count() == 1
    assert command.device_count == 10_000
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) <= 12, statements


def test_command_is_stored_once_with_who_and_when(db):
    fleet(3)
    command = enqueue(Device.objects.all(), "DeviceLock", {"Message": "hi"}, queued_by="alice")
    stored = Command.objects.get(uuid=command.uuid)
    assert stored.queued_by == "alice"
    assert stored.created_at is not None
    assert plistlib.loads(bytes(stored.payload)) == {"RequestType": "DeviceLock", "Message": "hi"}
    assert AuditEntry.objects.get(action="command.enqueued").details["devices"] == 3


def test_unmanaged_devices_are_refused_and_nothing_queued(db):
    fleet(2)
    Device.objects.create(udid="PENDING-1", state=Device.State.PENDING)
    with pytest.raises(EnqueueError, match="not managed.*PENDING-1"):
        enqueue(Device.objects.all(), "ProfileList")
    assert not Command.objects.exists()
    assert not QueuedCommand.objects.exists()


def test_access_rights_refusal_names_the_problem(db):
    fleet(2, access_rights=1 | 16)
    with pytest.raises(EnqueueError, match="EraseDevice needs AccessRights 8"):
        enqueue(Device.objects.all(), "EraseDevice")
    with pytest.raises(EnqueueError, match="AccessRights do not allow WiFiMAC"):
        enqueue(Device.objects.all(), "DeviceInformation", {"Queries": ["WiFiMAC"]})
    enqueue(Device.objects.all(), "DeviceInformation", {"Queries": ["SerialNumber"]})
    assert QueuedCommand.objects.count() == 2


def test_unencodable_payload_is_refused(db):
    fleet(1)
    with pytest.raises(EnqueueError, match="plist"):
        enqueue(Device.objects.all(), "Settings", {"Settings": [None]})
    assert not QueuedCommand.objects.exists()


def test_empty_selection_is_refused(db):
    with pytest.raises(EnqueueError, match="no devices"):
        enqueue(Device.objects.none(), "ProfileList")


def test_a_failure_half_way_leaves_nothing(db, monkeypatch):
    """A crash between storing the command and fanning it out must not leave half a command."""
    fleet(5)

    def boom(*args, **kwargs):
        raise RuntimeError("crash between the two steps")

    monkeypatch.setattr("commands.queue._fan_out", boom)
    with pytest.raises(RuntimeError):
        enqueue(Device.objects.all(), "ProfileList")
    assert not Command.objects.exists()
