"""In real Chromium: an operator reads when to choose ACME, SCEP or PKCS#12 on the enrollment
form, creates an ACME enrollment that allows devices without attestation, and sees it flagged
on its page and in the list; the issued identities' page lists ACME identities with their
attested serial number and UDID, filtered by delivery. Screenshots go to the test artifacts
folder (var/test-artifacts/acme-*.png)."""

import pytest
from django.utils import timezone

from certs.ca import issue_certificate
from devices.identities import bind
from devices.models import Device
from enrollment.models import Enrollment
from mdm_portal.roles import OPERATOR
from tests.conftest import ARTIFACTS
from tests.simulator import make_csr, make_key
from tests.ui_support import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FLEET = [
    # device name, UDID, serial, delivery, attested
    ("Reception iPhone", "00008120-001A4C2E0A3B801E", "F2LXK0ABCDEF", "acme", True),
    ("Lab iPad 3", "00008103-000D39A2340A001E", "DMPX8Q2LKJ7H", "acme", True),
    ("Design MacBook Air", "00008112-0019054E3E04401E", "C02ZX4ABMD6T", "acme", True),
    ("Kiosk Mac mini", "564D4A8B-1E8F-4C63-9B1D-0E6E7C8A2F11", "C07XK1QJPJH5", "acme", False),
    ("Finance iPhone", "3f9c2a7de41b08c5f6a3d2e1b0c9f8e7d6a5b4c3", "DNPXK2ABHG7F", "scep", False),
    ("Old iPad", "a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5", "DMQX1ABCD4F5", "scep", False),
    ("Loaner MacBook", "9C3E2B1A-7F6D-4E5C-8B9A-0D1E2F3A4B5C", "C02Y71ABJG5J", "pkcs12", False),
]


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"acme-{name}.png"), full_page=True)


def issued_fleet() -> None:
    for name, udid, serial, delivery, attested in FLEET:
        key = make_key("ec" if delivery == "acme" else "rsa")
        options = {"udid": udid, "serial": serial} if attested else None
        _certificate, record = issue_certificate(
            make_csr(key, f"MDM Identity {serial[-8:]}"), delivery=delivery, attested=options
        )
        device = Device.objects.create(
            udid=udid,
            serial_number=serial,
            device_name=name,
            state=Device.State.ENROLLED,
            enrolled_at=timezone.now(),
        )
        bind(record, device)
    issue_certificate(make_csr(make_key("rsa"), "MDM Identity LEGACY01"))  # before deliveries


def test_acme_enrollment_without_attestation_and_the_issued_identities(browser_page, ca, settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    make_user("operator", OPERATOR)
    Enrollment.objects.create(name="Staff iPhones", identity=Enrollment.Identity.ACME)
    Enrollment.objects.create(name="Contractors (legacy)", identity=Enrollment.Identity.SCEP)
    issued_fleet()
    page = browser_page
    log_in(page, "operator")

    # The form: the three deliveries, when to choose which, and the check box.
    page.goto("/enrollments/new/")
    page.get_by_text("ACME for iOS and iPadOS 16, macOS 13.1, tvOS 16 and later").wait_for()
    shot(page, "enrollment-form")
    page.get_by_label("Name", exact=True).fill("Older Macs")
    page.get_by_label("SCEP (the key never leaves the device)").check()
    page.get_by_label("ACME: allow devices that cannot attest").check()
    page.get_by_role("button", name="Create the enrollment").click()
    page.locator("#id_acme_without_attestation_error").filter(
        has_text="only an ACME identity can do without attestation"
    ).wait_for()
    shot(page, "enrollment-form-refused")
    page.get_by_label("ACME (the key never leaves the device; attested by the hardware)").check()
    page.get_by_role("button", name="Create the enrollment").click()
    page.get_by_role("heading", name="Older Macs").wait_for()
    enrollment = Enrollment.objects.get(name="Older Macs")
    assert (enrollment.identity, enrollment.acme_attestation) == ("acme", False)
    badge = page.locator("#identity .badge.warning")
    assert badge.inner_text() == "without attestation" and badge.is_visible()
    shot(page, "enrollment-without-attestation")
    page.goto("/enrollments/")
    assert page.locator("table .badge.warning").filter(has_text="without attestation").count() == 1
    shot(page, "enrollments")

    # Every issued identity, then the ACME ones only.
    page.goto("/certificates/")
    page.get_by_role("link", name="Every issued identity (ACME, SCEP, PKCS#12)").click()
    page.get_by_role("heading", name="Issued device identities").wait_for()
    table = page.get_by_role("table", name="Issued device identities")
    assert table.locator("tbody tr").count() == len(FLEET) + 1
    shot(page, "issued")
    page.get_by_label("Delivery").select_option(label="ACME")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/certificates/issued/?delivery=acme*")
    rows = table.locator("tbody tr")
    assert rows.count() == 4
    reception = rows.filter(has_text="Reception iPhone")
    assert "F2LXK0ABCDEF" in reception.inner_text()
    assert "00008120-001A4C2E0A3B801E" in reception.inner_text()
    shot(page, "issued-acme")
    page.set_viewport_size({"width": 768, "height": 1024})
    page.reload()
    shot(page, "tablet-issued-acme")
