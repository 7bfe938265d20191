"""The catalog's checks at enqueue time: rights, platforms, versions and the hard commands."""

import base64
import json
import plistlib
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from commands.catalog import DEFINITIONS, required_rights
from commands.catalog.definitions import example_payload
from commands.models import Command, QueuedCommand
from commands.queue import EnqueueError, enqueue
from devices.models import Device
from enrollment.profiles import load_profile
from mdm_portal.models import AuditEntry

pytestmark = pytest.mark.django_db


def device(**fields) -> Device:
    defaults = {"state": Device.State.ENROLLED, "platform": "iOS", "os_version": "17.4"}
    index = Device.objects.count()
    return Device.objects.create(udid=f"CAT-{index}", **{**defaults, **fields})


def refused(devices, request_type, payload=None, match="", **kwargs):
    before = (Command.objects.count(), QueuedCommand.objects.count())
    with pytest.raises(EnqueueError, match=match):
        enqueue(devices, request_type, payload, **kwargs)
    assert (Command.objects.count(), QueuedCommand.objects.count()) == before


def staff(superuser: bool):
    users = get_user_model()
    name = "boss" if superuser else "helpdesk"
    if superuser:
        return users.objects.create_superuser(name, "", "pw-for-tests")
    return users.objects.create_user(name, "", "pw-for-tests", is_staff=True)


def test_unknown_request_type_is_refused_but_raw_is_possible_for_admins():
    target = device()
    refused(target, "MakeCoffee", match="unknown RequestType 'MakeCoffee'")
    refused(target, "MakeCoffee", raw=True, user=staff(False), match="only an administrator")
    command = enqueue(target, "MakeCoffee", {"Sugar": 2}, raw=True, user=staff(True))
    assert command.raw is True
    assert AuditEntry.objects.get(target=command.uuid).details["raw"] is True


def test_missing_key_wrong_type_bad_value_and_unknown_key_are_named():
    target = device(platform="macOS", os_version="14.5")
    refused(target, "InstallProfile", {}, match="Payload")
    refused(target, "InstallProfile", {"Payload": "text"}, match="Payload must be <data>")
    refused(
        target,
        "EraseDevice",
        {"PIN": "123456", "ObliterationBehavior": "Sometimes"},
        match="ObliterationBehavior",
    )
    refused(target, "DeviceLock", {"Colour": "red"}, match="unknown key Colour")
    assert enqueue(target, "DeviceLock", {"Colour": "red"}, raw=True).raw


def test_platform_and_os_version_refusals():
    iphone = device(platform="iOS", os_version="17.4")
    refused(iphone, "SetFirmwarePassword", {"NewPassword": "x"}, match="not supported on iOS")
    refused(iphone, "EraseDevice", {"PIN": "123456"}, match="PIN")
    # A command introduced after the device's OS version.
    newer = next(
        d
        for d in DEFINITIONS.values()
        if (s := d.platforms.get("iOS"))
        and s.introduced
        and s.device_channel
        and int(s.introduced.split(".")[0]) >= 14
    )
    old = device(platform="iOS", os_version="12.4")
    refused(old, newer.request_type, example_payload(newer), match="needs iOS")
    # A device that has not reported its platform yet is not refused for it.
    unknown = device(platform="", os_version="")
    enqueue(unknown, "DeviceLock")


def test_user_channel_only_commands_are_refused_on_the_device_channel():
    user_only = next(
        (d, name)
        for d in DEFINITIONS.values()
        for name, s in d.platforms.items()
        if s.introduced and not s.device_channel
    )
    definition, platform = user_only
    target = device(platform=platform, os_version="99.0")
    refused(target, definition.request_type, example_payload(definition), match="user channel")


def test_access_rights_refusals():
    limited = device(access_rights=1 | 16)
    refused(limited, "EraseDevice", match="EraseDevice needs AccessRights 8")
    refused(limited, "InstallProfile", {"Payload": b"x"}, match="needs AccessRights 2")
    refused(limited, "DeviceLock", match="AccessRights 4")
    refused(
        limited,
        "Settings",
        {"Settings": [{"Item": "DataRoaming", "Enabled": True}]},
        match="AccessRights 2048",
    )
    assert required_rights("Settings") == 2048
    assert required_rights("InstalledApplicationList") == 256


