"""The server URL loop: dequeuing, statuses, NotNow, EraseDevice, over real requests."""

import plistlib
from datetime import timedelta

import pytest
from django.utils import timezone

from certs.identity import authenticate_device
from commands.loop import poll
from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, InventoryReport
from tests.simulator import sign_detached

pytestmark = pytest.mark.django_db


def managed(sim) -> Device:
    return Device.objects.get(udid=sim.udid)


def clear_queue(sim) -> None:
    QueuedCommand.objects.filter(device__udid=sim.udid).delete()


def queue(sim, request_type: str, **keys) -> str:
    return enqueue(managed(sim), request_type, keys, queued_by="tests").uuid


def row(command_uuid: str) -> QueuedCommand:
    return QueuedCommand.objects.get(command__uuid=command_uuid)


def test_idle_with_empty_queue_is_empty_200(enrolled):
    clear_queue(enrolled)
    response = enrolled.idle()
    assert response.status == 200
    assert response.body == b""
    assert managed(enrolled).last_seen_at is not None


def test_idle_gets_the_head_command_as_a_plist(enrolled):
    response = enrolled.idle()
    assert response.status == 200
    message = response.plist()
    assert set(message) == {"CommandUUID", "Command"}
    assert message["Command"]["RequestType"] == "DeviceInformation"
    first = row(message["CommandUUID"])
    assert first.status == Status.SENT and first.sent_count == 1


def test_status_is_recorded_and_the_next_command_returned(enrolled):
    first = enrolled.idle().plist()
    answer = enrolled.report(
        first["CommandUUID"],
        QueryResponses={"SerialNumber": "F2LXK0ABCDEF", "DeviceName": "Kim's iPhone"},
    )
    assert answer.status == 200
    assert answer.plist()["Command"]["RequestType"] == "SecurityInfo"
    stored = row(first["CommandUUID"])
    assert stored.status == Status.ACKNOWLEDGED
    assert stored.answered_at is not None
    assert stored.result_dict()["QueryResponses"]["DeviceName"] == "Kim's iPhone"
    assert managed(enrolled).device_name == "Kim's iPhone"
    assert InventoryReport.objects.get(device__udid=enrolled.udid, kind="DeviceInformation")


def test_a_repeated_status_changes_nothing(enrolled):
    first = enrolled.idle().plist()["CommandUUID"]
    enrolled.report(first, QueryResponses={"DeviceName": "one"})
    recorded = row(first)
    again = enrolled.report(first, QueryResponses={"DeviceName": "two"})
    assert again.status == 200
    assert again.plist()["Command"]["RequestType"] == "SecurityInfo"  # still the next one
    repeated = row(first)
    assert repeated.answered_at == recorded.answered_at
    assert repeated.result_dict()["QueryResponses"]["DeviceName"] == "one"
    assert managed(enrolled).device_name == "one"


def test_command_stays_at_head_and_is_resent_until_answered(enrolled):
    first = enrolled.idle().plist()["CommandUUID"]
    assert enrolled.idle().plist()["CommandUUID"] == first
    assert enrolled.idle().plist()["CommandUUID"] == first
    assert row(first).sent_count == 3
    assert enrolled.report(first).plist()["CommandUUID"] != first


def test_error_and_command_format_error_are_recorded_with_error_chain(enrolled):
    clear_queue(enrolled)
    failing = queue(enrolled, "ProfileList")
    malformed = queue(enrolled, "CertificateList")
    assert enrolled.idle().plist()["CommandUUID"] == failing
    chain = [
        {"ErrorCode": 4001, "ErrorDomain": "MCProfileErrorDomain", "LocalizedDescription": "x"}
    ]
    assert enrolled.report(failing, "Error", ErrorChain=chain).plist()["CommandUUID"] == malformed
    assert enrolled.report(malformed, "CommandFormatError").body == b""
    assert row(failing).status == Status.ERROR
    assert row(failing).error_chain == chain
    assert row(malformed).status == Status.COMMAND_FORMAT_ERROR


def test_not_now_holds_back_commands_that_could_answer_not_now_until_idle(enrolled):
    clear_queue(enrolled)
    settings_cmd = queue(enrolled, "Settings", Settings=[{"Item": "DataRoaming", "Enabled": False}])
    lock = queue(enrolled, "DeviceLock")
    security = queue(enrolled, "SecurityInfo")
    assert enrolled.idle().plist()["CommandUUID"] == settings_cmd
    # NotNow: only a command that never answers NotNow may follow.
    assert enrolled.report(settings_cmd, "NotNow").plist()["CommandUUID"] == lock
    assert row(settings_cmd).status == Status.NOT_NOW
    # After it, nothing else until the device's next Idle.
    assert enrolled.report(lock).body == b""
    assert row(security).status == Status.QUEUED
    # From that Idle on, the NotNow'd command is sent again, then the rest.
    assert enrolled.idle().plist()["CommandUUID"] == settings_cmd
    assert enrolled.report(settings_cmd).plist()["CommandUUID"] == security
    assert row(settings_cmd).status == Status.ACKNOWLEDGED
    assert row(settings_cmd).sent_count == 2


