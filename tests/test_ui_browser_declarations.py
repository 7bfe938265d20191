"""In real Chromium: an administrator creates a passcode declaration through its schema form
(an error first, next to its key), puts it in a set, assigns the set to a group, and sees the
state the devices report on a device's page, the declaration's page and the dashboard. The
navigation keeps one line at 1366 px for an admin. Screenshots of every declaration page go
to the test artifacts (declarations-*.png)."""

import datetime as dt
import hashlib

import pytest
from django.utils import timezone

from commands.models import QueuedCommand
from declarations.models import Declaration, DeclarationSet
from declarations.store import save_declaration
from devices.models import Device, DeviceGroup
from mdm_portal.roles import ADMIN
from tests.conftest import ARTIFACTS
from tests.declarative_support import (
    ORGANIZATION,
    declaration_status,
    declarative,
    declarative_commands,
    json_of,
    processed,
    status_report,
)
from tests.ui_support import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSCODE_TYPE = "com.apple.configuration.passcode.settings"
MODELS = [
    ("iPhone 31", "iPhone 15", "17.5"),
    ("iPhone 32", "iPhone 16 Pro", "18.3"),
    ("iPad 11", "iPad Air 13-inch (M2)", "18.2"),
    ("iPhone 33", "iPhone 14", "17.2"),
]


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"declarations-{name}.png"), full_page=True)


@pytest.fixture
def fleet(make_device):
    """Four enrolled iOS devices, three of them in Sales."""
    sales = DeviceGroup.objects.create(name="Sales", description="Sales team devices")
    simulated = []
    for n, (name, model, version) in enumerate(MODELS):
        sim = make_device()
        sim.authenticate(DeviceName=name, SerialNumber=f"F9K{n:02d}Q7XH2LM", OSVersion=version)
        sim.token_update()
        Device.objects.filter(udid=sim.udid).update(
            platform="iOS",
            os_version=version,
            model_name=model,
            last_seen_at=timezone.now() - dt.timedelta(hours=n * 3),
            group=sales if n < 3 else None,
        )
        simulated.append(sim)
    QueuedCommand.objects.all().delete()  # the initial inventory is not what is watched here
    return simulated


def assert_navigation_on_one_line(page) -> None:
    """At 1366 px, and with a classic 17 px scrollbar taking its share (1349 px)."""
    for width in (1366, 1349):
        page.set_viewport_size({"width": width, "height": 900})
        tops = page.locator("nav.main a").evaluate_all(
            "links => links.map(a => Math.round(a.getBoundingClientRect().top))"
        )
        assert len(set(tops)) == 1, f"the navigation wraps at {width} px: {tops}"
    page.set_viewport_size({"width": 1366, "height": 900})


def report(sim, *, failed: bool) -> None:
    """The device's status report: the passcode declaration failed or active, org active."""
    items = json_of(declarative(sim, "declaration-items"))["Declarations"]
    tokens = {i["Identifier"]: i["ServerToken"] for v in items.values() for i in v}
    reasons = (
        [{"code": "Error.ConfigurationCannotBeApplied", "description": "passcode not compliant"}]
        if failed
        else None
    )
    state = processed(
        configurations=[
            declaration_status(
                "com.example.passcode",
                tokens["com.example.passcode"],
                active=not failed,
                valid="invalid" if failed else "valid",
                reasons=reasons,
            )
        ],
        management=[declaration_status("org", tokens["org"])],
    )
    state["passcode"] = {"is-compliant": not failed, "is-present": True}
    state["device"] = {"operating-system": {"version": "17.5", "build-version": "21F79"}}
    assert declarative(sim, "status", status_report(state, full=True)).status == 200


