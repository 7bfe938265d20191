"""In real Chromium, against the stand-in of Apple's DEP API: an admin adds a DEP server,
downloads its certificate, uploads a wrong file then the server token, syncs now (a worker
runs the sync), sees the devices, creates a DEP profile with skip keys and auto-assign,
assigns it to selected devices and sees Apple's answer per serial, asks to disown one, and
syncs again with a slower worker: the page polls until the sync is done.
Screenshots of every ADE page go to the test artifacts (laptop and tablet widths)."""

import pytest

from enrollment.dep_models import DepDevice, DepProfile, DepServer
from enrollment.dep_sync import sync_server
from enrollment.tasks import sync_dep_server
from mdm_portal.roles import ADMIN
from tests.conftest import ARTIFACTS
from tests.dep_tokens_support import make_server_token
from tests.dep_ui_support import enrolled_device, make_enrollment
from tests.test_dep_profiles import tls_root  # noqa: F401 - a fixture: the server's TLS chain
from tests.ui_support import log_in, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("tls_root"),
]

DEVICES = [
    ("C02XG1A2JHD3", "iPad (10th generation)", "IPAD WI-FI 64GB SILVER"),
    ("DMPXK4L9Q1GH", "iPhone 15", "IPHONE 15 128GB BLACK"),
    ("F9FYH2MPQ6L4", "iPhone 16 Pro", "IPHONE 16 PRO 256GB DESERT"),
    ("C02ZT0L7MD6T", "MacBook Air (M3)", "MBA 13 M3 16GB MIDNIGHT"),
]


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"dep-{name}.png"), full_page=True)


@pytest.fixture
def worker(monkeypatch):
    """A Celery worker that runs the sync task as soon as it is queued."""
    monkeypatch.setattr(sync_dep_server, "apply_async", lambda a, **o: sync_dep_server.apply(a))