def test_not_now_asks_for_no_push(enrolled):
    """DESIGN: the device keeps no copy of a NotNow'd command, and comes back by itself (its
    next Idle): the portal must not push again for it."""
    clear_queue(enrolled)
    later = queue(enrolled, "Settings", Settings=[{"Item": "DataRoaming", "Enabled": True}])
    assert enrolled.idle().plist()["CommandUUID"] == later
    Device.objects.filter(udid=enrolled.udid).update(push_due_at=None)
    assert enrolled.report(later, "NotNow").body == b""
    assert row(later).status == Status.NOT_NOW
    assert managed(enrolled).push_due_at is None  # no push is due for it


def test_not_now_with_nothing_guaranteed_left_is_empty_200(enrolled):
    clear_queue(enrolled)
    first = queue(enrolled, "Settings", Settings=[{"Item": "DataRoaming", "Enabled": True}])
    queue(enrolled, "SecurityInfo")
    enrolled.idle()
    assert enrolled.report(first, "NotNow").body == b""
    assert enrolled.report(first, "NotNow").body == b""  # repeated NotNow: still nothing


def test_erase_device_counts_as_delivered_once_sent(enrolled):
    clear_queue(enrolled)
    erase = queue(enrolled, "EraseDevice", PreserveDataPlan=True)
    after = queue(enrolled, "ProfileList")
    assert enrolled.idle().plist()["CommandUUID"] == erase
    # The device may never answer: the erase is not sent again, the queue moves on.
    assert enrolled.idle().plist()["CommandUUID"] == after
    assert row(erase).sent_count == 1
    # A late acknowledgement is still recorded.
    enrolled.report(erase)
    assert row(erase).status == Status.ACKNOWLEDGED


def test_unknown_command_uuid_is_ignored_and_the_head_returned(enrolled):
    head = enrolled.idle().plist()["CommandUUID"]
    before = list(QueuedCommand.objects.values_list("id", "status", "answered_at"))
    response = enrolled.report("00000000-0000-0000-0000-000000000000", QueryResponses={})
    assert response.status == 200
    assert response.plist()["CommandUUID"] == head
    after = list(QueuedCommand.objects.values_list("id", "status", "answered_at"))
    assert before == after


def test_another_devices_command_uuid_is_ignored(enrolled, make_device):
    other = make_device()
    other.enroll()
    theirs = other.idle().plist()["CommandUUID"]
    enrolled.report(theirs, QueryResponses={"DeviceName": "spoof"})
    assert row(theirs).status == Status.SENT
    assert managed(other).device_name != "spoof"


def test_a_poll_concurrent_with_a_delivery_does_not_get_the_same_command(enrolled):
    """Two polls of one device: the second (started before the first delivered) gets nothing."""
    device = managed(enrolled)
    body = plistlib.dumps({"UDID": device.udid, "Status": "Idle"})
    identity = authenticate_device(
        body, mdm_signature=sign_detached(body, enrolled.certificate, enrolled.key)
    )
    idle = {"UDID": device.udid, "Status": "Idle"}
    started = timezone.now()
    first = poll(identity, device.udid, idle, started)
    assert first is not None
    second = poll(identity, device.udid, idle, started)
    assert second is None  # in flight, not lost:
    later = poll(identity, device.udid, idle, timezone.now() + timedelta(seconds=1))
    assert plistlib.loads(later)["CommandUUID"] == plistlib.loads(first)["CommandUUID"]


def test_clear_passcode_gets_the_unlock_token_at_delivery_only(enrolled):
    clear_queue(enrolled)
    uuid = enqueue(managed(enrolled), "ClearPasscode", reason="owner present").uuid
    assert b"unlock-token-blob" not in bytes(row(uuid).command.payload)
    command = enrolled.idle().plist()["Command"]
    assert command["UnlockToken"] == enrolled.unlock_token


def test_pending_device_polling_the_server_url_gets_401(device):
    device.authenticate()
    assert device.idle().status == 401


def test_unknown_device_polling_gets_401(device):
    assert device.idle().status == 401


def test_idle_writes_no_result_even_with_a_command_uuid(enrolled):
    head = enrolled.idle().plist()["CommandUUID"]
    rows = QueuedCommand.objects.order_by("id").values_list("id", "status", "answered_at", "result")
    before = list(rows)
    again = enrolled.put(
        "/mdm/connect", {"UDID": enrolled.udid, "Status": "Idle", "CommandUUID": head}
    )
    assert again.plist()["CommandUUID"] == head  # still at the head, sent again
    after = list(rows.all())
    assert before == after


def test_device_requests_never_decrypt_the_ca_key(enrolled, monkeypatch):
    import mdm_portal.encryption as encryption

    def refuse(token):
        raise AssertionError("a secret was decrypted on the device path")

    monkeypatch.setattr(encryption, "decrypt", refuse)
    Device.objects.filter(udid=enrolled.udid).update(unlock_token=None)
    assert enrolled.idle().status == 200
