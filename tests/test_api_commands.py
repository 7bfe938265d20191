"""The commands' API: one command for UDIDs, a group or a filter, queued through
commands.queue in one request; validation that names the key; 403 and 409; progress and every
device's result; cancel; a push now; 10,000 devices in a handful of SQL statements."""

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from commands.models import Command, QueuedCommand, Status
from devices.models import Device, DeviceGroup
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.api_support import managed_devices

pytestmark = pytest.mark.django_db


def post(client, body):
    return client.post("/api/v1/commands/", body, format="json")


def test_a_command_for_udids_is_queued_once_and_audited_with_the_token(api):
    managed_devices(3)
    response = post(
        api[OPERATOR],
        {"request_type": "DeviceLock", "payload": {"Message": "Call IT"},
         "devices": ["D-00000", "D-00002"]},
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    command = Command.objects.get(uuid=body["command_uuid"])
    assert body == {
        "command_uuid": command.uuid,
        "request_type": "DeviceLock",
        "devices": 2,
        "left_out": 0,
    }
    assert response["Location"].endswith(f"/api/v1/commands/{command.uuid}/")
    assert command.command_dict()["Message"] == "Call IT"
    assert command.user.username == "operator-api"
    rows = QueuedCommand.objects.filter(command=command).values_list("device__udid", flat=True)
    assert sorted(rows) == ["D-00000", "D-00002"]
    entry = AuditEntry.objects.get(action="command.enqueued")
    assert entry.actor == "operator-api" and entry.details["token"] == "operator-script"


def test_a_group_or_a_filter_targets_its_managed_devices(api):
    lab = DeviceGroup.objects.create(name="Lab")
    managed_devices(2, "L", group=lab)
    managed_devices(1, "X", group=lab, state=Device.State.PENDING)
    managed_devices(2, "M", platform="macOS", os_version="14.5")
    by_group = post(api[OPERATOR], {"request_type": "ProfileList", "group": "Lab"})
    assert by_group.status_code == 201 and by_group.json()["devices"] == 2
    by_filter = post(
        api[OPERATOR], {"request_type": "ProfileList", "filter": {"platform": "macOS"}}
    )
    assert by_filter.status_code == 201 and by_filter.json()["devices"] == 2
    none = post(api[OPERATOR], {"request_type": "ProfileList", "filter": {"os_version": "9"}})
    assert none.status_code == 400 and none.json()["error"].startswith("filter:")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"request_type": "DeviceLock"}, "target"),
        ({"request_type": "DeviceLock", "devices": ["D-00000"], "group": "G"}, "target"),
        ({"request_type": "DeviceLock", "devices": []}, "devices"),
        ({"request_type": "DeviceLock", "devices": ["NOPE"]}, "unknown device(s): NOPE"),
        ({"request_type": "DeviceLock", "group": "Nope"}, "group"),
        ({"devices": ["D-00000"]}, "request_type"),
        ({"request_type": "NoSuchCommand", "devices": ["D-00000"]}, "NoSuchCommand"),
        ({"request_type": "DeviceLock", "devices": ["D-00000"], "payload": {"PIN": 7}}, "PIN"),
        ({"request_type": "DeviceLock", "devices": ["D-00000"], "payload": {"Bogus": 1}},
         "Bogus"),
        ({"request_type": "DeviceLock", "devices": ["D-00000"], "payload": []}, "payload"),
        ({"request_type": "DeviceLock", "devices": ["D-00000"],
          "filter": {"seen": "soon"}}, "seen"),
        ({"request_type": "DeviceInformation", "devices": ["D-00000"],
          "payload": {"Queries": ["NoSuchQuery"]}}, "NoSuchQuery"),
    ],
)  # fmt: skip
def test_validation_errors_are_400_naming_the_key(api, body, names):
    managed_devices(1)
    response = post(api[ADMIN], body)
    assert response.status_code == 400, response.content
    assert names in response.json()["error"], response.json()
    assert not Command.objects.exists()