def test_device_information_queries_checked_and_dropped_or_refused_as_chosen():
    limited = device(access_rights=1 | 16)
    refused(limited, "DeviceInformation", {"Queries": ["NoSuchQuery"]}, match="NoSuchQuery")
    refused(limited, "DeviceInformation", {"Queries": ["SerialNumber", "WiFiMAC"]}, match="WiFiMAC")
    command = enqueue(
        limited,
        "DeviceInformation",
        {"Queries": ["SerialNumber", "WiFiMAC", "UDID"]},
        drop_disallowed_queries=True,
    )
    assert command.command_dict()["Queries"] == ["SerialNumber", "UDID"]


def test_install_application_needs_exactly_one_source():
    target = device()
    refused(target, "InstallApplication", {}, match="exactly one")
    refused(
        target,
        "InstallApplication",
        {"iTunesStoreID": 361285480, "ManifestURL": "https://x/manifest.plist"},
        match="got iTunesStoreID, ManifestURL",
    )
    for source in ({"iTunesStoreID": 361285480}, {"Identifier": "com.example.app"}):
        enqueue(target, "InstallApplication", source)


def test_erase_device_needs_a_six_digit_pin_on_macs():
    mac = device(platform="macOS", os_version="14.5")
    refused(mac, "EraseDevice", {}, match="needs the six-digit Find My PIN")
    refused(mac, "EraseDevice", {"PIN": "12ab56"}, match="six digits")
    enqueue(mac, "EraseDevice", {"PIN": "123456"})
    enqueue(device(platform="iOS"), "EraseDevice", {})


def test_settings_is_an_array_of_items():
    target = device()
    refused(target, "Settings", {"Settings": []}, match="at least one")
    refused(target, "Settings", {"Settings": [{"Item": "Nope"}]}, match="Settings")
    items = [{"Item": "DataRoaming", "Enabled": False}, {"Item": "VoiceRoaming", "Enabled": True}]
    command = enqueue(target, "Settings", {"Settings": items})
    assert command.command_dict()["Settings"] == items


def test_declarative_management_carries_its_data(enrolled):
    data = json.dumps({"SyncTokens": {"DeclarationsToken": "abc"}}).encode()
    target = Device.objects.get(udid=enrolled.udid)
    QueuedCommand.objects.filter(device=target).delete()
    refused(target, "DeclarativeManagement", {"Data": b"not json"}, match="JSON")
    enqueue(target, "DeclarativeManagement", {"Data": data})
    delivered = enrolled.idle().plist()["Command"]
    assert delivered == {"RequestType": "DeclarativeManagement", "Data": data}


def test_clear_passcode_is_admin_only_with_a_reason_never_to_lost_devices(enrolled):
    target = Device.objects.get(udid=enrolled.udid)
    QueuedCommand.objects.filter(device=target).delete()
    refused(target, "ClearPasscode", user=staff(False), reason="x", match="only an administrator")
    boss = staff(True)
    refused(target, "ClearPasscode", user=boss, match="reason")
    refused(target, "ClearPasscode", user=boss, raw=True, match="reason")  # raw cannot skip it
    refused(
        target,
        "ClearPasscode",
        {"UnlockToken": b"mine"},
        user=boss,
        reason="x",
        match="added by the server",
    )

    # Lost mode, as the device acknowledges it, blocks ClearPasscode.
    lost = enqueue(target, "EnableLostMode", {"Message": "Call IT"})
    assert enrolled.idle().plist()["CommandUUID"] == lost.uuid
    enrolled.report(lost.uuid)
    assert Device.objects.get(pk=target.pk).lost_mode is True
    refused(target, "ClearPasscode", user=boss, reason="owner at desk", match="lost device")
    found = enqueue(target, "DisableLostMode")
    assert enrolled.idle().plist()["CommandUUID"] == found.uuid
    enrolled.report(found.uuid)

    command = enqueue(target, "ClearPasscode", user=boss, reason="owner at the desk, ID checked")
    assert b"unlock-token-blob" not in bytes(command.payload)
    delivered = enrolled.idle().plist()["Command"]
    assert delivered["UnlockToken"] == enrolled.unlock_token
    entry = AuditEntry.objects.get(action="command.enqueued", target=command.uuid)
    assert entry.details["reason"] == "owner at the desk, ID checked"
    assert entry.actor == "boss"


def test_clear_passcode_needs_an_escrowed_unlock_token():
    target = device()
    refused(target, "ClearPasscode", reason="r", match="no UnlockToken escrowed")


