"""The library's and the enrollments' API: upload (413 above the limit), list, read (never
the payload), assign and unassign to devices and groups (409 when already assigned), delete
(409 while assigned); enrollments created with their link, listed, deactivated (409 twice)."""

import plistlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from commands.models import QueuedCommand
from devices.models import DeviceGroup
from enrollment.models import Enrollment, Profile
from mdm_portal.models import AuditEntry
from mdm_portal.roles import OPERATOR, VIEWER
from tests.api_support import managed_devices
from tests.test_profile_library import profile

pytestmark = pytest.mark.django_db


def upload(client, data: bytes, name: str = ""):
    file = SimpleUploadedFile("vpn.mobileconfig", data, "application/x-apple-aspen-config")
    return client.post("/api/v1/profiles/", {"file": file, "name": name}, format="multipart")


def test_upload_list_and_read_a_profile_without_its_payload(api, ca):
    assert upload(api[VIEWER], plistlib.dumps(profile())).status_code == 403
    response = upload(api[OPERATOR], plistlib.dumps(profile(PayloadDescription="secret-pw")))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["identifier"] == "com.example.vpn" and body["uploaded_by"] == "operator-api"
    listed = api[VIEWER].get("/api/v1/profiles/").json()["results"]
    assert [p["identifier"] for p in listed] == ["com.example.vpn"]
    detail = api[VIEWER].get(f"/api/v1/profiles/{body['id']}/")
    assert detail.status_code == 200
    assert detail.json()["assignments"] == [] and detail.json()["installed_on"] == 0
    assert "payload" not in detail.json()
    assert AuditEntry.objects.get(action="profile.uploaded").details["token"] == "operator-script"


def test_bad_and_oversized_uploads(api, settings, monkeypatch):
    bad = upload(api[OPERATOR], b"not a plist")
    assert bad.status_code == 400 and bad.json()["error"]
    invalid = upload(api[OPERATOR], plistlib.dumps({"PayloadType": "Configuration"}))
    assert invalid.status_code == 400 and "PayloadIdentifier" in invalid.json()["error"]
    missing = api[OPERATOR].post("/api/v1/profiles/", {"name": "x"}, format="multipart")
    assert missing.status_code == 400 and missing.json()["error"].startswith("file:")
    settings.MDM_PROFILE_MAX_BYTES = 1000
    big = upload(api[OPERATOR], plistlib.dumps(profile(PayloadDescription="x" * 2000)))
    assert big.status_code == 413 and "at most 1,000 bytes" in big.json()["error"]
    huge = upload(api[OPERATOR], b"x" * 100_000)
    assert huge.status_code == 413
    settings.MDM_API_MAX_BODY_BYTES = 100
    body = api[OPERATOR].post("/api/v1/groups/", {"name": "x" * 200}, format="json")
    assert body.status_code == 413
    assert not Profile.objects.exists()


def test_assign_to_a_group_installs_where_missing_and_conflicts(api, ca):
    lab = DeviceGroup.objects.create(name="Lab")
    managed_devices(3, group=lab)
    pk = upload(api[OPERATOR], plistlib.dumps(profile())).json()["id"]
    assigned = api[OPERATOR].post(f"/api/v1/profiles/{pk}/assign/", {"group": "Lab"},
                                  format="json")  # fmt: skip
    assert assigned.status_code == 200 and assigned.json() == {"queued": 3, "skipped": 0}
    assert QueuedCommand.objects.filter(request_type="InstallProfile").count() == 3
    again = api[OPERATOR].post(f"/api/v1/profiles/{pk}/assign/", {"group": "Lab"},
                               format="json")  # fmt: skip
    assert again.status_code == 409 and "already assigned" in again.json()["error"]
    detail = api[VIEWER].get(f"/api/v1/profiles/{pk}/").json()
    assert detail["assignments"][0]["group"] == "Lab" and detail["assigned_devices"] == 3
    for body, key in (({}, "target"), ({"group": "Nope"}, "group"), ({"device": "X"}, "device")):
        response = api[OPERATOR].post(f"/api/v1/profiles/{pk}/assign/", body, format="json")
        assert response.status_code == 400 and response.json()["error"].startswith(key)
    refused = api[OPERATOR].delete(f"/api/v1/profiles/{pk}/")
    assert refused.status_code == 409 and "unassign" in refused.json()["error"]
    removed = api[OPERATOR].post(f"/api/v1/profiles/{pk}/unassign/", {"group": str(lab.pk)},
                                 format="json")  # fmt: skip
    assert removed.status_code == 200
    assert removed.json() == {"queued": 0, "skipped": 0}  # none reported it installed
    assert api[OPERATOR].delete(f"/api/v1/profiles/{pk}/").status_code == 204
    assert api[VIEWER].get(f"/api/v1/profiles/{pk}/").status_code == 404
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"profile.assigned", "profile.unassigned", "profile.deleted"} <= actions


def test_assign_to_one_device(api, ca):
    device = managed_devices(1)[0]
    pk = upload(api[OPERATOR], plistlib.dumps(profile())).json()["id"]
    response = api[OPERATOR].post(
        f"/api/v1/profiles/{pk}/assign/", {"device": device.udid}, format="json"
    )
    assert response.json() == {"queued": 1, "skipped": 0}


def test_enrollments_carry_their_link_and_deactivate_once(api, settings):
    assert api[VIEWER].post("/api/v1/enrollments/", {"name": "x"}, format="json"
                            ).status_code == 403  # fmt: skip
    created = api[OPERATOR].post(
        "/api/v1/enrollments/",
        {"name": "Lab iPads", "access_rights": 4095, "group": "Lab", "max_uses": 5,
         "expires_days": 7},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    enrollment = Enrollment.objects.get()
    assert body["link"] == f"{settings.MDM_PUBLIC_URL}/enroll/{enrollment.token}/"
    assert body["state"] == "active" and body["group"] == "Lab" and body["access_rights"] == 4095
    assert enrollment.created_by == "operator-api"
    assert DeviceGroup.objects.filter(name="Lab").exists()
    for bad, key in (({"name": ""}, "name"), ({"name": "x", "access_rights": 2}, "access_rights"),
                     ({"name": "x", "identity": "magic"}, "identity")):  # fmt: skip
        response = api[OPERATOR].post("/api/v1/enrollments/", bad, format="json")
        assert response.status_code == 400 and response.json()["error"].startswith(key), bad
    listed = api[VIEWER].get("/api/v1/enrollments/").json()["results"]
    assert [e["name"] for e in listed] == ["Lab iPads"]
    off = api[OPERATOR].post(f"/api/v1/enrollments/{body['id']}/deactivate/")
    assert off.status_code == 200 and off.json()["state"] == "inactive"
    twice = api[OPERATOR].post(f"/api/v1/enrollments/{body['id']}/deactivate/")
    assert twice.status_code == 409 and "already inactive" in twice.json()["error"]
    assert api[OPERATOR].post("/api/v1/enrollments/999/deactivate/").status_code == 404
    entry = AuditEntry.objects.get(action="enrollment.created")
    assert entry.details["token"] == "operator-script"
    assert enrollment.token not in str(entry.details)
