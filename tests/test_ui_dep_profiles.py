"""The DEP profile pages against the stand-in of Apple's DEP API: create a profile (Apple's
skip keys as a checklist, auto-assign), see it defined with Apple, edit it (the server stays),
errors shown at their field, and assign it to typed serials with Apple's answer per serial."""

import re

import pytest

from enrollment.dep_models import DepDevice, DepProfile
from enrollment.dep_sync import sync_server
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.dep_ui_support import make_enrollment, make_server
from tests.test_dep_profiles import tls_root  # noqa: F401 - a fixture: the server's TLS chain

pytestmark = pytest.mark.django_db

NEW = "/enrollments/dep/profiles/new/"


@pytest.fixture
def ready(dep, dep_server, tls_root):  # noqa: F811 - the fixture imported above
    """A DEP server with a token for the stand-in, an enrollment, and two devices synced."""
    dep.add_device("C02PRO0001")
    dep.add_device("C02PRO0002")
    sync_server(dep_server, actor="tests")
    return {"server": dep_server, "enrollment": make_enrollment("Staff iPads")}


def form_data(ready, **changes) -> dict:
    return {
        "name": "Staff iPads",
        "server": ready["server"].pk,
        "enrollment": ready["enrollment"].pk,
        "is_supervised": "on",
        "await_device_configured": "on",
        "department": "IT",
        "support_phone_number": "+1 555 0199",
        "support_email_address": "help@example.org",
        "skip_setup_items": ["AppleID", "Siri", "Location"],
        "auto_assign": "on",
        **changes,
    }


def test_the_form_offers_apples_skip_keys_as_a_checklist(staff, ready):
    page = staff[ADMIN].get(f"{NEW}?server={ready['server'].pk}").text
    boxes = re.findall(r'<input type="checkbox" name="skip_setup_items" value="(\w+)"', page)
    assert {"AppleID", "Biometric", "Location", "Passcode", "Siri", "TOS"} <= set(boxes)
    assert len(boxes) >= 40
    assert "Disables signing in to an Apple Account and iCloud (AppleID; iOS, macOS, tvOS)" in page
    assert f'<option value="{ready["server"].pk}" selected>ABM</option>' in page


def test_creating_a_profile_defines_it_with_apple_and_sets_auto_assign(staff, dep, ready):
    response = staff[ADMIN].post(NEW, form_data(ready), follow=True)
    profile = DepProfile.objects.get()
    assert response.redirect_chain[-1][0] == f"/enrollments/dep/profiles/{profile.pk}/"
    page = response.text
    assert "DEP profile Staff iPads created and defined with Apple." in page
    assert profile.profile_uuid and profile.profile_uuid in page
    assert profile.settings["skip_setup_items"] == ["AppleID", "Siri", "Location"]
    assert (
        profile.settings["is_supervised"] is True and profile.settings["is_mdm_removable"] is False
    )
    sent = [r.body for r in dep.requests if r.path == "/profile" and r.method == "POST"][-1]
    assert sent["profile_name"] == "Staff iPads" and sent["department"] == "IT"
    assert sent["url"] == "https://mdm.example.org/dep/enroll"
    ready["server"].refresh_from_db()
    assert ready["server"].auto_assign_profile == profile
    assert '<span class="badge ok">auto-assign</span>' in page
    assert 'Disables Siri <code class="small">Siri</code>' in page
    listing = staff[VIEWER].get("/enrollments/dep/profiles/").text
    assert "Staff iPads" in listing and "new devices" in listing
    assert AuditEntry.objects.filter(action="dep.profile.define", actor="admin-user").exists()
    assert AuditEntry.objects.filter(action="dep.profile.auto_assign").exists()


