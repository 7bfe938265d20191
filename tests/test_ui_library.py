"""The staff pages of the profile library and the enrollments: who may see and do what, what
each action queues and audits, the errors shown next to their field, and that no secret is ever
shown. (The groups: test_ui_groups.py.)"""

import datetime as dt
import plistlib

import pytest
from django.utils import timezone

from commands.models import Command
from devices.models import Device, DeviceGroup
from enrollment.library import MAX_PROFILE_BYTES, assign
from enrollment.models import DeviceEnrollment, Enrollment, Profile, ProfileAssignment
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.library_support import (  # noqa: F401 - fixtures, used by name
    WIFI_PASSWORD,
    audited,
    enrollment_fixture,
    field_errors,
    fleet_fixture,
    group_fixture,
    library_profile_fixture,
    mobileconfig,
    post,
    push_fixture,
    queued,
    report_installed,
    wifi_profile,
)

pytestmark = pytest.mark.django_db


# --- access: every page, every role ------------------------------------------------------------


@pytest.fixture
def pages(library_profile, enrollment, group):
    return [
        "/profiles/",
        f"/profiles/{library_profile.pk}/",
        "/enrollments/",
        f"/enrollments/{enrollment.pk}/",
        "/groups/",
        f"/groups/{group.pk}/",
    ]


@pytest.fixture
def operator_pages(library_profile, enrollment, group):
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    return [
        "/profiles/upload/",
        f"/profiles/{library_profile.pk}/assign/",
        f"/profiles/{library_profile.pk}/unassign/?group={group.pk}",
        f"/profiles/{library_profile.pk}/delete/",
        "/enrollments/new/",
        f"/enrollments/{enrollment.pk}/deactivate/",
        "/groups/new/",
        f"/groups/{group.pk}/rename/",
        f"/groups/{group.pk}/add/",
        f"/groups/{group.pk}/assign/",
        f"/groups/{group.pk}/delete/",
    ]


def test_every_page_needs_login_and_a_role(client, staff, pages):
    for path in pages:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
        assert staff[None].get(path).status_code == 403, path
        for role in (VIEWER, OPERATOR, ADMIN):
            assert staff[role].get(path).status_code == 200, (path, role)


def test_viewers_read_but_operator_pages_are_refused(staff, operator_pages):
    for path in operator_pages:
        assert staff[VIEWER].get(path).status_code == 403, path
        assert staff[OPERATOR].get(path).status_code == 200, path


def test_viewers_see_no_button_they_may_not_use(staff, pages, library_profile, group):
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    markers = [
        "Upload a profile",
        "New enrollment",
        "Delete…",
        "Turn off…",
        "Unassign…",
        "Create the group",
        "Add to the group",
        "Rename…",
        "Download its profile",
        "Assign to a group",
    ]
    for path in pages:
        viewer = staff[VIEWER].get(path).text
        assert not [m for m in markers if m in viewer], path
    operator = "".join(staff[OPERATOR].get(path).text for path in pages)
    assert all(marker in operator for marker in markers)


def test_every_change_posted_by_a_viewer_is_refused(
    staff, library_profile, enrollment, group, fleet
):
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    viewer = staff[VIEWER]
    posts = [
        ("/profiles/upload/", {"file": None}),
        (f"/profiles/{library_profile.pk}/assign/", {"group": group.pk}),
        (f"/profiles/{library_profile.pk}/unassign/", {"group": group.pk}),
        (f"/profiles/{library_profile.pk}/delete/", {}),
        ("/enrollments/new/", {"name": "X", "access_rights": [1], "identity": "scep"}),
        (f"/enrollments/{enrollment.pk}/profile", {}),
        (f"/enrollments/{enrollment.pk}/deactivate/", {}),
        ("/groups/new/", {"name": "New"}),
        (f"/groups/{group.pk}/rename/", {"name": "Renamed"}),
        (f"/groups/{group.pk}/add/", {"devices": fleet[0].udid}),
        (f"/groups/{group.pk}/remove/", {"devices": fleet[0].udid}),
        (f"/groups/{group.pk}/assign/", {"profile": library_profile.pk}),
        (f"/groups/{group.pk}/delete/", {}),
    ]
    before = AuditEntry.objects.count(), Command.objects.count()
    for path, data in posts:
        assert (
            post(viewer, path, {k: v for k, v in data.items() if v is not None}).status_code == 403
        ), path
    assert (AuditEntry.objects.count(), Command.objects.count()) == before
    enrollment.refresh_from_db()
    assert enrollment.active and DeviceGroup.objects.filter(name="Sales").exists()
    assert Profile.objects.count() == 1 and Enrollment.objects.count() == 1


