"""DEP profiles through the API (/api/v1/dep/profiles/) against the stand-in of Apple's DEP
API: admins create and update them (defined with Apple, auto-assign), operators assign them
with Apple's answer per serial; refusals are 400 (the key at fault), Apple's failure a 502."""

import pytest

from enrollment.dep_models import DepDevice, DepProfile
from enrollment.dep_sync import sync_server
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.dep_ui_support import make_dep_devices, make_enrollment, make_server
from tests.test_dep_profiles import tls_root  # noqa: F401 - a fixture: the server's TLS chain

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tls_root")]

PROFILES = "/api/v1/dep/profiles/"


@pytest.fixture
def ready(dep, dep_server):
    dep.add_device("C02APR0001")
    dep.add_device("C02APR0002")
    sync_server(dep_server, actor="tests")
    return {"server": dep_server, "enrollment": make_enrollment("Staff iPads")}


def body(ready, **changes) -> dict:
    return {
        "name": "Staff iPads",
        "server": ready["server"].pk,
        "enrollment": ready["enrollment"].pk,
        "is_supervised": True,
        "is_mdm_removable": False,
        "department": "IT",
        "support_email_address": "help@example.org",
        "skip_setup_items": ["AppleID", "Siri"],
        "auto_assign": True,
        **changes,
    }


def test_admins_create_profiles_that_every_role_reads(api, dep, ready):
    assert api[OPERATOR].post(PROFILES, body(ready), format="json").status_code == 403
    created = api[ADMIN].post(PROFILES, body(ready), format="json")
    assert created.status_code == 201, created.content
    profile = created.json()
    assert profile["profile_uuid"] and profile["defined_at"] and profile["auto_assign"] is True
    assert profile["skip_setup_items"] == ["AppleID", "Siri"] and profile["department"] == "IT"
    assert profile["is_supervised"] is True and profile["is_mdm_removable"] is False
    sent = [r.body for r in dep.requests if r.path == "/profile" and r.method == "POST"][-1]
    assert sent["skip_setup_items"] == ["AppleID", "Siri"]
    ready["server"].refresh_from_db()
    assert ready["server"].auto_assign_profile_id == profile["id"]
    for role in (VIEWER, OPERATOR, ADMIN):
        listed = api[role].get(PROFILES)
        assert [p["name"] for p in listed.json()["results"]] == ["Staff iPads"], role
    one = api[VIEWER].get(f"{PROFILES}{profile['id']}/").json()
    assert one == {**profile, "device_count": 0, "updated_at": one["updated_at"]}
    server = api[VIEWER].get(f"/api/v1/dep/servers/{ready['server'].pk}/").json()
    assert server["auto_assign_profile"] == profile["id"]
    assert AuditEntry.objects.get(action="dep.profile.define").details["token"] == "admin-script"


def test_a_patch_changes_what_it_names_and_keeps_the_rest(api, ready):
    profile = api[ADMIN].post(PROFILES, body(ready), format="json").json()
    path = f"{PROFILES}{profile['id']}/"
    assert api[OPERATOR].patch(path, {"department": "Sales"}, format="json").status_code == 403
    patched = api[ADMIN].patch(path, {"department": "Sales", "auto_assign": False}, format="json")
    assert patched.status_code == 200, patched.content
    changed = patched.json()
    assert changed["department"] == "Sales" and changed["skip_setup_items"] == ["AppleID", "Siri"]
    assert changed["profile_uuid"] != profile["profile_uuid"]  # defined anew with Apple
    assert changed["auto_assign"] is False
    moved = api[ADMIN].patch(path, {"server": make_server("Branch").pk}, format="json")
    assert moved.status_code == 400 and moved.json()["error"].startswith("server:")
    full = api[ADMIN].put(path, body(ready, name="Renamed", skip_setup_items=[]), format="json")
    assert full.status_code == 200 and full.json()["name"] == "Renamed"
    assert full.json()["skip_setup_items"] == []


def test_refusals_name_the_key_and_apples_failure_is_a_502(api, dep, ready, settings):
    cases = [
        ({"skip_setup_items": ["NotAPane"]}, "skip_setup_items"),
        ({"enrollment": 999999}, "enrollment"),
        ({"support_email_address": "nope"}, "support_email_address"),
        ({"name": ""}, "name"),
    ]
    for change, key in cases:
        refused = api[ADMIN].post(PROFILES, body(ready, **change), format="json")
        assert refused.status_code == 400, change
        assert refused.json()["error"].startswith(f"{key}"), refused.json()
    dep.fail(500, "", times=10)
    failed = api[ADMIN].post(PROFILES, body(ready), format="json")
    assert failed.status_code == 502 and "DEP API answered 500" in failed.json()["error"]
    settings.MDM_PUBLIC_URL = "http://mdm.example.org"
    plain = api[ADMIN].post(PROFILES, body(ready), format="json")
    assert plain.status_code == 400 and "https" in plain.json()["error"]
    assert not DepProfile.objects.exists()


def test_operators_assign_with_apples_answer_per_serial(api, dep, ready):
    profile = api[ADMIN].post(PROFILES, body(ready, auto_assign=False), format="json").json()
    path = f"{PROFILES}{profile['id']}/assign/"
    serials = {"serials": ["C02APR0001", "C02APR0002"]}
    assert api[VIEWER].post(path, serials, format="json").status_code == 403
    dep.assign_results = {"C02APR0002": "NOT_ACCESSIBLE"}
    answer = api[OPERATOR].post(path, serials, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"results": {"C02APR0001": "SUCCESS", "C02APR0002": "NOT_ACCESSIBLE"}}
    assert DepDevice.objects.get(serial_number="C02APR0001").assigned_profile_id == profile["id"]
    device = api[VIEWER].get("/api/v1/dep/devices/C02APR0002/").json()
    assert device["assign_result"] == "NOT_ACCESSIBLE"
    make_dep_devices(make_server("Branch"), ["C02OTHER01"])
    foreign = api[OPERATOR].post(path, {"serials": ["C02OTHER01"]}, format="json")
    assert foreign.status_code == 400 and "C02OTHER01 is not on ABM" in foreign.json()["error"]
    assert api[OPERATOR].post(path, {"serials": []}, format="json").status_code == 400
    dep.fail(500, "", times=10)
    failed = api[OPERATOR].post(path, serials, format="json")
    assert failed.status_code == 502