def test_an_admin_declares_assigns_and_sees_each_device_state(browser_page, fleet, settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    page = browser_page
    make_user("ada", ADMIN)
    log_in(page, "ada")
    assert_navigation_on_one_line(page)
    save_declaration(ORGANIZATION, by="tests", description="Shown on the devices' About page")

    page.get_by_role("link", name="Declarations", exact=True).first.click()
    page.get_by_role("heading", name="Declarations", level=1).wait_for()
    assert_navigation_on_one_line(page)  # with Declarations the current (bold) item
    page.get_by_role("link", name="New declaration").first.click()
    shot(page, "new")
    page.get_by_role("link", name="Passcode: Settings").click()
    page.get_by_label("Identifier").fill("com.example.passcode")
    page.get_by_label("Minimum Passcode Length").fill("8")
    page.get_by_label("Require Alphanumeric Passcode").select_option(label="Yes")
    page.locator("#id_CustomRegex").fill('{"Regex": "^[0-9]+$", "Colour": "red"}')
    page.get_by_role("button", name="Create the declaration").click()
    page.locator("#id_CustomRegex_error").filter(has_text="Colour").wait_for()
    shot(page, "form-error")
    assert not Declaration.objects.filter(identifier="com.example.passcode").exists()
    page.locator("#id_CustomRegex").fill("")
    page.get_by_role("button", name="Create the declaration").click()
    page.get_by_role("heading", name="com.example.passcode").wait_for()
    passcode = Declaration.objects.get(identifier="com.example.passcode")
    assert passcode.payload == {"MinimumLength": 8, "RequireAlphanumericPasscode": True}

    # A set with both declarations, assigned to Sales: its three devices are told.
    page.get_by_role("navigation", name="Declarative Device Management").get_by_role(
        "link", name="Sets"
    ).click()
    page.get_by_label("Name").fill("Baseline")
    page.get_by_role("button", name="Create the set").click()
    page.get_by_role("heading", name="Baseline").wait_for()
    shot(page, "set-empty")
    page.get_by_label("Declarations", exact=True).select_option(label=[
        "com.example.passcode (Passcode: Settings)",
        "org (Management: Organization Information)",
    ])  # fmt: skip
    page.get_by_role("button", name="Add to the set").click()
    page.get_by_text("added to Baseline").wait_for()
    page.get_by_label("Group").select_option(label="Sales")
    page.get_by_role("button", name="Assign", exact=True).click()
    told = "Baseline assigned to the group Sales. DeclarativeManagement queued for 3 device(s)."
    page.get_by_text(told).wait_for()
    assert all(len(declarative_commands(sim.udid)) == 1 for sim in fleet[:3])
    assert declarative_commands(fleet[3].udid) == []
    shot(page, "set")

    # Two devices report: one failed, one active; the third has not reported yet.
    report(fleet[0], failed=True)
    report(fleet[1], failed=False)
    page.goto(f"/devices/{fleet[0].udid}/")
    section = page.locator("#declarations")
    section.get_by_text("failed 1").wait_for()
    assert section.get_by_text("Error.ConfigurationCannotBeApplied").is_visible()
    section.get_by_text("Status items").click()
    assert section.get_by_text("passcode.is-compliant").is_visible()
    section.screenshot(path=str(ARTIFACTS / "declarations-device-section.png"))
    shot(page, "device")
    page.goto(f"/devices/{fleet[3].udid}/")
    page.locator("#declarations").get_by_text("No declaration is assigned").wait_for()

    page.goto("/declarations/com.example.passcode/")
    bar = page.locator(".statebar")
    for words in ("failed 1", "active 1", "pending 1"):
        assert bar.get_by_text(words).is_visible()
    shot(page, "detail")
    page.goto("/")
    card = page.locator("#declarations-card")
    card.get_by_text("1 declaration failing").click()
    page.get_by_role("heading", name="Declarations", level=1).wait_for()
    assert page.locator("table tbody tr").count() == 1
    shot(page, "list-failing")
    page.goto("/declarations/")
    shot(page, "list")
    page.goto("/")
    shot(page, "dashboard")

    # The other pages, for the screenshots: upload, served data, edit, confirmations.
    page.goto("/declarations/upload/")
    shot(page, "upload")
    page.goto("/declarations/new/served-data/?type=com.apple.asset.data")
    content = b"printer: floor 3"
    page.get_by_label("Identifier").fill("printers")
    page.get_by_label("Data", exact=True).set_input_files(
        files=[{"name": "printers.conf", "mimeType": "text/plain", "buffer": content}]
    )
    page.get_by_label("Media type").fill("text/plain")
    shot(page, "data-new")
    page.get_by_role("button", name="Upload and serve").click()
    page.get_by_text(hashlib.sha256(content).hexdigest()).first.wait_for()
    assert "floor 3" not in page.content()
    shot(page, "data-detail")
    page.goto("/declarations/new/served-data/?type=com.apple.asset.credential.acme")
    shot(page, "acme-new")
    page.goto("/declarations/com.example.passcode/edit/")
    shot(page, "edit")
    page.goto("/declarations/org/delete/")
    page.get_by_text("3 device(s) lose it at their next sync").wait_for()
    shot(page, "delete-confirm")
    declaration_set = DeclarationSet.objects.get()
    page.goto(f"/declarations/sets/{declaration_set.pk}/unassign/?group={fleet_group()}")
    shot(page, "unassign-confirm")
    page.goto("/declarations/sets/")
    shot(page, "sets")

    page.set_viewport_size({"width": 768, "height": 1024})
    for name, path in [
        ("tablet-list", "/declarations/"),
        ("tablet-detail", "/declarations/com.example.passcode/"),
        ("tablet-form", f"/declarations/new/?type={PASSCODE_TYPE}"),
    ]:
        page.goto(path)
        shot(page, name)


def fleet_group() -> int:
    return DeviceGroup.objects.get(name="Sales").pk