def test_an_admin_connects_abm_syncs_and_assigns_a_profile(
    browser_page, dep, worker, tmp_path, settings, monkeypatch
):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    for serial, model, description in DEVICES:
        dep.add_device(serial, model=model, description=description)
    make_enrollment("Staff iPads")
    page = browser_page
    make_user("ada", ADMIN)
    log_in(page, "ada")
    shot(page, "dashboard-empty")

    # Add a server: the portal makes its key and shows the steps for ABM.
    page.get_by_role("link", name="ADE", exact=True).click()
    page.get_by_role("heading", name="DEP servers").wait_for()
    shot(page, "servers-empty")
    page.get_by_role("link", name="Add server").click()
    page.get_by_label("Name").fill("Main office")
    shot(page, "server-new")
    page.get_by_role("button", name="Add the server").click()
    page.get_by_role("heading", name="Connect this server to Apple Business Manager").wait_for()
    shot(page, "server-steps")
    server = DepServer.objects.get()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the certificate (.pem)").click()
    pem = open(download.value.path()).read()  # noqa: PTH123, SIM115 - Playwright's own file
    assert pem.startswith("-----BEGIN CERTIFICATE-----")

    # A wrong file first: its error shows at the field; then the token ABM would give.
    wrong = tmp_path / "notes.p7m"
    wrong.write_bytes(b"this is not a server token")
    page.get_by_label("Server token (.p7m)").set_input_files(str(wrong))
    page.get_by_role("button", name="Upload token (.p7m)").click()
    page.locator(".errorlist").filter(has_text="This file is not a server token").wait_for()
    shot(page, "token-error")
    token = tmp_path / "Main_office_Token_smime.p7m"
    token.write_bytes(make_server_token(pem, **dep.credentials))
    page.get_by_label("Server token (.p7m)").set_input_files(str(token))
    page.get_by_role("button", name="Upload token (.p7m)").click()
    page.get_by_text("Server token imported for Main office").wait_for()
    page.get_by_text("Example School").first.wait_for()  # Apple's account, read at once
    shot(page, "server-token")

    # Sync now: the devices ABM assigned to the server appear.
    page.get_by_role("button", name="Sync now").click()
    page.locator("#sync-banner").filter(has_text="Synced Main office").wait_for()
    for serial, _model, _ in DEVICES:
        page.get_by_role("cell", name=serial, exact=True).wait_for()
    assert DepDevice.objects.count() == 4
    shot(page, "server-synced")

    # The device list, filtered: nothing is enrolled yet; one device enrolls.
    enrolled_device(DEVICES[1][0], udid="6F1C0A5E-6B0B-4E84-9E43-8F5D4A6E2C11")
    page.get_by_role("navigation", name="Automated Device Enrollment").get_by_role(
        "link", name="Devices"
    ).click()
    page.get_by_label("Enrolled").select_option(label="no")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**enrolled=false**")
    assert page.get_by_role("cell", name=DEVICES[1][0], exact=True).count() == 0
    shot(page, "devices-not-enrolled")
    page.goto("/enrollments/dep/devices/")
    shot(page, "devices")

    # A DEP profile: supervised, not removable, panes skipped, for new devices too.
    page.get_by_role("navigation", name="Automated Device Enrollment").get_by_role(
        "link", name="Profiles"
    ).click()
    page.get_by_role("link", name="New profile").click()
    page.get_by_label("Name", exact=True).fill("Staff iPads")
    page.get_by_label("Server", exact=True).select_option(label="Main office")
    page.get_by_label("Enrollment", exact=True).select_option(label="Staff iPads")
    page.get_by_label("Hold the device in Setup Assistant until the portal releases it").check()
    page.get_by_label("Department").fill("IT")
    page.get_by_label("Support phone number").fill("+1 555 0199")
    for key in ("AppleID", "Siri", "Location"):
        page.locator(f'input[name="skip_setup_items"][value="{key}"]').check()
    page.get_by_label("Assign to new devices of the server (auto-assign)").check()
    shot(page, "profile-new")
    page.get_by_role("button", name="Create the profile").click()
    page.get_by_text("DEP profile Staff iPads created and defined with Apple.").wait_for()
    profile = DepProfile.objects.get()
    assert profile.settings["skip_setup_items"] == ["AppleID", "Location", "Siri"]  # as listed
    shot(page, "profile")
    page.goto("/enrollments/dep/profiles/")
    shot(page, "profiles")

    # Assign it to two selected devices on the server's page: Apple answers per serial.
    dep.assign_results = {DEVICES[3][0]: "NOT_ACCESSIBLE"}
    page.goto(f"/enrollments/dep/{server.pk}/")
    page.get_by_label(f"Select {DEVICES[0][0]}").check()
    page.get_by_label(f"Select {DEVICES[3][0]}").check()
    page.get_by_text("2 devices selected").wait_for()
    page.get_by_label("Profile", exact=True).select_option(label="Staff iPads")
    page.get_by_role("button", name="Assign profile").click()
    page.get_by_role("heading", name="Staff iPads assigned").wait_for()
    page.get_by_text("1 of 2 devices not done").wait_for()
    shot(page, "assign-results")
    assert DepDevice.objects.get(serial_number=DEVICES[0][0]).assigned_profile == profile
    assert DepDevice.objects.get(serial_number=DEVICES[3][0]).assign_result == "NOT_ACCESSIBLE"

    # Disown asks for the serial typed; Cancel leaves everything as it was.
    page.goto(f"/enrollments/dep/{server.pk}/")
    page.get_by_label(f"Select {DEVICES[3][0]}").check()
    page.get_by_role("button", name="Disown…").click()
    page.get_by_role("heading", name="Disown devices from Main office?").wait_for()
    page.get_by_label("Type the serial number to confirm").fill("wrong")
    page.get_by_role("button", name="Disown 1 device").click()
    page.locator(".errorlist").filter(has_text=f"type “{DEVICES[3][0]}” exactly").wait_for()
    shot(page, "disown-confirm")
    page.get_by_role("link", name="Cancel").click()
    assert not DepDevice.objects.filter(removed=True).exists()
    shot(page, "server")

    # A worker that takes its time: the page polls, then reloads with the outcome.
    monkeypatch.setattr(sync_dep_server, "apply_async", lambda args, **options: object())
    dep.add_device("H4TQW8L2XK9P", model="iPad mini (A17 Pro)", description="IPAD MINI 128GB")
    page.get_by_role("button", name="Sync now").click()
    page.locator("#sync-banner").filter(has_text="Syncing Main office with Apple…").wait_for()
    shot(page, "server-syncing")
    server.refresh_from_db()  # read before its token was imported
    sync_server(server, actor="worker")
    page.locator("#sync-banner").filter(has_text="Synced Main office").wait_for()
    page.get_by_role("cell", name="H4TQW8L2XK9P", exact=True).wait_for()
    page.goto("/enrollments/dep/")
    shot(page, "servers")
    page.goto("/")
    page.locator("#ade-card").wait_for()
    shot(page, "dashboard")

    # The same pages at tablet width.
    page.set_viewport_size({"width": 768, "height": 1024})
    for name, path in [
        ("tablet-servers", "/enrollments/dep/"),
        ("tablet-server", f"/enrollments/dep/{server.pk}/"),
        ("tablet-devices", "/enrollments/dep/devices/"),
        ("tablet-profile-edit", f"/enrollments/dep/profiles/{profile.pk}/edit/"),
    ]:
        page.goto(path)
        shot(page, name)
