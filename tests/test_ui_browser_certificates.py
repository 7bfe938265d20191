"""The Certificates pages in real headless Chromium: an admin approves and rejects pending SCEP
requests, uploads a push certificate (a wrong password first), is refused a topic change and
confirms it, starts the vendor-CSR flow; screenshots of every state go to the test artifacts
folder (var/test-artifacts/certificates-*.png)."""

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from certs import pushcert
from certs.models import IssuedCertificate, PushCertificate, ScepRequest
from certs.scep_approval import approve_request
from devices.models import Device
from enrollment.links import issue_enrollment_challenge, record_device_enrollment
from enrollment.models import Enrollment
from enrollment.renewal import renew_identity
from mdm_portal.roles import ADMIN, VIEWER
from simulator import scep as sc
from tests.apns_standin import StandInPKI
from tests.conftest import ARTIFACTS, new_identity
from tests.ui_certs_support import as_pkcs12, pending_scep_request
from tests.ui_support import log_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TABLET = {"width": 800, "height": 1100}
LAPTOP = {"width": 1366, "height": 900}


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"certificates-{name}.png"), full_page=True)


def fleet(topic: str, count: int = 8) -> list[Device]:
    """Enrolled devices on `topic` whose identities expire in the coming weeks."""
    devices = []
    models = [("iPad", "iPad13,18"), ("iPhone", "iPhone15,2"), ("Mac", "Mac14,2")]
    for n in range(count):
        kind, model = models[n % 3]
        device = Device.objects.create(
            udid=f"00008120-00{n:02d}4C2E0A3B801E",
            state="enrolled",
            topic=topic,
            device_name=f"{['Reception', 'Lab', 'Sales', 'Finance'][n % 4]} {kind} {n + 1}",
            serial_number=f"F{n:02d}XK9PQ7L2",
            model=model,
            platform="macOS" if kind == "Mac" else "iOS",
            enrolled_at=timezone.now() - dt.timedelta(days=300),
        )
        devices.append(device)
    return devices


@pytest.fixture
def scene(ca, settings, tmp_path):
    """Pending SCEP requests (a new identity, a renewal), a few already decided, and an admin
    and a viewer."""
    settings.MDM_SCEP_MANUAL_APPROVAL = True
    client = Client()
    staff = Enrollment.objects.create(name="Staff iPhones")
    lab = Enrollment.objects.create(name="Lab Macs")
    # Decided earlier.
    for n, name in enumerate(["conf-room-ipad", "kiosk-2"]):
        pending_scep_request(
            client,
            challenge=issue_enrollment_challenge(staff),
            common_name=name,
            transaction_id=f"A1B2C3D4E5F6{n:04d}",
        )
        approve_request(f"A1B2C3D4E5F6{n:04d}", actor="alice")
    waiting = [
        pending_scep_request(
            client,
            challenge=issue_enrollment_challenge(enrollment),
            common_name=name,
            transaction_id=tid,
        )
        for enrollment, name, tid in [
            (staff, "iPhone of Dana Whitfield", "7F3A9C0E21D84B6A"),
            (lab, "lab-mac-14", "0C9D2E7B55A14F83"),
            (staff, "unknown-device", "E4B81D0F3C2A6957"),
        ]
    ]
    return {
        "client": client,
        "waiting": waiting,
        "admin": make_user("morgan", ADMIN),
        "viewer": make_user("val", VIEWER),
        "pki": StandInPKI.create(tmp_path / "pki"),
        "enrollment": staff,
    }


