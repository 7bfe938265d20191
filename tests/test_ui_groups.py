"""The group pages: create, rename, add and remove devices, assign profiles, delete; what each
change queues for the profile library and how it is audited."""

import re

import pytest

from devices.models import Device, DeviceGroup
from enrollment.models import ProfileAssignment
from mdm_portal.models import AuditEntry
from mdm_portal.roles import OPERATOR, VIEWER
from tests.library_support import (  # noqa: F401 - fixtures, used by name
    audited,
    enrollment_fixture,
    field_errors,
    fleet_fixture,
    group_fixture,
    library_profile_fixture,
    post,
    push_fixture,
    queued,
    report_installed,
)

pytestmark = pytest.mark.django_db


def test_create_a_group_and_refuse_a_taken_name(staff, group):
    response = post(staff[OPERATOR], "/groups/new/", {"name": "Lab", "description": "Lab Macs"})
    lab = DeviceGroup.objects.get(name="Lab")
    assert response.status_code == 302 and response["Location"] == f"/groups/{lab.pk}/"
    assert audited("group.created").target == "Lab"
    taken = post(staff[OPERATOR], "/groups/new/", {"name": "sales"})
    assert taken.status_code == 400 and "already exists" in field_errors(taken.text, "name")
    empty = post(staff[OPERATOR], "/groups/new/", {"name": " "})
    assert empty.status_code == 400
    assert DeviceGroup.objects.count() == 2


def test_rename_a_group(staff, group):
    DeviceGroup.objects.create(name="Lab")
    path = f"/groups/{group.pk}/rename/"
    assert post(staff[OPERATOR], path, {"name": "Lab"}).status_code == 400
    response = post(staff[OPERATOR], path, {"name": "Field sales", "description": "On the road"})
    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.name, group.description) == ("Field sales", "On the road")
    assert audited("group.renamed").details["old_name"] == "Sales"


def test_adding_devices_queues_the_group_profiles_they_lack(staff, library_profile, group, fleet):
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    report_installed(library_profile, fleet[1])
    text = f"{fleet[0].udid}, {fleet[1].serial_number}"
    response = post(staff[OPERATOR], f"/groups/{group.pk}/add/", {"devices": text}, follow=True)
    assert "2 device(s) added to Sales" in response.text
    assert "Queued: 1 InstallProfile and 0 RemoveProfile" in response.text
    assert set(group.devices.all()) == {fleet[0], fleet[1]}
    assert queued("InstallProfile") == ["iPad 1"]
    entry = audited("group.devices_added")
    assert sorted(entry.details["devices"]) == sorted([fleet[0].udid, fleet[1].udid])
    assert "iPad 1" in staff[VIEWER].get(f"/groups/{group.pk}/").text


def test_moving_devices_from_another_group_removes_what_only_it_gave(
    staff, library_profile, group, fleet
):
    old = DeviceGroup.objects.create(name="Old")
    Device.objects.filter(pk=fleet[0].pk).update(group=old)
    ProfileAssignment.objects.create(profile=library_profile, group=old)
    report_installed(library_profile, fleet[0])
    response = post(
        staff[OPERATOR], f"/groups/{group.pk}/add/", {"devices": fleet[0].udid}, follow=True
    )
    assert "(1 left another group to join)" in response.text
    assert queued("RemoveProfile") == ["iPad 1"]
    fleet[0].refresh_from_db()
    assert fleet[0].group == group


def test_adding_unknown_devices_changes_nothing(staff, group, fleet):
    response = post(
        staff[OPERATOR], f"/groups/{group.pk}/add/", {"devices": f"{fleet[0].udid} BOGUS-1"}
    )
    assert response.status_code == 400 and "bogus-1" in field_errors(response.text, "devices")
    assert not group.devices.exists()
    assert not AuditEntry.objects.filter(action="group.devices_added").exists()


def test_removing_devices_asks_first_then_removes_the_group_profiles(
    staff, library_profile, group, fleet
):
    Device.objects.filter(pk__in=[d.pk for d in fleet]).update(group=group)
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    ProfileAssignment.objects.create(profile=library_profile, device=fleet[1])  # keeps it
    for device in fleet[:2]:
        report_installed(library_profile, device)
    path = f"/groups/{group.pk}/remove/"
    page = staff[OPERATOR].get(path + f"?device={fleet[0].udid}&device={fleet[1].udid}")
    assert page.status_code == 200 and "Remove 2 device(s) from Sales?" in page.text
    assert group.devices.count() == 3
    response = post(
        staff[OPERATOR], path, {"devices": f"{fleet[0].udid}\n{fleet[1].udid}"}, follow=True
    )
    assert "2 device(s) removed from Sales" in response.text
    assert queued("RemoveProfile") == ["iPad 1"]  # iPad 2 keeps it by its own assignment
    assert list(group.devices.all()) == [fleet[2]]
    assert audited("group.devices_removed").details["removals"] == 1
    nothing = staff[OPERATOR].get(path)
    assert nothing.status_code == 400 and "at least one" in nothing.text


def test_assign_a_profile_from_the_group_page(staff, library_profile, group, fleet):
    Device.objects.filter(pk=fleet[0].pk).update(group=group)
    response = post(
        staff[OPERATOR], f"/groups/{group.pk}/assign/", {"profile": library_profile.pk}, follow=True
    )
    assert "InstallProfile queued for 1 device(s)" in response.text
    assert queued("InstallProfile") == ["iPad 1"]
    assert post(staff[OPERATOR], f"/groups/{group.pk}/assign/", {"profile": 999}).status_code == 400


def test_deleting_a_group_says_what_happens_then_unassigns_its_profiles(
    staff, library_profile, group, enrollment, fleet
):
    Device.objects.filter(pk__in=[d.pk for d in fleet[:2]]).update(group=group)
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    report_installed(library_profile, fleet[0])
    path = f"/groups/{group.pk}/delete/"
    page = staff[OPERATOR].get(path).text
    assert "Its 2 device(s) stay enrolled, in no group." in page
    assert "Office Wi-Fi" in page and "Staff iPads" in page
    response = post(staff[OPERATOR], path)
    assert response.status_code == 302 and response["Location"] == "/groups/"
    assert not DeviceGroup.objects.exists() and not ProfileAssignment.objects.exists()
    assert queued("RemoveProfile") == ["iPad 1"]
    enrollment.refresh_from_db()
    assert enrollment.group is None
    entry = audited("group.deleted")
    assert entry.details["profiles"] == ["com.example.wifi"] and entry.details["devices"] == 2


def test_the_group_list_counts_devices_and_profiles(staff, library_profile, group, fleet):
    Device.objects.filter(pk__in=[d.pk for d in fleet]).update(group=group)
    ProfileAssignment.objects.create(profile=library_profile, group=group)
    DeviceGroup.objects.create(name="Empty")
    html = staff[VIEWER].get("/groups/").text
    sales = html.split(">Sales</a>")[1].split("</tr>")[0]
    assert re.findall(r'<td class="num">(\d+)</td>', sales) == ["3", "1"]
    empty = html.split(">Empty</a>")[1].split("</tr>")[0]
    assert re.findall(r'<td class="num">(\d+)</td>', empty) == ["0", "0"]
