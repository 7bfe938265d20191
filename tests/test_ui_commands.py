"""The command form (/commands/new/): which role may send what, every common form, catalog
errors next to the field they name (400, nothing queued), EraseDevice's typed confirmation and
Mac PIN, ClearPasscode's reason and lost-mode refusal, raw commands, and the audit entries."""

import plistlib
import re

import pytest
from django.utils import timezone

from commands.forms import COMMON_FORMS
from commands.models import Command, QueuedCommand
from devices.models import Device, InstalledProfile
from enrollment.library import upload_profile
from enrollment.models import ProfileCommand
from mdm_portal.models import AuditEntry
from tests.test_profile_library import profile

pytestmark = pytest.mark.django_db

NEW = "/commands/new/"
ADDRESS = "192.0.2.44"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The staff fixture makes four users per test: hash their passwords cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make(udid: str, name: str, **fields) -> Device:
    defaults = {
        "state": Device.State.ENROLLED,
        "platform": "iOS",
        "os_version": "17.4",
        "access_rights": 8191,
        "push_token": "ab" * 32,
        "push_magic": "magic",
        "enrolled_at": timezone.now(),
        "last_seen_at": timezone.now(),
        "unlock_token": b"unlock",
    }
    return Device.objects.create(udid=udid, device_name=name, **{**defaults, **fields})


@pytest.fixture
def fleet(db):
    return {
        "ann": make("IPHONE-ANN", "Ann's iPhone"),
        "bob": make("IPHONE-BOB", "Bob's iPhone"),
        "mac": make("MAC-CAROL", "Carol's Mac", platform="macOS", os_version="14.4"),
    }


def url(*devices, **params) -> str:
    query = "&".join(
        [f"device={d.udid}" for d in devices] + [f"{k}={v}" for k, v in params.items()]
    )
    return f"{NEW}?{query}"


def queued() -> tuple[int, int]:
    return Command.objects.count(), QueuedCommand.objects.count()


def field_error(response, field: str) -> str:
    """The error Django renders for `field` (its errorlist has the field's id)."""
    match = re.search(
        rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.text, re.S
    )
    return re.sub(r"<[^>]+>", "", match.group(1)) if match else ""


def sent(command: Command) -> dict:
    return plistlib.loads(bytes(command.payload))


# --- roles ---------------------------------------------------------------------------------------


def test_a_viewer_sees_no_way_to_send_and_posting_is_refused(staff, fleet):
    viewer = staff["viewer"]
    assert viewer.get(url(fleet["ann"])).status_code == 403
    refused = viewer.post(url(fleet["ann"], type="DeviceLock"), {"Message": "hi"})
    assert refused.status_code == 403 and queued() == (0, 0)
    listing = viewer.get("/commands/")
    assert listing.status_code == 200 and "New command" not in listing.text
    assert "New command" in staff["operator"].get("/commands/").text


def test_an_operator_sends_device_lock_and_it_is_audited_with_the_address(staff, fleet):
    operator = staff["operator"]
    operator.defaults["REMOTE_ADDR"] = ADDRESS
    response = operator.post(
        url(fleet["ann"], fleet["bob"], type="DeviceLock"),
        {"Message": "Please call IT", "PhoneNumber": "+1 555 0100"},
    )
    command = Command.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/commands/{command.uuid}/"
    assert sent(command) == {
        "RequestType": "DeviceLock",
        "Message": "Please call IT",
        "PhoneNumber": "+1 555 0100",
    }
    assert set(QueuedCommand.objects.values_list("device__udid", flat=True)) == {
        "IPHONE-ANN",
        "IPHONE-BOB",
    }
    entry = AuditEntry.objects.get(action="command.enqueued")
    assert (entry.actor, entry.address, entry.target) == ("operator-user", ADDRESS, command.uuid)
    assert sorted(entry.details["udids"]) == ["IPHONE-ANN", "IPHONE-BOB"]
    page = operator.get(response["Location"])
    assert "DeviceLock queued for 2 device(s)." in page.text


@pytest.mark.parametrize(
    "params", [{"type": "EraseDevice"}, {"type": "ClearPasscode"}, {"form": "raw"}]
)
def test_an_operator_cannot_erase_clear_a_passcode_or_send_raw(staff, fleet, params):
    operator = staff["operator"]
    assert operator.get(url(fleet["ann"], **params)).status_code == 403
    post = operator.post(
        url(fleet["ann"], **params),
        {"confirm": "Ann's iPhone", "reason": "asked", "RequestType": "DeviceLock", "body": "{}"},
    )
    assert post.status_code == 403 and queued() == (0, 0)
    assert staff["admin"].get(url(fleet["ann"], **params)).status_code == 200