# --- the library -------------------------------------------------------------------------------


def upload(client, data: bytes, name="wifi.mobileconfig", **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return post(client, "/profiles/upload/", {"file": SimpleUploadedFile(name, data), **fields})


def test_upload_stores_the_profile_audited_with_the_address(ca, staff):
    response = upload(staff[OPERATOR], mobileconfig(), name="x.mobileconfig")
    stored = Profile.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/profiles/{stored.pk}/"
    assert stored.identifier == "com.example.wifi" and stored.uploaded_by == "operator-user"
    entry = audited("profile.uploaded")
    assert entry.actor == "operator-user" and entry.target == "com.example.wifi"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a plist", "not a property list"),
        (plistlib.dumps({"PayloadType": "com.apple.wifi.managed"}), "not a configuration profile"),
        (
            plistlib.dumps({k: v for k, v in wifi_profile().items() if k != "PayloadIdentifier"}),
            "PayloadIdentifier is missing",
        ),
        (b"", "empty"),
    ],
)
def test_upload_errors_are_shown_next_to_the_file_field_and_nothing_is_stored(
    ca, staff, data, message
):
    response = upload(staff[OPERATOR], data)
    assert response.status_code == 400
    assert message.lower() in field_errors(response.text, "file")
    assert not Profile.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="profile.").exists()


def test_an_upload_too_large_is_refused_with_its_size(ca, staff):
    response = upload(staff[OPERATOR], b"<" * (MAX_PROFILE_BYTES + 1))
    assert response.status_code == 413
    assert "at most" in field_errors(response.text, "file") and "MiB" in response.text
    assert not Profile.objects.exists()


def test_the_profile_page_shows_payloads_readably_and_hides_secrets(staff, library_profile):
    for role in (VIEWER, OPERATOR, ADMIN):
        html = staff[role].get(f"/profiles/{library_profile.pk}/").text
        for shown in (
            "com.apple.wifi.managed",
            "Wi-Fi (Office)",
            "com.example.wifi.payload",
            "SSID_STR",
            "Office",
            "EAPClientConfiguration",
            "UserName",
            "alice",
            "com.apple.security.pkcs12",
            "data, 302 bytes (not shown)",
        ):
            assert shown in html, (role, shown)
        for secret in (WIFI_PASSWORD, "eap-secret-99", "p12-secret"):
            assert secret not in html, (role, secret)
        assert html.count("(hidden)") == 3


def test_assign_to_a_group_queues_install_profile_for_its_members(
    staff, library_profile, group, fleet
):
    Device.objects.filter(pk__in=[d.pk for d in fleet[:2]]).update(group=group)
    response = post(
        staff[OPERATOR],
        f"/profiles/{library_profile.pk}/assign/",
        {"group": group.pk, "next": f"/profiles/{library_profile.pk}/"},
        follow=True,
    )
    assert response.status_code == 200
    assert "InstallProfile queued for 2 device(s)" in response.text
    assert queued("InstallProfile") == ["iPad 1", "iPad 2"]
    command = Command.objects.get(request_type="InstallProfile")
    assert command.user.username == "operator-user"
    entry = audited("profile.assigned")
    assert entry.details["to"] == "group Sales" and entry.details["queued"] == 2
    assert audited("command.enqueued").target == command.uuid


def test_assign_to_devices_by_serial_and_udid_counts_the_skipped(staff, library_profile, fleet):
    Device.objects.filter(pk=fleet[1].pk).update(access_rights=1)  # may not install profiles
    text = f"{fleet[0].serial_number.lower()}\n{fleet[1].udid}"
    response = post(
        staff[OPERATOR], f"/profiles/{library_profile.pk}/assign/", {"devices": text}, follow=True
    )
    assert "InstallProfile queued for 1 device(s). 1 device(s) skipped" in response.text
    assert queued("InstallProfile") == ["iPad 1"]
    assert (
        ProfileAssignment.objects.filter(profile=library_profile, device__isnull=False).count() == 2
    )


