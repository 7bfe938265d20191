"""Group membership (devices.groups): moving devices in and out of a group is one UPDATE,
audited with the devices it moved, and the profile library follows: the new group's profiles
are queued where missing, the old group's removed where nothing else assigns them."""

import plistlib

import pytest

from commands.models import Command, QueuedCommand
from devices.groups import add_to_group, remove_from_group
from devices.models import Device, DeviceGroup, InstalledProfile
from enrollment.library import assign, upload_profile
from mdm_portal.models import AuditEntry
from tests.ui_support import make_user

pytestmark = pytest.mark.django_db


def profile(identifier: str) -> bytes:
    return plistlib.dumps(
        {
            "PayloadType": "Configuration",
            "PayloadVersion": 1,
            "PayloadIdentifier": identifier,
            "PayloadUUID": f"{identifier}-uuid",
            "PayloadDisplayName": identifier,
            "PayloadContent": [
                {
                    "PayloadType": "com.apple.wifi.managed",
                    "PayloadVersion": 1,
                    "PayloadIdentifier": identifier + ".wifi",
                    "PayloadUUID": f"{identifier}-wifi-uuid",
                }
            ],
        }
    )


def library_commands(device: Device) -> list[tuple[str, str]]:
    rows = QueuedCommand.objects.filter(
        device=device, request_type__in=["InstallProfile", "RemoveProfile"]
    ).select_related("command__profile_link")
    return sorted((r.request_type, r.command.profile_link.identifier) for r in rows)


def test_adding_moves_devices_once_and_audits_who_and_which(ca):
    sales, lab = DeviceGroup.objects.create(name="Sales"), DeviceGroup.objects.create(name="Lab")
    devices = [
        Device.objects.create(udid=f"UDID-{n}", group=sales if n else None) for n in range(3)
    ]
    person = make_user("paula", "operator")
    moved = add_to_group(lab, Device.objects.all(), actor=person, address="198.51.100.9")
    assert moved == 3
    assert set(lab.devices.values_list("udid", flat=True)) == {d.udid for d in devices}
    assert add_to_group(lab, Device.objects.all(), actor=person) == 0  # already there
    entry = AuditEntry.objects.get(action="group.devices_added")
    assert (entry.actor, entry.target, entry.address) == ("paula", "Lab", "198.51.100.9")
    assert entry.details == {"count": 3, "devices": ["UDID-0", "UDID-1", "UDID-2"]}

    assert remove_from_group(lab, Device.objects.filter(udid="UDID-1"), actor=person) == 1
    assert remove_from_group(sales, Device.objects.all(), actor=person) == 0  # none in it
    assert Device.objects.get(udid="UDID-1").group is None
    removed = AuditEntry.objects.get(action="group.devices_removed")
    assert removed.target == "Lab" and removed.details["devices"] == ["UDID-1"]


def test_the_new_groups_profiles_are_queued_and_the_old_ones_removed(enrolled):
    sales, lab = DeviceGroup.objects.create(name="Sales"), DeviceGroup.objects.create(name="Lab")
    device = Device.objects.get(udid=enrolled.udid)
    Device.objects.filter(pk=device.pk).update(group=sales)
    sales_wifi = upload_profile(profile("com.example.sales"))
    lab_wifi = upload_profile(profile("com.example.lab"))
    everyone = upload_profile(profile("com.example.everyone"))
    assign(sales_wifi, group=sales, by="alice")
    assign(everyone, group=sales, by="alice")
    assign(everyone, group=lab, by="alice")
    assign(lab_wifi, group=lab, by="alice")
    for stored in (sales_wifi, everyone):  # the device reported both installed
        InstalledProfile.objects.create(
            device=device,
            identifier=stored.identifier,
            uuid=stored.uuid,
            reported_at=device.created_at,
        )
    QueuedCommand.objects.filter(device=device).delete()

    add_to_group(lab, Device.objects.filter(pk=device.pk), actor=make_user("paula", "operator"))

    # Lab's own profile is installed, Sales' removed; the one both groups assign stays.
    assert library_commands(device) == [
        ("InstallProfile", "com.example.lab"),
        ("RemoveProfile", "com.example.sales"),
    ]
    assert Command.objects.get(request_type="RemoveProfile").queued_by == "paula"


def test_leaving_every_group_removes_what_the_group_gave(enrolled):
    sales = DeviceGroup.objects.create(name="Sales")
    device = Device.objects.get(udid=enrolled.udid)
    Device.objects.filter(pk=device.pk).update(group=sales)
    stored = upload_profile(profile("com.example.sales"))
    assign(stored, group=sales, by="alice")
    InstalledProfile.objects.create(
        device=device, identifier=stored.identifier, uuid=stored.uuid, reported_at=device.created_at
    )
    QueuedCommand.objects.filter(device=device).delete()
    remove_from_group(sales, Device.objects.filter(pk=device.pk), actor="alice")
    assert library_commands(device) == [("RemoveProfile", "com.example.sales")]