def test_editing_keeps_the_server_and_can_drop_auto_assign(staff, dep, ready):
    staff[ADMIN].post(NEW, form_data(ready))
    profile = DepProfile.objects.get()
    first_uuid = profile.profile_uuid
    edit = f"/enrollments/dep/profiles/{profile.pk}/edit/"
    page = staff[ADMIN].get(edit).text
    assert 'name="server"' in page and "disabled" in page.split('name="server"')[1][:200]
    assert re.search(r'name="skip_setup_items" value="AppleID"[^>]*checked', page)
    assert not re.search(r'name="skip_setup_items" value="TOS"[^>]*checked', page)
    other = make_server("Branch")
    changed = form_data(
        ready, name="Staff iPads 2", department="Sales", server=other.pk, skip_setup_items=["TOS"]
    )
    del changed["auto_assign"]
    response = staff[ADMIN].post(edit, changed, follow=True)
    assert "DEP profile Staff iPads 2 saved" in response.text
    profile.refresh_from_db()
    assert profile.server == ready["server"]  # a disabled field: what was posted is ignored
    assert profile.settings["department"] == "Sales" and profile.profile_uuid != first_uuid
    assert profile.settings["skip_setup_items"] == ["TOS"]
    ready["server"].refresh_from_db()
    assert ready["server"].auto_assign_profile is None


def test_errors_are_shown_at_their_field_and_nothing_is_saved(staff, dep, ready):
    bad_email = staff[ADMIN].post(NEW, form_data(ready, support_email_address="nope"))
    assert bad_email.status_code == 400
    assert re.search(r'id="id_support_email_address_error"><li>Enter a valid email', bad_email.text)
    no_enrollment = staff[ADMIN].post(NEW, form_data(ready, enrollment=""))
    assert no_enrollment.status_code == 400 and 'id="id_enrollment_error"' in no_enrollment.text
    staff[ADMIN].post(NEW, form_data(ready))
    taken = staff[ADMIN].post(NEW, form_data(ready))
    assert taken.status_code == 400 and "already has a profile" in taken.text
    dep.fail(500, "", times=10)
    refused = staff[ADMIN].post(NEW, form_data(ready, name="Another"))
    assert refused.status_code == 400 and "DEP API answered 500" in refused.text
    assert list(DepProfile.objects.values_list("name", flat=True)) == ["Staff iPads"]


def test_a_profile_needs_an_https_public_url(staff, dep, ready, settings):
    settings.MDM_PUBLIC_URL = "http://mdm.example.org"
    response = staff[ADMIN].post(NEW, form_data(ready))
    assert response.status_code == 400 and "MDM_PUBLIC_URL must be an https URL" in response.text
    assert not DepProfile.objects.exists()


def test_assigning_from_the_profile_page_shows_the_answer_per_serial(staff, dep, ready):
    staff[ADMIN].post(NEW, form_data(ready, auto_assign=""))
    profile = DepProfile.objects.get()
    page = staff[OPERATOR].get(f"/enrollments/dep/profiles/{profile.pk}/").text
    assert 'aria-label="Assign Staff iPads"' in page
    assert (
        'aria-label="Assign Staff iPads"'
        not in staff[VIEWER].get(f"/enrollments/dep/profiles/{profile.pk}/").text
    )
    dep.assign_results = {"C02PRO0002": "FAILED"}
    response = staff[OPERATOR].post(
        "/enrollments/dep/devices/assign/",
        {"profile": profile.pk, "serials": "C02PRO0001\nC02PRO0002", "next": "/"},
    )
    assert response.status_code == 200
    found = re.findall(
        r'<td class="mono">(\w+)</td>\s*<td[^>]*><span class="badge (\w+)">([^<]+)', response.text
    )
    assert found == [("C02PRO0001", "ok", "success"), ("C02PRO0002", "error", "failed")]
    assert "1 of 2 devices not done" in response.text
    detail = staff[VIEWER].get(f"/enrollments/dep/profiles/{profile.pk}/").text
    assert "Devices it is assigned to (1)" in detail and "C02PRO0001" in detail
    assert DepDevice.objects.get(serial_number="C02PRO0002").assign_result == "FAILED"