def test_the_chooser_shows_each_role_only_what_it_may_send(staff, fleet):
    operator = staff["operator"].get(url(fleet["ann"])).text
    admin = staff["admin"].get(url(fleet["ann"])).text
    for page in (operator, admin):
        assert "type=DeviceLock" in page and "type=InstallProfile" in page
    for dangerous in ("type=EraseDevice", "type=ClearPasscode", "form=raw"):
        assert dangerous not in operator
        assert dangerous in admin


@pytest.mark.parametrize("request_type", [*COMMON_FORMS, "InstallProfile"])
def test_every_common_form_renders_with_a_label_for_each_field(staff, fleet, request_type):
    response = staff["admin"].get(
        url(fleet["ann"], fleet["mac"], type=request_type, item="Wallpaper")
    )
    assert response.status_code == 200
    ids = set(re.findall(r'<(?:input|select|textarea)[^>]* id="(id_[^"]+)"', response.text))
    labelled = set(re.findall(r'<label[^>]* for="(id_[^"]+)"', response.text))
    labelled |= {i for i in ids if re.search(rf'<div id="{i}"', response.text)}  # in a fieldset
    assert ids <= labelled | {i for i in ids if re.match(r"id_\w+_\d+$", i)}, ids - labelled


def test_the_advanced_form_takes_any_request_type_from_the_catalog(staff, fleet):
    page = staff["operator"].get(url(fleet["mac"], type="ScheduleOSUpdate", form="advanced"))
    assert page.status_code == 200 and 'name="Updates"' in page.text
    response = staff["operator"].post(
        url(fleet["mac"], type="ScheduleOSUpdate", form="advanced"),
        {
            "Updates": '[{"ProductKey": "MSU_UPDATE_23E224_patch_14.4.1", '
            '"InstallAction": "Default"}]'
        },
    )
    assert response.status_code == 302
    assert sent(Command.objects.get())["Updates"][0]["InstallAction"] == "Default"


# --- catalog errors next to their field ----------------------------------------------------------


def test_a_catalog_error_is_shown_next_to_the_key_it_names(staff, fleet):
    response = staff["operator"].post(
        url(fleet["mac"], type="ScheduleOSUpdate", form="advanced"),
        {"Updates": '[{"InstallAction": "Sometimes"}]'},
    )
    assert response.status_code == 400 and queued() == (0, 0)
    assert "key Updates[0].InstallAction must be one of" in field_error(response, "Updates")
    assert "Not queued" in response.text


def test_bad_json_and_a_missing_required_key_are_field_errors(staff, fleet):
    bad = staff["operator"].post(
        url(fleet["mac"], type="ScheduleOSUpdate", form="advanced"), {"Updates": "[{"}
    )
    assert bad.status_code == 400 and "not valid JSON" in field_error(bad, "Updates")
    missing = staff["operator"].post(url(fleet["ann"], type="RemoveProfile"), {"Identifier": ""})
    assert missing.status_code == 400 and queued() == (0, 0)
    assert "missing required key Identifier" in field_error(missing, "Identifier")


def test_a_refusal_naming_no_key_is_shown_above_the_form(staff, fleet):
    response = staff["operator"].post(url(fleet["ann"], type="InstallApplication"), {})
    assert response.status_code == 400 and queued() == (0, 0)
    assert "give exactly one of iTunesStoreID, ManifestURL, Identifier" in response.text
    fleet["bob"].state = Device.State.CHECKED_OUT
    fleet["bob"].save()
    response = staff["operator"].post(url(fleet["bob"], type="DeviceLock"), {})
    assert response.status_code == 400 and "are not managed" in response.text


def test_keys_no_target_supports_are_left_out(staff, fleet):
    iphones = staff["operator"].get(url(fleet["ann"], type="DeviceLock")).text
    with_mac = staff["operator"].get(url(fleet["ann"], fleet["mac"], type="DeviceLock")).text
    assert 'name="PIN"' not in iphones and 'name="Message"' in iphones
    assert 'name="PIN"' in with_mac


# --- the common commands -------------------------------------------------------------------------


