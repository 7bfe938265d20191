"""In real Chromium: an operator uploads a profile and assigns it to a group, creates an
enrollment link and sees its QR code, and manages a group. Screenshots of every page of the
library, the enrollments and the groups go to the test artifacts (laptop and tablet widths)."""

import datetime as dt
import plistlib
import uuid

import pytest
from django.utils import timezone

from commands.models import QueuedCommand, Status
from devices.models import Device, DeviceGroup
from enrollment.library import upload_profile
from enrollment.models import DeviceEnrollment, Enrollment, Profile
from mdm_portal.roles import OPERATOR
from tests.conftest import ARTIFACTS
from tests.library_support import report_installed, wifi_profile
from tests.ui_support import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODELS = [
    ("iPad 11", "iPad (A16)", "iPadOS", "18.3"),
    ("iPad 12", "iPad Air 13-inch (M2)", "iPadOS", "18.2"),
    ("iPhone 31", "iPhone 15", "iOS", "18.3"),
    ("iPhone 32", "iPhone 16 Pro", "iOS", "18.3.1"),
    ("MacBook Air 7", "MacBook Air (M3)", "macOS", "15.3"),
    ("iPad 13", "iPad mini (A17 Pro)", "iPadOS", "17.7"),
]


OTHER_PROFILES = [
    (
        "com.example.vpn",
        "Office VPN",
        {
            "PayloadType": "com.apple.vpn.managed",
            "VPNType": "IKEv2",
            "UserDefinedName": "Office",
            "IKEv2": {"RemoteAddress": "vpn.example.org", "SharedSecret": "s3cr3t"},
        },
    ),
    (
        "com.example.restrictions",
        "Restrictions",
        {
            "PayloadType": "com.apple.applicationaccess",
            "allowCamera": True,
            "allowAppRemoval": False,
            "allowPasswordAutoFill": False,
        },
    ),
]


def small_profile(identifier: str, name: str, payload: dict) -> dict:
    return {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, identifier)).upper(),
        "PayloadDisplayName": name,
        "PayloadContent": [
            {
                "PayloadVersion": 1,
                "PayloadIdentifier": identifier + ".1",
                "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, identifier + ".1")).upper(),
                **payload,
            }
        ],
    }


@pytest.fixture
def fleet(make_device):
    """Six enrolled devices with names, serials, models and OS versions, four in Sales."""
    sales = DeviceGroup.objects.create(name="Sales", description="Sales team devices")
    DeviceGroup.objects.create(name="Lab Macs", description="Shared Macs in the lab")
    devices = []
    for n, (name, model, platform, version) in enumerate(MODELS):
        sim = make_device()
        sim.authenticate(
            DeviceName=name, SerialNumber=f"F9K{n:02d}Q7XH2LM", ModelName=model, OSVersion=version
        )
        sim.token_update()
        device = Device.objects.get(udid=sim.udid)
        Device.objects.filter(pk=device.pk).update(
            platform=platform.replace("iPadOS", "iOS"),
            model_name=model,
            last_seen_at=timezone.now() - dt.timedelta(hours=n * 5),
            group=sales if n < 4 else None,
        )
        devices.append(device)
    QueuedCommand.objects.all().delete()  # the initial inventory is not what is watched here
    return devices


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"library-{name}.png"), full_page=True)