def test_assign_errors_are_shown_and_change_nothing(staff, library_profile, group):
    neither = post(staff[OPERATOR], f"/profiles/{library_profile.pk}/assign/", {})
    assert neither.status_code == 400 and "Choose a group or list devices" in neither.text
    unknown = post(
        staff[OPERATOR], f"/profiles/{library_profile.pk}/assign/", {"devices": "NOPE123"}
    )
    assert unknown.status_code == 400
    assert "nope123" in field_errors(unknown.text, "devices")
    assert not ProfileAssignment.objects.exists()


def test_installed_and_missing_devices_are_listed(staff, library_profile, group, fleet):
    Device.objects.filter(pk__in=[d.pk for d in fleet]).update(group=group)
    report_installed(library_profile, fleet[0])
    Device.objects.filter(pk=fleet[2].pk).update(access_rights=1)
    assign(library_profile, group=group, by="tests")
    html = staff[VIEWER].get(f"/profiles/{library_profile.pk}/").text
    installed, missing = html.split('id="installed-heading"')[1].split('id="missing-heading"')
    assert "iPad 1" in installed and "iPad 2" not in installed
    assert "iPad 2" in missing and "install queued" in missing
    assert "iPad 3" in missing and "iPad 1" not in missing
    listing = staff[VIEWER].get("/profiles/").text
    assert "1 device(s)" in listing and "2 device(s)" in listing


def test_unassign_asks_first_then_queues_remove_profile_where_installed(
    staff, library_profile, group, fleet
):
    Device.objects.filter(pk__in=[d.pk for d in fleet[:2]]).update(group=group)
    assign(library_profile, group=group, by="tests")
    report_installed(library_profile, fleet[0])
    path = f"/profiles/{library_profile.pk}/unassign/"
    page = staff[OPERATOR].get(path, {"group": group.pk})
    assert page.status_code == 200 and "RemoveProfile is queued" in page.text
    assert 'method="post"' in page.text and ProfileAssignment.objects.exists()
    response = post(staff[OPERATOR], path, {"group": group.pk}, follow=True)
    assert "RemoveProfile queued for 1 device(s)" in response.text
    assert queued("RemoveProfile") == ["iPad 1"]
    assert queued("InstallProfile") == []  # the install still waiting for iPad 2 is canceled
    assert not ProfileAssignment.objects.exists()
    assert audited("profile.unassigned").details["to"] == "group Sales"
    assert staff[OPERATOR].get(path, {"group": group.pk}).status_code == 404  # not assigned now


def test_a_profile_still_assigned_cannot_be_deleted(staff, library_profile, group):
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    path = f"/profiles/{library_profile.pk}/delete/"
    page = staff[OPERATOR].get(path)
    assert "unassign it from every group and device first" in page.text.lower()
    assert "Delete the profile</button>" not in page.text
    refused = post(staff[OPERATOR], path)
    assert refused.status_code == 409 and "still assigned" in refused.text
    assert Profile.objects.filter(pk=library_profile.pk).exists()


def test_delete_removes_an_unassigned_profile_audited(staff, library_profile):
    path = f"/profiles/{library_profile.pk}/delete/"
    page = staff[OPERATOR].get(path)
    assert "Delete the profile</button>" in page.text and "keep it" in page.text
    response = post(staff[OPERATOR], path)
    assert response.status_code == 302 and response["Location"] == "/profiles/"
    assert not Profile.objects.exists()
    assert audited("profile.deleted").target == "com.example.wifi"


# --- enrollments -------------------------------------------------------------------------------

ALL_BITS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def create(client, **fields):
    data = {
        "name": "Lab Macs",
        "access_rights": ALL_BITS,
        "identity": "scep",
        "check_out_when_removed": "on",
        **fields,
    }
    return post(client, "/enrollments/new/", data)


def test_the_form_offers_every_right_in_words(staff):
    html = staff[OPERATOR].get("/enrollments/new/").text
    assert html.count('name="access_rights"') == 13
    assert "2: install and remove configuration profiles" in html
    assert "8: erase the device" in html


