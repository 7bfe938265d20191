"""The device pages in real headless Chromium: log in, search the list, open a device that
enrolled and answered its inventory over HTTP, read its inventory and history; screenshots of
both pages at laptop and tablet widths go to the test artifacts folder."""

import pytest

from tests.conftest import ARTIFACTS
from tests.device_ui_support import MAC, answer_everything, enroll_with_inventory, make_fleet
from tests.ui_support import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_find_a_device_open_it_and_read_its_inventory(browser_page, http_device):
    page = browser_page
    make_fleet(60)
    iphone = http_device()
    device = enroll_with_inventory(iphone)
    mac = http_device()
    enroll_with_inventory(mac, MAC)
    # A command that failed, so the history shows an ErrorChain.
    from commands.queue import enqueue

    enqueue(
        device, "Settings", {"Settings": [{"Item": "DeviceName", "DeviceName": "Ana's iPhone"}]}
    )
    answer_everything(iphone, fail={"Settings"})
    make_user("olivia", "operator")

    log_in(page, "olivia")
    page.get_by_role("link", name="Devices", exact=True).click()
    page.wait_for_url("**/devices/")
    assert page.locator("table.devices tbody tr").count() == 50  # one page of 62
    assert page.get_by_role("link", name="Next →").is_visible()
    shot(page, "devices-list.png")

    # Search as you type (htmx swaps the results and keeps the URL in step).
    page.get_by_label("Search").fill("F17ZK3P9Q1")
    page.wait_for_function("document.querySelectorAll('table.devices tbody tr').length === 1")
    assert "q=F17ZK3P9Q1" in page.url
    row = page.locator("table.devices tbody tr")
    assert "Ana's iPhone" in row.inner_text()
    row.locator("input[type=checkbox]").check()
    assert page.get_by_text("1 device selected").is_visible()
    shot(page, "devices-list-search.png")

    page.get_by_role("link", name="Select every device that matches this filter").click()
    assert page.get_by_text("All 1 device that matches this filter is selected.").is_visible()
    shot(page, "devices-list-all-selected.png")
    page.get_by_role("link", name="Clear the selection").click()
    row = page.locator("table.devices tbody tr")

    row.get_by_role("link", name="Ana's iPhone").click()
    page.wait_for_url(f"**/devices/{device.udid}/")
    assert page.get_by_role("heading", name="Ana's iPhone", level=1).is_visible()
    profiles = page.locator("#profiles")
    assert "Office Wi-Fi" in profiles.inner_text() and "Staff VPN" in profiles.inner_text()
    assert "Microsoft Outlook" in page.locator("#apps").inner_text()
    assert "allowScreenShot" in page.locator("#restrictions").inner_text()
    assert "PasscodePresent" in page.locator("#security").inner_text()
    history = page.locator("#history")
    assert "The device is not supervised. (MCMDMErrorDomain 12021)" in history.inner_text()
    row = history.locator("tr", has_text="SecurityInfo")
    row.locator("summary", has_text="Result").click()  # a readable result opens in place
    assert row.locator("dt", has_text="FirewallEnabled").is_visible()
    assert page.get_by_role("link", name="Lock…").is_visible()
    assert page.get_by_role("link", name="Erase…").count() == 0  # an operator, not an admin
    shot(page, "device-page.png")
    page.screenshot(path=str(ARTIFACTS / "device-page-top.png"))

    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, portrait
    shot(page, "device-page-tablet.png")
    page.locator("#history").screenshot(path=str(ARTIFACTS / "device-history-tablet.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 820
    page.goto("/devices/")
    shot(page, "devices-list-tablet.png")
    page.screenshot(path=str(ARTIFACTS / "devices-list-tablet-top.png"))
    # Nothing is wider than a tablet: the tables scroll inside their frames, not the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= 820


def test_an_admin_sees_erase_and_why_a_mac_is_not_offered_some_commands(browser_page, http_device):
    page = browser_page
    mac = http_device()
    device = enroll_with_inventory(mac, MAC)
    make_user("adam", "admin")
    log_in(page, "adam")
    page.goto("/devices/?platform=macOS")
    page.get_by_role("link", name="Design MacBook Pro").click()
    page.wait_for_url(f"**/devices/{device.udid}/")
    page.keyboard.press("Tab")  # usable from the keyboard: the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    commands = page.locator("#commands")
    assert commands.get_by_role("link", name="Erase…").is_visible()
    assert commands.get_by_role("link", name="Lock…").is_visible()
    commands.get_by_text("Why some commands are greyed out").click()
    reasons = commands.locator("details.refused").inner_text()
    assert "EnableLostMode is not supported on macOS" in reasons
    assert "ClearPasscode is not supported on macOS" in reasons
    shot(page, "device-page-mac-admin.png")
    commands.get_by_role("link", name="Lock…").click()  # on to the command form
    page.wait_for_url("**/commands/new/?device=*&type=DeviceLock")
    assert page.get_by_text("1 device: Design MacBook Pro").is_visible()
