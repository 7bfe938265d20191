"""The profile library: upload and validate, assign to devices and groups, reconcile."""

import plistlib

import pytest
from django.utils import timezone

from certs.cms import sign, signed_content
from commands.models import Command, QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, DeviceGroup, InstalledProfile
from enrollment.library import LibraryError, assign, unassign, upload_profile
from enrollment.profiles import load_profile
from tests.conftest import new_identity

pytestmark = pytest.mark.django_db


def profile(identifier="com.example.vpn", uuid="5D6A1B0C-1111-4F3E-9A2B-0C0D0E0F1011", **extra):
    return {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": uuid,
        "PayloadDisplayName": "Office VPN",
        "PayloadContent": [
            {
                "PayloadType": "com.apple.vpn.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": identifier + ".vpn",
                "PayloadUUID": "6E7B2C1D-2222-4F3E-9A2B-0C0D0E0F1012",
            }
        ],
        **extra,
    }


def only_library_commands(sim) -> None:
    QueuedCommand.objects.filter(device__udid=sim.udid).exclude(
        request_type__in=["InstallProfile", "RemoveProfile"]
    ).delete()


@pytest.mark.parametrize("encoding", ["xml", "binary", "signed"])
def test_upload_reads_xml_binary_and_signed_profiles(ca, encoding):
    data = plistlib.dumps(
        profile(), fmt=plistlib.FMT_BINARY if encoding == "binary" else plistlib.FMT_XML
    )
    if encoding == "signed":
        certificate, key, _ = new_identity("vendor")
        data = sign(plistlib.dumps(profile()), certificate, key)
    stored = upload_profile(data, uploaded_by="alice")
    assert stored.identifier == "com.example.vpn"
    assert stored.name == "Office VPN"
    assert plistlib.loads(bytes(stored.payload)) == profile()


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ({"PayloadIdentifier": None}, "PayloadIdentifier is missing"),
        ({"PayloadUUID": 7}, "PayloadUUID is missing or not a str"),
        ({"PayloadVersion": "1"}, "PayloadVersion is missing or not a int"),
        ({"PayloadContent": {"x": 1}}, "PayloadContent must be an array"),
        ({"PayloadContent": ["x"]}, "PayloadContent[0] is not a dictionary"),
        (
            {"PayloadContent": [{"PayloadType": "a", "PayloadUUID": "u"}]},
            "has no PayloadIdentifier",
        ),
        ({"PayloadType": "com.apple.wifi.managed"}, "not a configuration profile"),
    ],
)
def test_invalid_profiles_are_refused_saying_what_is_wrong(db, broken, problem):
    body = {k: v for k, v in {**profile(), **broken}.items() if v is not None}
    with pytest.raises(LibraryError) as excinfo:
        upload_profile(plistlib.dumps(body))
    assert problem in str(excinfo.value)


def test_assign_to_a_device_queues_a_signed_install_profile(enrolled):
    only_library_commands(enrolled)
    stored = upload_profile(plistlib.dumps(profile()))
    device = Device.objects.get(udid=enrolled.udid)
    assert assign(stored, device=device, by="alice") == (1, 0)
    delivered = enrolled.idle().plist()["Command"]
    assert delivered["RequestType"] == "InstallProfile"
    assert plistlib.loads(signed_content(delivered["Payload"])) == profile()
    assert assign(stored, device=device, by="alice") == (0, 0)  # already on its way


def enrolled_group(make_device, name: str, size: int):
    """A group of `size` enrolled simulated devices, with nothing queued for them yet."""
    sims = [make_device() for _ in range(size)]
    for sim in sims:
        sim.enroll()
        only_library_commands(sim)
    group = DeviceGroup.objects.create(name=name)
    Device.objects.filter(udid__in=[s.udid for s in sims]).update(group=group)
    return group, sims


def test_group_assignment_reaches_only_members_that_lack_it(make_device):
    group, sims = enrolled_group(make_device, "Sales", 3)
    stored = upload_profile(plistlib.dumps(profile()))
    # The first already has it installed (its ProfileList said so).
    has_it = Device.objects.get(udid=sims[0].udid)
    InstalledProfile.objects.create(
        device=has_it, identifier=stored.identifier, uuid=stored.uuid, reported_at=has_it.created_at
    )
    # The second was enrolled without the right to install profiles.
    Device.objects.filter(udid=sims[1].udid).update(access_rights=1)
    assert assign(stored, group=group, by="alice") == (1, 1)
    command = Command.objects.get(request_type="InstallProfile")
    assert command.profile_link.identifier == stored.identifier
    assert [r.device.udid for r in command.rows.all()] == [sims[2].udid]