def test_an_admin_runs_the_certificates_pages(browser_page, scene, settings):
    page = browser_page
    log_in(page, "morgan")

    # The overview with requests waiting and no push certificate yet.
    page.goto("/certificates/")
    assert page.get_by_role("heading", name="SCEP requests waiting for approval").is_visible()
    assert page.get_by_text("No push certificate yet").first.is_visible()
    shot(page, "1-pending")

    # Approve the first request; the device's next poll gets its certificate.
    first = page.get_by_role("row").filter(has_text="7F3A9C0E21D84B6A")
    first.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(r"/certificates/#scep$"))
    assert page.get_by_role("status").filter(has_text="Approved: certificate").is_visible()
    status, _, certificate = scene["waiting"][0].poll()
    assert status == sc.SUCCESS and certificate is not None

    # Reject the unknown device, with a reason.
    unknown = page.get_by_role("row").filter(has_text="E4B81D0F3C2A6957")
    unknown.get_by_text("Reject…").click()
    unknown.get_by_label("Reason (optional)").fill("not one of our devices")
    shot(page, "2-rejecting")
    unknown.get_by_role("button", name="Reject this request").click()
    page.wait_for_url(re.compile(r"/certificates/#scep$"))
    assert page.get_by_role("status").filter(has_text="Rejected: CN=unknown-device").is_visible()
    assert scene["waiting"][2].poll()[:2] == (sc.FAILURE, sc.BAD_REQUEST)
    assert ScepRequest.objects.get(transaction_id="E4B81D0F3C2A6957").status == "rejected"
    shot(page, "3-decided")

    # The push certificate page, empty.
    page.get_by_role("link", name="Get a push certificate").click()
    page.wait_for_url(re.compile(r"/certificates/push/$"))
    shot(page, "4-push-empty")

    # A PKCS#12 file with the wrong password, then the right one.
    pki = scene["pki"]
    certificate_pem, key_pem = pki.issue_push_certificate()
    p12 = as_pkcs12(certificate_pem, key_pem, b"correct-p12-password")
    p12_form = page.locator("form").filter(has_text="A PKCS#12 file and its password")
    p12_form.get_by_label("PKCS#12 file (.p12, .pfx)").set_input_files(
        {"name": "MDM_Push.p12", "mimeType": "application/x-pkcs12", "buffer": p12}
    )
    p12_form.get_by_label("Password of the PKCS#12 file").fill("wrong")
    p12_form.get_by_role("button", name="Import the PKCS#12 file").click()
    error = page.locator("#id_p12-password_error")
    assert "wrong password" in error.inner_text()
    assert not PushCertificate.objects.exists()
    error.scroll_into_view_if_needed()
    shot(page, "5-wrong-password")

    p12_form = page.locator("form").filter(has_text="A PKCS#12 file and its password")
    p12_form.get_by_label("PKCS#12 file (.p12, .pfx)").set_input_files(
        {"name": "MDM_Push.p12", "mimeType": "application/x-pkcs12", "buffer": p12}
    )
    p12_form.get_by_label("Password of the PKCS#12 file").fill("correct-p12-password")
    p12_form.get_by_role("button", name="Import the PKCS#12 file").click()
    page.wait_for_url(re.compile(r"/certificates/push/$"))
    topic = pushcert.active_topic()
    assert page.get_by_role("status").filter(has_text=f"Imported push certificate {topic}")
    shot(page, "6-push-imported")

    # Devices enroll on that topic; their identities come close to expiry.
    settings.MDM_DEVICE_CERT_VALIDITY_DAYS = 12
    devices = fleet(topic)
    for n, device in enumerate(devices):
        settings.MDM_DEVICE_CERT_VALIDITY_DAYS = 3 + 3 * n
        new_identity(device.device_name, device=device)
    record_device_enrollment(devices[0], scene["enrollment"])
    renew_identity(devices[0])

    # A certificate with another topic is refused, then confirmed.
    other_pem, other_key = pki.issue_push_certificate()
    pem_form = page.locator("form").filter(has_text="A certificate and its private key")
    pem_form.get_by_label("Push certificate (.pem or .cer)").set_input_files(
        {"name": "MDM_Other.pem", "mimeType": "application/x-pem-file", "buffer": other_pem}
    )
    pem_form.get_by_label("Its private key (.pem or .key)").set_input_files(
        {"name": "MDM_Other.key", "mimeType": "application/x-pem-file", "buffer": other_key}
    )
    pem_form.get_by_role("button", name="Import the certificate").click()
    refusal = page.get_by_role("alert").filter(
        has_text="Refused: this certificate has another topic"
    )
    assert refusal.is_visible()
    assert "8 enrolled devices" in refusal.inner_text()
    assert pushcert.active_topic() == topic
    shot(page, "7-topic-refused")
    page.get_by_label("I understand").check()
    page.get_by_role("button", name="Replace anyway (every device must re-enroll)").click()
    page.wait_for_url(re.compile(r"/certificates/push/$"))
    assert pushcert.active_topic() != topic
    assert page.get_by_role("status").filter(has_text="8 enrolled device(s)").is_visible()
    shot(page, "8-replaced")

    # Step 1 of the vendor-CSR flow.
    page.get_by_label("Country (two letters)").fill("NL")
    page.get_by_label("Contact e-mail").fill("it@example.org")
    page.get_by_role("button", name="Create a key and CSR").click()
    page.wait_for_url(re.compile(r"#step-2$"))
    assert page.get_by_role("link", name="Download the CSR").is_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the CSR").click()
    assert download.value.suggested_filename.startswith("push-csr-")
    shot(page, "9-csr-steps")

    # The overview with everything in place, at laptop and tablet widths.
    page.goto("/certificates/")
    assert page.get_by_role("link", name=devices[0].device_name).is_visible()
    assert page.get_by_text("queued", exact=True).first.is_visible()
    shot(page, "10-overview")
    page.set_viewport_size(TABLET)
    shot(page, "11-overview-tablet")
    page.goto("/certificates/push/")
    shot(page, "12-push-tablet")
    page.set_viewport_size(LAPTOP)
    assert IssuedCertificate.objects.count() >= 3


def test_a_viewer_reads_but_has_no_buttons(browser_page, scene):
    pushcert.import_push_certificate(
        *scene["pki"].issue_push_certificate(days=12), orphaned_devices=lambda topic: 0
    )
    page = browser_page
    log_in(page, "val")
    page.goto("/certificates/")
    assert page.get_by_text("7F3A9C0E21D84B6A").is_visible()
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_role("link", name="Details and renewal steps").is_visible()
    shot(page, "13-viewer")
    page.goto("/certificates/push/")
    assert page.locator("input[type=file]").count() == 0
    shot(page, "14-viewer-push")
