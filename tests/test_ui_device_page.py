"""A device's page (/devices/<udid>/): identity and state, the inventory from the latest results
shown readably, the command history with readable results and ErrorChains, secrets never shown,
and the command links each role may use."""

import base64
import re
from html import unescape

import pytest
from django.utils import timezone

from certs.models import IssuedCertificate
from commands.apns import push_devices
from commands.models import QueuedCommand
from commands.queue import enqueue
from devices.models import Device, DeviceGroup
from enrollment.models import DeviceEnrollment, Enrollment
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from mdm_portal.templatetags.readable import error_text, render
from tests.device_ui_support import (
    BOOTSTRAP_TOKEN,
    BYPASS_CODE,
    MAC,
    RECOVERY_KEY_CMS,
    UNLOCK_TOKEN,
    answer_everything,
    enroll_with_inventory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def iphone(make_device):
    """An enrolled iPhone that answered its whole inventory, with secrets escrowed."""
    sim = make_device()
    device = enroll_with_inventory(sim)
    device.group = DeviceGroup.objects.create(name="Sales")
    device.save(update_fields=["group"])
    enrollment = Enrollment.objects.create(name="Staff phones", access_rights=8191)
    DeviceEnrollment.objects.create(device=device, enrollment=enrollment, since=timezone.now())
    # A secret answer, and a command that failed.
    enqueue(device, "ActivationLockBypassCode")
    enqueue(device, "Settings", {"Settings": [{"Item": "DeviceName", "DeviceName": "Ana"}]})
    answer_everything(sim, fail={"Settings"})
    return sim, Device.objects.get(pk=device.pk)


def page(client, device, **params):
    response = client.get(f"/devices/{device.udid}/", params)
    assert response.status_code == 200
    return response.text


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_the_page_shows_identity_state_and_rights(staff, iphone):
    _sim, device = iphone
    html = page(staff[VIEWER], device)
    text = text_of(html)
    for shown in (
        device.udid,
        "F17ZK3P9Q1",
        "iPhone16,1",
        "MTLW3LL/A",
        "iOS 17.5.1",
        "build 21F90",
        "Staff phones",  # the enrollment
        "Sales",  # the group
        "CN=device",  # the identity certificate
        "days left",
        "Erase the device: everything on it is deleted",  # AccessRights in words
        "(8191)",
    ):
        assert shown in text, shown
    assert re.search(r"Supervised\s+Yes", text)
    assert re.search(r"UnlockToken\s+escrowed", text)
    assert re.search(r"Bootstrap token\s+escrowed", text)


def test_a_device_in_setup_assistant_and_its_identity_delivery_are_shown(staff, iphone):
    _sim, device = iphone
    assert "awaiting configuration" not in text_of(page(staff[VIEWER], device))
    Device.objects.filter(pk=device.pk).update(awaiting_configuration=True)
    text = text_of(page(staff[VIEWER], device))
    assert re.search(r"Setup Assistant\s+awaiting configuration", text)
    assert "by ACME" not in text  # how its identity came, once recorded:
    IssuedCertificate.objects.filter(binding__device=device).update(
        delivery="acme", attested_udid=device.udid
    )
    assert "by ACME, attested by the hardware" in text_of(page(staff[VIEWER], device))


def test_the_last_push_and_its_result(staff, iphone):
    _sim, device = iphone
    assert "never pushed" in page(staff[VIEWER], device)
    push_devices([device.pk], "manual")  # no push certificate: recorded as not sent, and why
    text = text_of(page(staff[VIEWER], device))
    assert "not sent" in text and "(manual)" in text


def test_the_inventory_is_shown_readably_with_when_it_was_reported(staff, iphone):
    _sim, device = iphone
    html = page(staff[VIEWER], device)
    text = text_of(html)
    # Device information and security: key/value lists, nested where the answer nests.
    assert "<dt>BatteryLevel</dt><dd>0.82</dd>" in html
    assert '<dt>IsSupervised</dt><dd><span class="yesno true">Yes</span></dd>' in html
    assert "<dt>FirewallEnabled</dt>" in html and "<dt>SecureBootLevel</dt>" in html
    # Profiles, apps and certificates: tables of their rows.
    assert "Office Wi-Fi" in text and "com.example.vpn" in text
    assert "Microsoft Outlook" in text and "304.0\xa0MB" in text
    assert "Example Corp Root CA" in text and "expired" in text and "20 days" in text
    # Restrictions: one row per restriction.
    assert re.search(r"allowScreenShot\s+No\s+restrictedBool", text)
    assert re.search(r"maxInactivity\s+300\s+restrictedValue", text)
    assert len(re.findall(r"reported\s+just now", text)) == 6
    assert 'id="information"' in html and 'id="restrictions"' in html


def test_the_page_takes_a_handful_of_queries(staff, iphone, django_assert_max_num_queries):
    _sim, device = iphone
    with django_assert_max_num_queries(20):
        page(staff[ADMIN], device)


def test_a_device_that_reported_nothing_says_so(staff, enrolled):
    device = Device.objects.get(udid=enrolled.udid)
    text = text_of(page(staff[VIEWER], device))
    assert text.count("not reported yet") == 6
    assert "Device information" in text


def test_the_history_shows_statuses_results_and_errors_readably(staff, iphone):
    _sim, device = iphone
    html = page(staff[VIEWER], device)
    assert '<span class="badge error">error</span>' in html
    assert '<span class="badge acknowledged">acknowledged</span>' in html
    assert "The device is not supervised. (MCMDMErrorDomain 12021)" in html
    # A result as a key/value list, and its raw JSON beside it.
    assert "<dt>QueryResponses</dt>" in html
    assert "<summary>Raw</summary>" in html and "&quot;QueryResponses&quot;: {" in html


def test_secrets_are_never_shown(staff, iphone):
    sim, device = iphone
    html = page(staff[ADMIN], device) + page(staff[VIEWER], device)
    for secret in (UNLOCK_TOKEN, BOOTSTRAP_TOKEN, RECOVERY_KEY_CMS, b"device-push-token-bytes"):
        for form in (
            secret.decode(errors="ignore"),
            base64.b64encode(secret).decode(),
            secret.hex(),
            secret.hex().upper(),
        ):
            assert form not in html, form
    assert BYPASS_CODE not in html
    assert device.push_magic not in html and device.push_token not in html
    assert "(hidden)" in html  # where an answer held one
    # The answer is still stored (the portal may need it), only not shown.
    assert (
        QueuedCommand.objects.filter(device=device, request_type="ActivationLockBypassCode")
        .get()
        .result_dict()["ActivationLockBypassCode"]
        == BYPASS_CODE
    )


def test_the_history_shows_more_on_request(staff, iphone):
    sim, device = iphone
    for _ in range(25):
        enqueue(device, "ProfileList")
    first = page(staff[VIEWER], device)
    assert first.count("<td><strong>") == 20
    assert 'href="?commands=40#history"' in first
    more = staff[VIEWER].get(
        f"/devices/{device.udid}/",
        {"commands": "40"},
        headers={"HX-Request": "true", "HX-Target": "history-rows"},
    )
    assert more.status_code == 200 and "<html" not in more.text  # only the rows, for htmx
    assert more.text.count("<td><strong>") == 33  # all of them: 8, then 25 ProfileList
    assert page(staff[VIEWER], device, commands="nonsense").count("<td><strong>") == 20


def command_links(html: str) -> set[str]:
    return set(re.findall(r'href="/commands/new/\?device=[^"&]+&amp;type=(\w+)"', html))


def test_the_commands_offered_depend_on_the_role(staff, iphone):
    _sim, device = iphone
    assert command_links(page(staff[VIEWER], device)) == set()
    assert "Your role can read this device but not send it commands." in page(staff[VIEWER], device)
    operator = command_links(page(staff[OPERATOR], device))
    admin = command_links(page(staff[ADMIN], device))
    common = {
        "DeviceInformation",
        "ProfileList",
        "InstalledApplicationList",
        "SecurityInfo",
        "DeviceLock",
        "RestartDevice",
        "ShutDownDevice",
        "InstallProfile",
        "RemoveProfile",
        "InstallApplication",
        "Settings",
        "EnableLostMode",
    }
    assert common <= operator
    assert "EraseDevice" not in operator and "ClearPasscode" not in operator
    assert admin >= common | {"EraseDevice", "ClearPasscode"}
    assert "DisableLostMode" not in admin  # not in lost mode
    other = f'href="/commands/new/?device={device.udid}">Other command…</a>'
    assert other in page(staff[OPERATOR], device)


def test_lost_mode_offers_disable_and_refused_commands_say_why(staff, make_device):
    sim = make_device()
    device = enroll_with_inventory(sim)
    Device.objects.filter(pk=device.pk).update(lost_mode=True, access_rights=1 | 16 | 1024)
    html = page(staff[ADMIN], device)
    links = command_links(html)
    assert "DisableLostMode" in links and "EnableLostMode" not in links
    # Not allowed by this enrollment's AccessRights: shown greyed, and why, in words.
    assert "EraseDevice" not in links
    assert '<span class="btn disabled" aria-disabled="true">Erase…</span>' in html
    assert "EraseDevice needs AccessRights 8, which 1 device(s) were not enrolled with" in html
    mac = make_device()
    html = page(staff[ADMIN], enroll_with_inventory(mac, MAC))
    assert "Restrictions is not supported on macOS" in html
    assert "EnableLostMode is not supported on macOS" in html
    # Its inventory says so too, and offers no refresh that would be refused.
    assert "not available: Restrictions is not supported on macOS" in html
    assert "Restrictions" not in command_links(html)


def test_a_pending_device_is_offered_no_command(staff, device):
    assert device.authenticate().status == 200
    pending = Device.objects.get(udid=device.udid)
    html = page(staff[ADMIN], pending)
    assert command_links(html) == set()
    assert "Commands can be sent once the device is enrolled" in html


def test_readable_values():
    html = str(render({"name": "<script>x</script>", "ok": True, "list": [1, 2], "none": None}))
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert '<span class="yesno true">Yes</span>' in html and "1, 2" in html
    table = str(render([{"a": 1, "b": "x"}, {"a": 2, "c": False}]))
    assert table.count("<tr>") == 3 and '<th scope="col">c</th>' in table
    nested = str(render([{"a": {"deep": [1]}}]))
    assert '<ol class="readable">' in nested
    assert "2026-01-02 03:04:05" in str(render("2026-01-02T03:04:05+00:00"))
    assert error_text({"ErrorCode": 5, "ErrorDomain": "D", "LocalizedDescription": "Bad"}) == (
        "Bad (D 5)"
    )


def test_every_command_link_opens_the_command_form(staff, iphone):
    _sim, device = iphone
    html = page(staff[ADMIN], device)
    links = set(re.findall(r'href="(/commands/new/\?[^"]+)"', html))
    assert len(links) == 17  # 16 commands (refresh links repeat some) and "Other command…"
    for link in links:
        response = staff[ADMIN].get(unescape(link))
        assert response.status_code == 200, link
        assert "1 device: Ana" in response.text, link