def test_profile_list_shows_what_is_installed_and_reconciles_what_is_missing(enrolled):
    stored = upload_profile(plistlib.dumps(profile()))
    device = Device.objects.get(udid=enrolled.udid)
    assign(stored, device=device, by="alice")
    install = QueuedCommand.objects.get(device=device, request_type="InstallProfile")
    # The device fails to install it...
    install.status = Status.ERROR
    install.save()
    # ...and its ProfileList shows only another profile: the missing one is queued again.
    only_library_commands(enrolled)
    listing = enqueue(device, "ProfileList")
    assert enrolled.idle().plist()["CommandUUID"] == listing.uuid
    report = [{"PayloadIdentifier": "com.other", "PayloadUUID": "X", "PayloadDisplayName": "Other"}]
    answer = enrolled.report(listing.uuid, ProfileList=report)
    assert list(
        InstalledProfile.objects.filter(device=device).values_list("identifier", flat=True)
    ) == ["com.other"]
    # The missing profile is queued again, and is the very next command the device gets.
    again = answer.plist()
    assert again["Command"]["RequestType"] == "InstallProfile"
    assert load_profile(again["Command"]["Payload"]) == profile()
    assert QueuedCommand.objects.filter(device=device, request_type="InstallProfile").count() == 2


def test_unassign_queues_remove_profile_where_it_is_installed(enrolled):
    stored = upload_profile(plistlib.dumps(profile()))
    device = Device.objects.get(udid=enrolled.udid)
    assign(stored, device=device, by="alice")
    InstalledProfile.objects.create(
        device=device, identifier=stored.identifier, uuid=stored.uuid, reported_at=device.created_at
    )
    assert unassign(stored, device=device, by="alice") == (1, 0)
    remove = Command.objects.get(request_type="RemoveProfile")
    assert remove.command_dict() == {
        "RequestType": "RemoveProfile",
        "Identifier": stored.identifier,
    }
    # The install that was still waiting is canceled, not delivered after the removal.
    assert not QueuedCommand.objects.filter(
        device=device, request_type="InstallProfile", status=Status.QUEUED
    ).exists()
    with pytest.raises(LibraryError, match="not assigned"):
        unassign(stored, device=device, by="alice")


def test_a_device_keeps_a_profile_its_group_still_assigns(enrolled):
    stored = upload_profile(plistlib.dumps(profile()))
    device = Device.objects.get(udid=enrolled.udid)
    group = DeviceGroup.objects.create(name="All")
    Device.objects.filter(pk=device.pk).update(group=group)
    assign(stored, device=device, by="alice")
    assign(stored, group=group, by="alice")
    InstalledProfile.objects.create(
        device=device, identifier=stored.identifier, uuid=stored.uuid, reported_at=device.created_at
    )
    assert unassign(stored, device=device, by="alice") == (0, 0)
    assert not Command.objects.filter(request_type="RemoveProfile").exists()


def test_a_device_whose_push_token_is_invalid_is_skipped_not_a_refusal(make_device):
    group, sims = enrolled_group(make_device, "Field", 2)
    Device.objects.filter(udid=sims[0].udid).update(token_invalid_at=timezone.now())
    stored = upload_profile(plistlib.dumps(profile()))
    assert assign(stored, group=group, by="alice") == (1, 1)
    assert [
        r.device.udid for r in Command.objects.get(request_type="InstallProfile").rows.all()
    ] == [sims[1].udid]
    for device in Device.objects.filter(group=group):
        InstalledProfile.objects.create(
            device=device,
            identifier=stored.identifier,
            uuid=stored.uuid,
            reported_at=timezone.now(),
        )
    assert unassign(stored, group=group, by="alice") == (1, 1)


def test_a_profile_too_large_is_refused_before_it_is_read(db):
    from enrollment.library import MAX_PROFILE_BYTES

    with pytest.raises(LibraryError, match="at most"):
        upload_profile(b" " * (MAX_PROFILE_BYTES + 1))


def test_uploading_a_new_version_replaces_it_in_the_library(ca):
    upload_profile(plistlib.dumps(profile()))
    newer = upload_profile(plistlib.dumps(profile(uuid="NEW-UUID", PayloadVersion=2)))
    assert newer.uuid == "NEW-UUID" and newer.version == 2
    from enrollment.models import Profile

    assert Profile.objects.count() == 1


def test_mdm_profile_upload_assign_list_unassign(enrolled, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    path = tmp_path / "vpn.mobileconfig"
    path.write_bytes(plistlib.dumps(profile()))
    out = StringIO()
    call_command("mdm_profile", "upload", str(path), stdout=out)
    assert "com.example.vpn" in out.getvalue()
    out = StringIO()
    call_command("mdm_profile", "assign", "com.example.vpn", "--device", enrolled.udid, stdout=out)
    assert "queued for 1 device" in out.getvalue()
    out = StringIO()
    call_command("mdm_profile", "list", stdout=out)
    assert "assigned to 1 device(s), installed on 0" in out.getvalue()
    call_command(
        "mdm_profile", "unassign", "com.example.vpn", "--device", enrolled.udid, stdout=StringIO()
    )
    bad = tmp_path / "bad.mobileconfig"
    bad.write_bytes(b"nope")
    with pytest.raises(CommandError, match="not a property list"):
        call_command("mdm_profile", "upload", str(bad))
    with pytest.raises(CommandError, match="no profile"):
        call_command("mdm_profile", "assign", "com.nope", "--group", "x")