def test_an_operator_manages_profiles_enrollments_and_groups(
    browser_page, fleet, tmp_path, settings
):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    page = browser_page
    make_user("olivia", OPERATOR)
    log_in(page, "olivia")

    # Upload a profile: first a broken file, whose error shows next to the field.
    broken = tmp_path / "broken.mobileconfig"
    broken.write_bytes(b"not a plist at all")
    page.goto("/profiles/")
    page.get_by_label("Configuration profile (.mobileconfig)").set_input_files(str(broken))
    page.get_by_role("button", name="Upload").click()
    page.locator(".errorlist").filter(has_text="not a property list").wait_for()
    shot(page, "upload-error")
    assert not Profile.objects.exists()

    good = tmp_path / "wifi.mobileconfig"
    good.write_bytes(plistlib.dumps(wifi_profile()))
    page.get_by_label("Configuration profile (.mobileconfig)").set_input_files(str(good))
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("heading", name="Office Wi-Fi", level=1).wait_for()
    profile = Profile.objects.get(identifier="com.example.wifi")

    # Assign it to Sales: InstallProfile is queued for the group's four devices.
    page.get_by_label("Group").select_option(label="Sales")
    page.get_by_role("button", name="Assign and install where missing").click()
    page.get_by_text("InstallProfile queued for 4 device(s)").wait_for()
    for identifier, name, payload in OTHER_PROFILES:
        upload_profile(
            plistlib.dumps(small_profile(identifier, name, payload)), uploaded_by="olivia"
        )
    assert QueuedCommand.objects.filter(request_type="InstallProfile").count() == 4
    # Two devices report it installed, so the page shows where it is and where it is missing.
    report_installed(profile, *fleet[:2])
    QueuedCommand.objects.filter(device__in=fleet[:2]).update(status=Status.ACKNOWLEDGED)
    page.reload()
    assert "correct-horse-wifi-42" not in page.content()
    shot(page, "profile")
    page.goto("/profiles/")
    shot(page, "profiles")
    page.goto(f"/profiles/{profile.pk}/")
    page.get_by_role("link", name="Delete…").click()
    page.get_by_text("This cannot be done now").wait_for()  # it is still assigned
    assert page.get_by_role("button", name="Delete the profile").count() == 0
    shot(page, "profile-delete-refused")

    # Create an enrollment link and see its QR code.
    page.goto("/enrollments/")
    page.get_by_role("link", name="New enrollment").click()
    page.get_by_label("Name", exact=True).fill("Sales iPads")
    page.get_by_label("1: see which configuration profiles are installed").uncheck()
    page.get_by_role("button", name="Create the enrollment").click()
    page.locator("#id_access_rights_error").filter(has_text="requires 1").wait_for()
    shot(page, "enrollment-error")
    page.get_by_label("1: see which configuration profiles are installed").check()
    page.get_by_label("8: erase the device").uncheck()
    page.get_by_label("Group of its devices").select_option(label="Sales")
    page.get_by_label("Profiles it may hand out").fill("25")
    page.get_by_label("Link works for (days)").fill("14")
    page.get_by_role("button", name="Create the enrollment").click()
    page.get_by_role("heading", name="Sales iPads").wait_for()
    enrollment = Enrollment.objects.get()
    assert enrollment.access_rights == 8191 - 8 and enrollment.max_uses == 25
    qr = page.get_by_role("img", name="QR code of the link")
    assert qr.is_visible() and qr.bounding_box()["width"] > 100
    link = page.locator("#enrollment-link")
    assert link.inner_text() == f"https://mdm.example.org/enroll/{enrollment.token}/"
    for device in fleet[:3]:
        DeviceEnrollment.objects.create(device=device, enrollment=enrollment, since=timezone.now())
    Enrollment.objects.filter(pk=enrollment.pk).update(uses=3)
    Enrollment.objects.create(name="Lab Macs (closed)", access_rights=8191, active=False)
    page.reload()
    shot(page, "enrollment")
    page.goto("/enrollments/")
    shot(page, "enrollments")

    # Groups: the list, then Sales, where two Macs join and one iPad leaves.
    page.goto("/groups/")
    shot(page, "groups")
    page.get_by_role("link", name="Sales", exact=True).click()
    page.get_by_role("textbox", name="Devices").fill(f"{fleet[4].serial_number}\n{fleet[5].udid}")
    page.get_by_role("button", name="Add to the group").click()
    page.get_by_text("2 device(s) added to Sales").wait_for()
    assert Device.objects.filter(group__name="Sales").count() == 6
    page.get_by_label(f"Select {fleet[3].device_name}").check()
    page.get_by_role("button", name="Remove the selected devices…").click()
    page.get_by_role("heading", name="Remove 1 device(s) from Sales?").wait_for()
    shot(page, "group-remove-confirm")
    page.get_by_role("button", name="Remove from the group").click()
    page.get_by_text("1 device(s) removed from Sales").wait_for()
    assert Device.objects.filter(group__name="Sales").count() == 5
    shot(page, "group")
    page.get_by_role("link", name="Delete…").click()
    page.get_by_text("Its 5 device(s) stay enrolled, in no group.").wait_for()
    shot(page, "group-delete-confirm")
    page.go_back()

    # The same pages at tablet width.
    page.set_viewport_size({"width": 768, "height": 1024})
    for name, path in [
        ("tablet-profile", f"/profiles/{profile.pk}/"),
        ("tablet-enrollment", f"/enrollments/{enrollment.pk}/"),
        ("tablet-group", page.url),
        ("tablet-enrollment-new", "/enrollments/new/"),
    ]:
        page.goto(path)
        shot(page, name)