def test_create_an_enrollment_then_see_its_link_and_qr_code(settings, staff, group):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    response = create(staff[OPERATOR], group=group.pk, max_uses="5", expires_days="7")
    enrollment = Enrollment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/enrollments/{enrollment.pk}/"
    assert enrollment.access_rights == 8191 and enrollment.group == group
    assert enrollment.max_uses == 5 and enrollment.check_out_when_removed
    assert not enrollment.sign_message and enrollment.created_by == "operator-user"
    assert dt.timedelta(days=6) < enrollment.expires_at - timezone.now() <= dt.timedelta(days=7)
    entry = audited("enrollment.created")
    assert entry.details["access_rights"] == 8191 and enrollment.token not in str(entry.details)
    link = f"https://mdm.example.org/enroll/{enrollment.token}/"
    page = staff[VIEWER].get(f"/enrollments/{enrollment.pk}/").text
    assert f'href="{link}"' in page
    assert '<svg role="img" aria-label="QR code of the link"' in page and "qrline" in page
    assert link in staff[VIEWER].get("/enrollments/").text


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"access_rights": [2]},
            "access_rights",
            "AccessRights 2 (install/remove profiles) requires 1",
        ),
        (
            {"access_rights": [128, 1]},
            "access_rights",
            "128 (install provisioning profiles) requires 64",
        ),
        ({"access_rights": []}, "access_rights", "AccessRights must be between 1 and 8191"),
        ({"name": "  "}, "name", "required"),
        ({"max_uses": "0"}, "max_uses", "greater than or equal to 1"),
        ({"expires_days": "-3"}, "expires_days", "greater than or equal to 1"),
        ({"identity": "telepathy"}, "identity", "Select a valid choice"),
    ],
)
def test_enrollment_creation_is_validated_next_to_the_field(staff, fields, field, message):
    response = create(staff[OPERATOR], **fields)
    assert response.status_code == 400
    assert message.lower() in field_errors(response.text, field)
    assert not Enrollment.objects.exists()
    assert not AuditEntry.objects.filter(action="enrollment.created").exists()


def test_download_its_profile_counts_a_use_as_the_link_does(ca, push, staff, enrollment):
    path = f"/enrollments/{enrollment.pk}/profile"
    assert staff[OPERATOR].get(path).status_code == 405
    response = post(staff[OPERATOR], path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert 'filename="Staff-iPads.mobileconfig"' in response["Content-Disposition"]
    assert response["Cache-Control"].startswith("no-store")
    enrollment.refresh_from_db()
    assert enrollment.uses == 1
    entry = audited("enrollment.profile_issued")
    assert entry.actor == "operator-user" and entry.details["uses"] == 1


def test_a_download_that_cannot_be_made_says_why(staff, enrollment):
    response = post(staff[OPERATOR], f"/enrollments/{enrollment.pk}/profile")  # no push cert
    assert response.status_code == 409 and "no push certificate" in response.text
    enrollment.refresh_from_db()
    assert enrollment.uses == 0


def test_the_enrollment_page_lists_the_devices_it_enrolled_and_no_secret(staff, enrollment, fleet):
    DeviceEnrollment.objects.create(device=fleet[0], enrollment=enrollment, since=timezone.now())
    html = staff[VIEWER].get(f"/enrollments/{enrollment.pk}/").text
    assert "iPad 1" in html and "iPad 2" not in html
    assert "challenge" not in html.lower()
    assert "1" in staff[VIEWER].get("/enrollments/").text


def test_deactivate_asks_first_then_turns_the_link_off(client, staff, enrollment):
    path = f"/enrollments/{enrollment.pk}/deactivate/"
    page = staff[OPERATOR].get(path)
    assert "Turn the link off</button>" in page.text and "stay enrolled" in page.text
    response = post(staff[OPERATOR], path)
    assert response.status_code == 302
    enrollment.refresh_from_db()
    assert not enrollment.active
    assert audited("enrollment.deactivated").target == "Staff iPads"
    assert client.get(f"/enroll/{enrollment.token}/").status_code == 410
    assert "turned off" in staff[VIEWER].get(f"/enrollments/{enrollment.pk}/").text
    assert "Turn off…" not in staff[OPERATOR].get(f"/enrollments/{enrollment.pk}/").text
