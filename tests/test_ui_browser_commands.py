"""The command pages in real headless Chromium against the live server: an operator sends
DeviceLock from the form and watches its status turn acknowledged without reloading, while a
simulated device polls over HTTP; an administrator erases a device with the typed
confirmation. Screenshots of /commands/, a command page and the forms go to the artifacts."""

import plistlib
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, DeviceGroup
from enrollment.library import upload_profile
from mdm_portal.roles import ADMIN, OPERATOR
from tests.conftest import ARTIFACTS
from tests.simulator import SimulatedDevice
from tests.test_profile_library import profile
from tests.test_ui_commands import make
from tests.ui_support import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What a simulated device answers to the inventory commands its enrollment queued.
ANSWERS = {
    "DeviceInformation": {
        "QueryResponses": {"DeviceName": "Front desk iPhone", "OSVersion": "17.4", "Model": "A2849"}
    },
    "SecurityInfo": {"SecurityInfo": {"PasscodePresent": True, "HardwareEncryptionCaps": 3}},
    "ProfileList": {"ProfileList": []},
    "InstalledApplicationList": {"InstalledApplicationList": []},
    "CertificateList": {"CertificateList": []},
}


def answer_until(sim: SimulatedDevice, request_type: str) -> str:
    """Poll and acknowledge every command until `request_type` is answered; its UUID."""
    reply = sim.idle()
    while reply.body:
        delivered = reply.plist()
        kind = delivered["Command"]["RequestType"]
        reply = sim.report(delivered["CommandUUID"], **ANSWERS.get(kind, {}))
        if kind == request_type:
            return delivered["CommandUUID"]
    raise AssertionError(f"{request_type} was never delivered")


def fleet() -> list[Device]:
    """A dozen devices, as a small office has them."""
    sales = DeviceGroup.objects.create(name="Sales")
    now = timezone.now()
    people = ["Ann", "Bob", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo"]
    devices = [
        make(
            f"0000{8100 + i}-{name.upper()}",
            f"{name}'s iPhone",
            group=sales,
            last_seen_at=now - timedelta(hours=i * 7),
            model="A2849",
            serial_number=f"F2LX{i}",
        )
        for i, name in enumerate(people)
    ]
    devices.append(make("MAC-KIM", "Kim's MacBook Air", platform="macOS", os_version="14.4.1"))
    return devices


APPS = [
    {
        "Identifier": "com.apple.Keynote",
        "Name": "Keynote",
        "ShortVersion": "14.1",
        "BundleSize": 712,
    },
    {
        "Identifier": "com.microsoft.Outlook",
        "Name": "Outlook",
        "ShortVersion": "4.24",
        "BundleSize": 390,
    },
]


def spread(command, statuses: list[str], answer: dict | None = None) -> None:
    """Give the command's rows these statuses, with results and errors as devices send them."""
    rows = list(
        QueuedCommand.objects.filter(command=command).select_related("device").order_by("id")
    )
    now = timezone.now()
    for row, status in zip(rows, statuses, strict=False):
        row.status = status
        row.sent_at = now - timedelta(minutes=5)
        if status not in (Status.QUEUED, Status.SENT, Status.NOT_NOW):
            row.answered_at = now
        if status == Status.ACKNOWLEDGED:
            report = {"Status": "Acknowledged", "UDID": row.device.udid, **(answer or {})}
            row.result = plistlib.dumps(report, fmt=plistlib.FMT_BINARY)
        if status == Status.ERROR:
            row.error_chain = [
                {
                    "ErrorCode": 12021,
                    "ErrorDomain": "MCMDMErrorDomain",
                    "LocalizedDescription": "The device is not supervised.",
                }
            ]
    fields = ["status", "sent_at", "answered_at", "error_chain", "result"]
    QueuedCommand.objects.bulk_update(rows, fields)


# Resolves once htmx has swapped the live part in again (it polls every few seconds).
AFTER_NEXT_SWAP = """() => new Promise(resolve =>
    document.addEventListener("htmx:afterSwap", () => resolve(true), {once: true}))"""


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"commands-{name}.png"), full_page=True)