def test_device_information_ticks_the_queries_the_rights_allow(staff, fleet):
    limited = make("IPAD-LIMITED", "Limited iPad", access_rights=1 | 16)
    page = staff["operator"].get(url(limited, type="DeviceInformation")).text
    assert re.search(r'value="DeviceName"[^>]*checked', page)
    assert not re.search(r'value="BluetoothMAC"[^>]*checked', page)  # needs 32
    response = staff["operator"].post(
        url(limited, type="DeviceInformation"), {"Queries": ["DeviceName", "BluetoothMAC"]}
    )
    assert response.status_code == 400 and "do not allow BluetoothMAC" in field_error(
        response, "Queries"
    )
    staff["operator"].post(
        url(limited, type="DeviceInformation"),
        {"Queries": ["DeviceName", "BluetoothMAC"], "drop_disallowed": "on"},
    )
    assert sent(Command.objects.get())["Queries"] == ["DeviceName"]


def test_settings_builds_one_item_of_the_chosen_kind(staff, fleet):
    page = staff["operator"].get(url(fleet["ann"], type="Settings")).text
    assert 'value="DeviceName"' in page and 'name="DeviceName"' not in page
    target = url(fleet["ann"], type="Settings", item="DeviceName")
    assert staff["operator"].post(target, {"DeviceName": "Front desk"}).status_code == 302
    assert sent(Command.objects.get())["Settings"] == [
        {"Item": "DeviceName", "DeviceName": "Front desk"}
    ]
    response = staff["operator"].post(url(fleet["ann"], type="Settings", item="Bluetooth"), {})
    assert response.status_code == 400 and "required" in field_error(response, "Enabled")


def test_install_profile_comes_from_the_library_and_is_linked_to_it(staff, fleet, ca):
    stored = upload_profile(plistlib.dumps(profile()), uploaded_by="tests")
    operator = staff["operator"]
    operator.defaults["REMOTE_ADDR"] = ADDRESS
    assert "Office VPN" in operator.get(url(fleet["ann"], type="InstallProfile")).text
    response = operator.post(url(fleet["ann"], type="InstallProfile"), {"profile": stored.pk})
    command = Command.objects.get(request_type="InstallProfile")
    assert response.status_code == 302
    assert ProfileCommand.objects.get(command=command).identifier == "com.example.vpn"
    assert command.queued_by == "operator-user"
    assert sent(command)["Payload"][:1] == b"\x30"  # signed by the portal: CMS SignedData (DER)
    entry = AuditEntry.objects.get(action="command.enqueued", target=command.uuid)
    assert (entry.actor, entry.address) == ("operator-user", ADDRESS)
    page = operator.get(response["Location"]).text
    assert f'<a href="/profiles/{stored.pk}/">com.example.vpn</a>' in page
    empty = operator.post(url(fleet["ann"], type="InstallProfile"), {})
    assert empty.status_code == 400 and field_error(empty, "profile")


def test_remove_profile_offers_what_the_devices_report_installed(staff, fleet):
    InstalledProfile.objects.create(
        device=fleet["ann"],
        identifier="com.example.wifi",
        display_name="Wi-Fi",
        reported_at=timezone.now(),
    )
    page = staff["operator"].get(url(fleet["ann"], type="RemoveProfile")).text
    assert 'value="com.example.wifi"' in page and "Wi-Fi (com.example.wifi)" in page
    staff["operator"].post(
        url(fleet["ann"], type="RemoveProfile"), {"installed": "com.example.wifi"}
    )
    assert sent(Command.objects.get()) == {
        "RequestType": "RemoveProfile",
        "Identifier": "com.example.wifi",
    }


@pytest.mark.parametrize(
    ("request_type", "data", "expected"),
    [
        ("ProfileList", {"ManagedOnly": "on"}, {"ManagedOnly": True}),
        ("SecurityInfo", {}, {}),
        (
            "InstalledApplicationList",
            {"Identifiers": "com.a\n\ncom.b\n"},
            {"Identifiers": ["com.a", "com.b"]},
        ),
        ("RestartDevice", {}, {}),
        ("ShutDownDevice", {}, {}),
        ("InstallApplication", {"iTunesStoreID": "361285480"}, {"iTunesStoreID": 361285480}),
        (
            "EnableLostMode",
            {"Message": "Found me?", "Footnote": "IT"},
            {"Message": "Found me?", "Footnote": "IT"},
        ),
        ("DisableLostMode", {}, {}),
    ],
)
def test_the_common_forms_queue_what_was_typed(staff, fleet, request_type, data, expected):
    response = staff["operator"].post(url(fleet["ann"], type=request_type), data)
    assert response.status_code == 302, response.text
    assert sent(Command.objects.get()) == {"RequestType": request_type, **expected}


# --- EraseDevice and ClearPasscode ---------------------------------------------------------------