def test_mdm_catalog_lists_every_request_type_and_shows_one():
    out = StringIO()
    call_command("mdm_catalog", stdout=out)
    listing = out.getvalue()
    assert "66 request types" in listing
    for request_type in DEFINITIONS:
        assert request_type in listing
    shown = StringIO()
    call_command("mdm_catalog", "EraseDevice", stdout=shown)
    text = shown.getvalue()
    assert "AccessRights: 8" in text and "NotNow: never" in text and "PIN <string>" in text
    as_json = StringIO()
    call_command("mdm_catalog", "Settings", "--json", stdout=as_json)
    assert json.loads(as_json.getvalue())["keys"][0]["name"] == "Settings"
    with pytest.raises(CommandError, match="unknown RequestType"):
        call_command("mdm_catalog", "Nope", stdout=StringIO())


def test_mdm_enqueue_validates_through_the_catalog_and_decodes_data(enrolled):
    profile = plistlib.dumps({"PayloadType": "Configuration", "PayloadIdentifier": "x"})
    out = StringIO()
    call_command(
        "mdm_enqueue",
        enrolled.udid,
        "InstallProfile",
        "--json",
        json.dumps({"Payload": base64.b64encode(profile).decode()}),
        stdout=out,
    )
    stored = Command.objects.get(uuid=out.getvalue().strip())
    assert load_profile(stored.command_dict()["Payload"]) == plistlib.loads(profile)
    with pytest.raises(CommandError, match="unknown key"):
        call_command("mdm_enqueue", enrolled.udid, "DeviceLock", "--json", '{"X": 1}')
    call_command(
        "mdm_enqueue", enrolled.udid, "DeviceLock", "--json", '{"X": 1}', "--raw", stdout=StringIO()
    )
    with pytest.raises(CommandError, match="reason"):
        call_command("mdm_enqueue", enrolled.udid, "ClearPasscode")


# What an admin adds to the schema's minimal example where a hook asks for more.
EXTRAS = {
    "InstallApplication": {"iTunesStoreID": 361285480},
    "InstallProfile": {
        "Payload": plistlib.dumps({"PayloadType": "Configuration", "PayloadIdentifier": "x"})
    },
    "EraseDevice": {"PIN": "123456"},
}


@pytest.mark.parametrize("request_type", sorted(DEFINITIONS))
def test_every_request_type_can_be_queued(ca, request_type):
    definition = DEFINITIONS[request_type]
    platforms = [
        name
        for name, support in sorted(definition.platforms.items())
        if support.introduced is not None and support.device_channel
    ]
    if not platforms:
        # Only on the user channel, which this server does not speak: refused, not queued.
        platform = next(n for n, s in sorted(definition.platforms.items()) if s.introduced)
        target = device(platform=platform, os_version="99.0")
        refused(target, request_type, example_payload(definition), match="user channel")
        return
    platform = platforms[0]
    target = device(platform=platform, os_version="99.0", unlock_token=b"token")
    payload = {**example_payload(definition), **EXTRAS.get(request_type, {})}
    if platform != "macOS" and request_type == "EraseDevice":
        payload.pop("PIN")
    if request_type == "ClearPasscode":
        payload.pop("UnlockToken")  # the server attaches it at delivery
    command = enqueue(target, request_type, payload, reason="tests")
    queued = plistlib.loads(bytes(command.payload))
    assert queued["RequestType"] == request_type
    assert set(queued) - {"RequestType"} == set(payload)
    assert QueuedCommand.objects.get(command=command).device_id == target.pk


def test_a_refusal_names_the_key_it_is_about():
    mac = device(platform="macOS", os_version="14.5")
    cases = [
        ("InstallProfile", {}, "Payload"),
        (
            "EraseDevice",
            {"PIN": "123456", "ObliterationBehavior": "Sometimes"},
            "ObliterationBehavior",
        ),
        ("DeviceLock", {"Colour": "red"}, "Colour"),
        ("EraseDevice", {}, "PIN"),
        ("ScheduleOSUpdate", {"Updates": [{"InstallAction": 1}]}, "Updates[0].InstallAction"),
        ("Settings", {"Settings": [{"Item": "Nope"}]}, "Settings[0].Item"),
        ("InstallApplication", {}, None),
    ]
    for request_type, payload, key in cases:
        with pytest.raises(EnqueueError) as refusal:
            enqueue(mac, request_type, payload)
        assert refusal.value.key == key, (request_type, str(refusal.value))


def test_only_an_administrator_may_erase_a_device():
    target = device()
    refused(target, "EraseDevice", user=staff(False), match="only an administrator may erase")
    assert enqueue(target, "EraseDevice", user=staff(True)).request_type == "EraseDevice"