def test_send_device_lock_watch_it_acknowledged_then_erase(browser_page, http_device):
    page = browser_page
    make_user("olivia", OPERATOR)
    make_user("adam", ADMIN)
    devices = fleet()
    sim = http_device()
    sim.enroll()
    answer_until(sim, "CertificateList")  # the enrollment's inventory, answered
    everyone = Device.objects.filter(pk__in=[d.pk for d in devices[:10]])
    bulk = enqueue(everyone, "InstalledApplicationList", {"ManagedAppsOnly": True}, queued_by="ops")
    statuses = [Status.ACKNOWLEDGED] * 5 + [Status.ERROR, Status.NOT_NOW, Status.SENT]
    spread(bulk, statuses, {"InstalledApplicationList": APPS})
    settings = enqueue(
        devices[:4],
        "Settings",
        {"Settings": [{"Item": "Bluetooth", "Enabled": True}]},
        queued_by="ops",
    )
    spread(settings, [Status.ACKNOWLEDGED] * 3 + [Status.EXPIRED])

    log_in(page, "olivia")
    page.goto("/commands/")
    shot(page, "list")

    page.goto(f"/commands/new/?device={sim.udid}")
    shot(page, "chooser")
    page.get_by_role("link", name=re.compile("^Lock")).click()
    page.get_by_label("Message on the lock screen").fill("This iPhone is locked: call IT")
    page.get_by_label("Phone number on the lock screen").fill("+1 555 0100")
    shot(page, "form-device-lock")
    page.get_by_role("button", name="Send DeviceLock to 1 device").click()
    page.wait_for_url(re.compile(r"/commands/[0-9A-F-]{36}/$"))
    page.get_by_text("DeviceLock queued for 1 device(s).").wait_for()
    page.locator("#live .badge.queued").first.wait_for()
    page.evaluate("window.notReloaded = true")
    shot(page, "detail-queued")

    command_uuid = answer_until(sim, "DeviceLock")
    assert page.url.endswith(f"/commands/{command_uuid}/")
    page.locator("#live td .badge.acknowledged").wait_for(timeout=15_000)
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the live part in place
    assert page.locator("#live").get_attribute("hx-trigger") is None  # polling stopped
    shot(page, "detail-acknowledged")

    # The live part refreshes while devices wait; what a person opened or ticked stays so.
    page.goto(f"/commands/{bulk.uuid}/")
    page.locator("#live td details summary").first.click()
    page.get_by_text("Cancel what is still queued (3 devices)").click()
    page.get_by_label("Yes, cancel it for the devices that have not received it").check()
    page.evaluate(AFTER_NEXT_SWAP)
    assert page.locator("#live td details").first.get_attribute("open") is not None
    assert page.locator("#confirm-cancel").is_checked()
    shot(page, "detail-bulk")
    page.set_viewport_size({"width": 820, "height": 1000})
    shot(page, "detail-bulk-tablet")
    page.goto("/commands/")
    shot(page, "list-tablet")
    page.set_viewport_size({"width": 1366, "height": 900})

    page.get_by_role("button", name="Log out").click()
    log_in(page, "adam")
    target = Device.objects.get(udid=devices[0].udid)
    page.goto(f"/commands/new/?device={target.udid}&type=EraseDevice")
    page.get_by_label("Type the device's name to confirm").fill("Ann's iPad")
    page.get_by_role("button", name="Send EraseDevice to 1 device").click()
    page.locator("#id_confirm_error").wait_for()
    assert not QueuedCommand.objects.filter(device=target, request_type="EraseDevice").exists()
    shot(page, "form-erase-refused")
    page.get_by_label("Type the device's name to confirm").fill("Ann's iPhone")
    page.get_by_role("button", name="Send EraseDevice to 1 device").click()
    page.wait_for_url(re.compile(r"/commands/[0-9A-F-]{36}/$"))
    assert QueuedCommand.objects.filter(device=target, request_type="EraseDevice").exists()
    shot(page, "detail-erase")


def test_screenshots_of_the_other_forms(browser_page, live_server, ca):
    page = browser_page
    make_user("adam", ADMIN)
    devices = fleet()
    upload_profile(plistlib.dumps(profile()), uploaded_by="tests")
    log_in(page, "adam")
    mac, iphone = devices[-1].udid, devices[0].udid
    sales = DeviceGroup.objects.get(name="Sales").pk
    pages = {
        "form-device-information": f"?device={iphone}&type=DeviceInformation",
        "form-settings": f"?device={iphone}&type=Settings&item=Wallpaper",
        "form-install-profile": f"?group={sales}&type=InstallProfile",
        "form-install-application": f"?device={iphone}&type=InstallApplication",
        "form-erase-mac": f"?device={mac}&type=EraseDevice",
        "form-clear-passcode": f"?device={iphone}&type=ClearPasscode",
        "form-advanced": f"?device={mac}&type=ScheduleOSUpdate&form=advanced",
        "form-raw": f"?device={iphone}&form=raw",
        "form-filter-targets": "?filter=platform%3DiOS%26seen%3D7d&type=RestartDevice",
        "form-no-targets": "?type=DeviceLock",
    }
    for name, query in pages.items():
        page.goto("/commands/new/" + query)
        assert page.locator("main h1").is_visible()
        shot(page, name)
    page.goto(f"/commands/new/?device={mac}&type=ScheduleOSUpdate&form=advanced")
    page.get_by_label("Updates").fill('[{"InstallAction": "Sometimes"}]')
    page.get_by_role("button", name=re.compile("^Send ScheduleOSUpdate")).click()
    page.locator("#id_Updates_error").wait_for()
    shot(page, "form-advanced-error")
    page.set_viewport_size({"width": 820, "height": 1000})
    page.goto(f"/commands/new/?device={iphone}&device={mac}&type=DeviceLock")
    shot(page, "form-device-lock-tablet")