def test_erase_needs_the_device_name_typed(staff, fleet):
    admin = staff["admin"]
    wrong = admin.post(url(fleet["ann"], type="EraseDevice"), {"confirm": "Ann's iPad"})
    assert wrong.status_code == 400 and queued() == (0, 0)
    assert "Type “Ann&#x27;s iPhone” exactly" in field_error(wrong, "confirm")
    right = admin.post(url(fleet["ann"], type="EraseDevice"), {"confirm": "Ann's iPhone"})
    assert right.status_code == 302 and sent(Command.objects.get()) == {
        "RequestType": "EraseDevice"
    }


def test_erase_of_many_devices_needs_their_count_and_a_mac_its_pin(staff, fleet):
    admin = staff["admin"]
    macs = url(fleet["mac"], make("MAC-DAN", "Dan's Mac", platform="macOS"), type="EraseDevice")
    assert "Type the number of devices to confirm" in admin.get(macs).text
    no_pin = admin.post(macs, {"confirm": "2"})
    assert no_pin.status_code == 400 and queued() == (0, 0)
    assert "needs the six-digit Find My PIN" in field_error(no_pin, "PIN")
    short = admin.post(macs, {"confirm": "2", "PIN": "12ab"})
    assert "six digits" in field_error(short, "PIN") and queued() == (0, 0)
    # An iPhone refuses the PIN a Mac needs: the catalog says so, by the field.
    mixed = admin.post(
        url(fleet["ann"], fleet["mac"], type="EraseDevice"), {"confirm": "2", "PIN": "123456"}
    )
    assert "PIN is not supported on iOS" in field_error(mixed, "PIN") and queued() == (0, 0)
    assert admin.post(macs, {"confirm": "2", "PIN": "123456"}).status_code == 302
    assert sent(Command.objects.get())["PIN"] == "123456"


def test_erase_is_never_sent_without_its_confirmation(staff, fleet):
    admin = staff["admin"]
    advanced = admin.get(url(fleet["ann"], type="EraseDevice", form="advanced")).text
    assert 'name="confirm"' in advanced  # the advanced form of EraseDevice is its own form
    raw = admin.post(url(fleet["ann"], form="raw"), {"RequestType": "EraseDevice", "body": "{}"})
    assert raw.status_code == 400 and queued() == (0, 0)
    assert "its own form" in field_error(raw, "RequestType")


def test_clear_passcode_needs_a_reason_and_never_goes_to_a_lost_device(staff, fleet):
    admin = staff["admin"]
    admin.defaults["REMOTE_ADDR"] = ADDRESS
    no_reason = admin.post(url(fleet["ann"], type="ClearPasscode"), {"reason": "  "})
    assert no_reason.status_code == 400 and field_error(no_reason, "reason") and queued() == (0, 0)
    fleet["bob"].lost_mode = True
    fleet["bob"].save()
    lost = admin.post(url(fleet["bob"], type="ClearPasscode"), {"reason": "owner at the desk"})
    assert lost.status_code == 400 and queued() == (0, 0)
    assert "never sent to a lost device: IPHONE-BOB" in lost.text
    done = admin.post(url(fleet["ann"], type="ClearPasscode"), {"reason": "owner at the desk"})
    command = Command.objects.get()
    assert done.status_code == 302 and "UnlockToken" not in sent(command)
    entry = AuditEntry.objects.get(action="command.enqueued")
    assert entry.details["reason"] == "owner at the desk" and entry.address == ADDRESS


# --- raw commands --------------------------------------------------------------------------------


def test_an_admin_sends_raw_json_or_plist(staff, fleet):
    admin = staff["admin"]
    response = admin.post(
        url(fleet["ann"], form="raw"), {"RequestType": "DeviceLock", "body": '{"Colour": "red"}'}
    )
    command = Command.objects.get()
    assert response.status_code == 302 and command.raw
    assert sent(command) == {"RequestType": "DeviceLock", "Colour": "red"}
    body = plistlib.dumps({"Sugar": 2}).decode()
    admin.post(url(fleet["ann"], form="raw"), {"RequestType": "MakeCoffee", "body": body})
    assert sent(Command.objects.get(request_type="MakeCoffee")) == {
        "RequestType": "MakeCoffee",
        "Sugar": 2,
    }
    bad = admin.post(url(fleet["ann"], form="raw"), {"RequestType": "DeviceLock", "body": "{x"})
    assert bad.status_code == 400 and "neither JSON nor an XML plist" in field_error(bad, "body")