def test_data_values_come_as_base64(api):
    managed_devices(1, platform="macOS", os_version="14.5")
    wallpaper = base64.b64encode(b"\x89PNG...").decode()
    response = post(
        api[OPERATOR],
        {"request_type": "InstallProvisioningProfile", "devices": ["D-00000"],
         "payload": {"ProvisioningProfile": wallpaper}},
    )  # fmt: skip
    if response.status_code == 201:
        command = Command.objects.get(uuid=response.json()["command_uuid"])
        assert command.command_dict()["ProvisioningProfile"] == b"\x89PNG..."
    else:  # the catalog refuses the platform: still a 400 naming why, never a 500
        assert response.status_code == 400


def test_conflicts_are_409(api):
    managed_devices(1, "T", token_invalid_at=timezone.now())
    managed_devices(1, "P", state=Device.State.PENDING)
    invalid = post(api[OPERATOR], {"request_type": "DeviceLock", "devices": ["T-00000"]})
    assert invalid.status_code == 409 and "push token" in invalid.json()["error"]
    pending = post(api[OPERATOR], {"request_type": "DeviceLock", "devices": ["P-00000"]})
    assert pending.status_code == 409 and "not managed" in pending.json()["error"]


def test_erase_clear_passcode_and_raw_commands_are_for_admins(api):
    managed_devices(1, unlock_token=b"u")
    target = {"devices": ["D-00000"]}
    for body in (
        {"request_type": "EraseDevice"},
        {"request_type": "ClearPasscode", "reason": "locked out"},
        {"request_type": "DeviceLock", "raw": True},
    ):
        refused = post(api[OPERATOR], {**body, **target})
        assert refused.status_code == 403, body
        assert "administrator" in refused.json()["error"]
    no_reason = post(api[ADMIN], {"request_type": "ClearPasscode", **target})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]
    cleared = post(api[ADMIN], {"request_type": "ClearPasscode", "reason": "locked out", **target})
    assert cleared.status_code == 201
    assert AuditEntry.objects.get(action="command.enqueued").details["reason"] == "locked out"
    raw = post(api[ADMIN], {"request_type": "FutureCommand", "raw": True, **target})
    assert raw.status_code == 201 and Command.objects.get(request_type="FutureCommand").raw
    assert post(api[ADMIN], {"request_type": "EraseDevice", **target}).status_code == 201
    assert post(api[VIEWER], {"request_type": "DeviceLock", **target}).status_code == 403


def test_progress_and_every_devices_result_as_json(api, make_device):
    sims = [make_device() for _ in range(3)]
    for sim in sims:
        sim.enroll()
    QueuedCommand.objects.all().delete()  # the initial inventory
    udids = [sim.udid for sim in sims]
    queued = post(
        api[OPERATOR],
        {"request_type": "DeviceInformation", "devices": udids,
         "payload": {"Queries": ["DeviceName", "OSVersion"]}},
    )  # fmt: skip
    uuid = queued.json()["command_uuid"]
    first, second, _third = sims
    assert first.idle().plist()["CommandUUID"] == uuid
    first.report(uuid, QueryResponses={"DeviceName": "Kiosk", "OSVersion": "17.4"})
    assert second.idle().status == 200
    second.report(uuid, "Error", ErrorChain=[{"ErrorCode": 12021, "ErrorDomain": "MCMDM"}])
    detail = api[VIEWER].get(f"/api/v1/commands/{uuid}/", {"page_size": 2})
    assert detail.status_code == 200
    body = detail.json()
    assert body["request_type"] == "DeviceInformation" and body["device_count"] == 3
    assert body["progress"]["acknowledged"] == 1 and body["progress"]["error"] == 1
    assert body["progress"]["queued"] == 1 and body["progress"]["sent"] == 0
    page = api[VIEWER].get(body["next"]).json()
    rows = {row["udid"]: row for row in body["results"] + page["results"]}
    assert rows[first.udid]["status"] == "acknowledged"
    assert rows[first.udid]["result"] == {
        "QueryResponses": {"DeviceName": "Kiosk", "OSVersion": "17.4"}
    }
    assert rows[first.udid]["sent_count"] == 1 and rows[first.udid]["answered_at"]
    assert rows[second.udid]["error_chain"][0]["ErrorCode"] == 12021
    assert rows[sims[2].udid]["status"] == "queued" and rows[sims[2].udid]["result"] is None
    listed = api[VIEWER].get(
        "/api/v1/commands/", {"request_type": "DeviceInformation", "queued_by": "operator-api"}
    )
    assert [c["command_uuid"] for c in listed.json()["results"]] == [uuid]
    assert api[VIEWER].get("/api/v1/commands/NOPE/").status_code == 404


