"""The devices' API: the fleet with its filters, search and cursor pages; a device with its
inventory and no secret; renaming (a Settings command) and regrouping; its commands and
pushes; the groups. Every role rule."""

import plistlib
from datetime import timedelta

import pytest
from django.utils import timezone

from commands.models import Command, PushAttempt
from devices.models import Device, DeviceGroup, InventoryReport
from enrollment.library import assign, upload_profile
from enrollment.models import ProfileAssignment
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.api_support import managed_devices
from tests.test_profile_library import profile

pytestmark = pytest.mark.django_db


def udids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["udid"] for row in response.json()["results"]]


def test_the_fleet_filters_searches_and_pages_with_a_cursor(api):
    lab = DeviceGroup.objects.create(name="Lab")
    managed_devices(3, "A", group=lab)
    managed_devices(2, "M", platform="macOS", os_version="14.5", model_name="MacBook Air",
                    product_name="Mac14,2")  # fmt: skip
    managed_devices(1, "P", state=Device.State.PENDING, os_version="17.10")
    Device.objects.filter(udid="A-00000").update(last_seen_at=timezone.now() - timedelta(days=9))
    client = api[VIEWER]
    everything = client.get("/api/v1/devices/", {"page_size": 4})
    assert udids(everything) == ["A-00000", "A-00001", "A-00002", "M-00000"]
    rest = client.get(everything.json()["next"])
    assert udids(rest) == ["M-00001", "P-00000"] and rest.json()["next"] is None
    assert udids(client.get("/api/v1/devices/", {"state": "pending"})) == ["P-00000"]
    assert udids(client.get("/api/v1/devices/", {"group": "Lab"}))[0] == "A-00000"
    assert udids(client.get("/api/v1/devices/", {"group": str(lab.pk)})) == [
        "A-00000", "A-00001", "A-00002",
    ]  # fmt: skip
    assert udids(client.get("/api/v1/devices/", {"platform": "macOS"})) == ["M-00000", "M-00001"]
    assert udids(client.get("/api/v1/devices/", {"os_version": "14"})) == ["M-00000", "M-00001"]
    assert udids(client.get("/api/v1/devices/", {"os_version": "17.1"})) == []  # not 17.10
    assert len(udids(client.get("/api/v1/devices/", {"q": "Mac14,2"}))) == 2
    assert udids(client.get("/api/v1/devices/", {"q": "serm00001"})) == ["M-00001"]
    assert udids(client.get("/api/v1/devices/", {"q": "P device"})) == ["P-00000"]
    assert "A-00000" not in udids(client.get("/api/v1/devices/", {"seen": "24h"}))
    assert udids(client.get("/api/v1/devices/", {"seen": "stale"})) == ["A-00000"]
    bad = client.get("/api/v1/devices/", {"seen": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("seen")
    assert udids(client.get("/api/v1/devices/", {"seen": "token_invalid"})) == []
    assert client.get("/api/v1/devices/", {"group": "Nope"}).status_code == 400
    assert client.get("/api/v1/devices/", {"state": "lost"}).status_code == 400
    assert client.get("/api/v1/devices/", {"cursor": "garbage"}).status_code == 404


def test_a_device_with_its_inventory_and_never_a_secret(api):
    device = managed_devices(1)[0]
    device.unlock_token = b"unlock-secret"
    device.bootstrap_token = b"bootstrap-secret"
    device.save()
    InventoryReport.objects.create(
        device=device, kind="SecurityInfo", data={"PasscodePresent": True},
        reported_at=timezone.now(),
    )  # fmt: skip
    response = api[VIEWER].get(f"/api/v1/devices/{device.udid}/")
    assert response.status_code == 200
    body = response.json()
    assert body["udid"] == device.udid and body["state"] == "enrolled"
    assert body["inventory"]["SecurityInfo"]["data"] == {"PasscodePresent": True}
    assert body["unlock_token_escrowed"] is True and body["push_token_set"] is True
    text = response.content.decode()
    for secret in ("unlock-secret", "bootstrap-secret", device.push_token, device.push_magic):
        assert secret not in text
    assert api[VIEWER].get("/api/v1/devices/NOPE/").status_code == 404


def test_patch_regroups_and_renames_through_a_settings_command(api):
    device = managed_devices(1)[0]
    DeviceGroup.objects.create(name="Lab")
    assert api[VIEWER].patch(f"/api/v1/devices/{device.udid}/", {"group": "Lab"},
                             format="json").status_code == 403  # fmt: skip
    response = api[OPERATOR].patch(
        f"/api/v1/devices/{device.udid}/", {"group": "Lab", "name": "Front desk"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group"] == "Lab"
    assert body["name"] == "D device 0"  # the device's own name, until it applies the command
    settings, query = (Command.objects.get(uuid=u) for u in body["queued_commands"])
    assert settings.request_type == "Settings"
    item = {"Item": "DeviceName", "DeviceName": "Front desk"}
    assert settings.command_dict()["Settings"] == [item]
    assert query.command_dict()["Queries"] == ["DeviceName"]
    entry = AuditEntry.objects.get(action="group.devices_added")
    assert entry.details["token"] == "operator-script" and entry.target == "Lab"
    assert entry.details["devices"] == [device.udid]
    out = api[OPERATOR].patch(f"/api/v1/devices/{device.udid}/", {"group": None}, format="json")
    assert out.json()["group"] is None and out.json()["queued_commands"] == []
    unknown = api[OPERATOR].patch(f"/api/v1/devices/{device.udid}/", {"group": "Nope"},
                                  format="json")  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["error"].startswith("group:")
    blank = api[OPERATOR].patch(f"/api/v1/devices/{device.udid}/", {"name": " "}, format="json")
    assert blank.status_code == 400 and "name" in blank.json()["error"]


def test_renaming_a_device_apns_declared_unreachable_is_a_409(api):
    device = managed_devices(1, token_invalid_at=timezone.now())[0]
    response = api[OPERATOR].patch(f"/api/v1/devices/{device.udid}/", {"name": "X"}, format="json")
    assert response.status_code == 409 and "push token" in response.json()["error"]


def test_a_devices_commands_and_pushes(api):
    device = managed_devices(1)[0]
    api[OPERATOR].post(
        "/api/v1/commands/", {"request_type": "ProfileList", "devices": [device.udid]},
        format="json",
    )  # fmt: skip
    PushAttempt.objects.create(device=device, kind="manual", created_at=timezone.now(),
                               status=200, apns_id="A-1")  # fmt: skip
    history = api[VIEWER].get(f"/api/v1/devices/{device.udid}/commands/", {"limit": 5})
    assert history.status_code == 200
    assert [h["request_type"] for h in history.json()] == ["ProfileList"]
    assert history.json()[0]["status"] == "queued"
    assert api[VIEWER].get(f"/api/v1/devices/{device.udid}/commands/",
                           {"limit": "0"}).status_code == 400  # fmt: skip
    pushes = api[VIEWER].get(f"/api/v1/devices/{device.udid}/pushes/")
    assert pushes.status_code == 200
    assert [(p["status"], p["apns_id"]) for p in pushes.json()["results"]] == [(200, "A-1")]
    assert api[VIEWER].get("/api/v1/devices/NOPE/pushes/").status_code == 404
    assert api[VIEWER].get("/api/v1/devices/NOPE/commands/").status_code == 404


def test_groups_crud_with_roles_and_conflicts(api, ca):
    managed_devices(2, group=None)
    assert api[VIEWER].post("/api/v1/groups/", {"name": "Lab"}, format="json").status_code == 403
    created = api[OPERATOR].post("/api/v1/groups/", {"name": "Lab", "description": "2F"},
                                 format="json")  # fmt: skip
    assert created.status_code == 201
    group = created.json()
    assert group["name"] == "Lab" and group["devices"] == 0
    again = api[OPERATOR].post("/api/v1/groups/", {"name": "Lab"}, format="json")
    assert again.status_code == 409 and "exists" in again.json()["error"]
    assert api[OPERATOR].post("/api/v1/groups/", {}, format="json").status_code == 400
    Device.objects.update(group_id=group["id"])
    listed = api[VIEWER].get("/api/v1/groups/").json()["results"]
    assert [(g["name"], g["devices"]) for g in listed] == [("Lab", 2)]
    renamed = api[OPERATOR].patch(f"/api/v1/groups/{group['id']}/", {"name": "Lab 2"},
                                  format="json")  # fmt: skip
    assert renamed.status_code == 200 and renamed.json()["name"] == "Lab 2"
    # Deleting it does what the group page does: its devices leave it, its assignments go.
    assign(upload_profile(plistlib.dumps(profile())), group=DeviceGroup.objects.get(), by="tests")
    assert api[OPERATOR].delete(f"/api/v1/groups/{group['id']}/").status_code == 204
    assert not DeviceGroup.objects.exists() and not ProfileAssignment.objects.exists()
    assert not Device.objects.exclude(group=None).exists()
    assert api[ADMIN].get(f"/api/v1/groups/{group['id']}/").status_code == 404
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"group.created", "group.renamed", "group.deleted"} <= actions


def test_the_inventory_masks_what_the_device_page_masks(api):
    device = managed_devices(1)[0]
    InventoryReport.objects.create(
        device=device, kind="SecurityInfo", reported_at=timezone.now(),
        data={"FDE_PersonalRecoveryKeyCMS": "recovery-key-secret", "PasscodePresent": True},
    )  # fmt: skip
    body = api[VIEWER].get(f"/api/v1/devices/{device.udid}/").json()
    data = body["inventory"]["SecurityInfo"]["data"]
    assert data["PasscodePresent"] is True and "recovery-key-secret" not in str(body)