def test_cancel_what_no_device_was_sent(api, make_device):
    sim = make_device()
    sim.enroll()
    QueuedCommand.objects.all().delete()
    managed_devices(2)
    uuid = post(
        api[OPERATOR], {"request_type": "ProfileList", "devices": [sim.udid, "D-00000", "D-00001"]}
    ).json()["command_uuid"]
    assert sim.idle().plist()["CommandUUID"] == uuid  # in flight: stays
    assert api[VIEWER].post(f"/api/v1/commands/{uuid}/cancel/").status_code == 403
    response = api[OPERATOR].post(f"/api/v1/commands/{uuid}/cancel/")
    assert response.status_code == 200 and response.json() == {"canceled": 2}
    statuses = set(QueuedCommand.objects.values_list("status", flat=True))
    assert statuses == {Status.SENT, Status.CANCELED}
    entry = AuditEntry.objects.get(action="command.canceled")
    assert entry.details["canceled"] == 2 and entry.details["token"] == "operator-script"


# A fixed number whatever the fleet: the token and the role (3), the target as the command
# form resolves it (about 7), the queue (8, with its one INSERT ... SELECT).
MAX_STATEMENTS = 20


def test_ten_thousand_devices_in_one_request_and_a_handful_of_statements(api):
    managed_devices(10_000, "F")
    DeviceGroup.objects.create(name="Fleet")
    Device.objects.update(group=DeviceGroup.objects.get())
    client = api[OPERATOR]
    with CaptureQueriesContext(connection) as by_group:
        response = post(client, {"request_type": "DeviceLock", "group": "Fleet"})
    assert response.status_code == 201 and response.json()["devices"] == 10_000
    assert len(by_group) <= MAX_STATEMENTS, [q["sql"][:120] for q in by_group]
    udids = list(Device.objects.values_list("udid", flat=True))
    with CaptureQueriesContext(connection) as by_udid:
        response = post(client, {"request_type": "ProfileList", "devices": udids})
    assert response.status_code == 201 and response.json()["devices"] == 10_000
    assert len(by_udid) <= MAX_STATEMENTS, [q["sql"][:120] for q in by_udid]
    assert QueuedCommand.objects.count() == 20_000


def test_push_now_for_chosen_devices(api, settings):
    settings.MDM_APNS_URL = "https://127.0.0.1:9"  # never reached: there is no certificate
    managed_devices(2)
    managed_devices(1, "T", token_invalid_at=timezone.now())
    assert api[VIEWER].post("/api/v1/push/", {"devices": ["D-00000"]}, format="json"
                            ).status_code == 403  # fmt: skip
    response = api[OPERATOR].post(
        "/api/v1/push/", {"devices": ["D-00000", "D-00001", "T-00000"]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["skipped"] == 1 and body["not_attempted"] == 2
    assert body["reason"] == "no push certificate"
    reasons = {r["udid"]: r["reason"] for r in body["results"]}
    assert "push token invalid" in reasons["T-00000"]
    entry = AuditEntry.objects.get(action="device.pushed")
    assert entry.details["token"] == "operator-script" and entry.details["skipped"] == 1
    assert api[OPERATOR].post("/api/v1/push/", {}, format="json").status_code == 400


def test_secrets_in_answers_are_masked_as_on_the_pages(api, make_device):
    sim = make_device()
    sim.enroll()
    QueuedCommand.objects.all().delete()
    uuid = post(api[ADMIN], {"request_type": "ActivationLockBypassCode", "devices": [sim.udid]})
    uuid = uuid.json()["command_uuid"]
    assert sim.idle().plist()["CommandUUID"] == uuid
    sim.report(uuid, ActivationLockBypassCode="bypass-7f3a-secret")
    detail = api[ADMIN].get(f"/api/v1/commands/{uuid}/")
    history = api[VIEWER].get(f"/api/v1/devices/{sim.udid}/commands/")
    for response in (detail, history):
        assert response.status_code == 200
        assert "bypass-7f3a-secret" not in response.content.decode()
    assert detail.json()["results"][0]["result"]["ActivationLockBypassCode"].startswith("•")
