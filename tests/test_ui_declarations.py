"""The Declarative Device Management pages (/declarations/, a device's Declarations section,
the dashboard's card): who may see and do what, the schema form and its errors next to their
field, JSON uploads, sets and their assignments reaching a real enrolled device through its
DeclarativeManagement check-in, and the states its status reports give."""

import hashlib
import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from declarations.assets import serve_credential
from declarations.models import Declaration, DeclarationSet, DeclarationState, ServedAsset
from declarations.schema import REASONS
from declarations.sets import assign, create_set
from declarations.store import save_declaration
from devices.models import Device, DeviceGroup
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.declarative_support import (
    ACTIVATION,
    ORGANIZATION,
    PASSCODE,
    declaration_status,
    declarative,
    declarative_commands,
    give,
    json_of,
    processed,
    status_report,
)
from tests.library_support import audited, field_errors, post

pytestmark = pytest.mark.django_db

PASSCODE_TYPE = "com.apple.configuration.passcode.settings"
FAILED_REASON = "Error.ConfigurationCannotBeApplied"


@pytest.fixture
def stored():
    """A passcode configuration and an organization declaration, in a set given to a group."""
    passcode, _ = save_declaration(PASSCODE, by="tests", description="Six digits for everyone")
    org, _ = save_declaration(ORGANIZATION, by="tests")
    group = DeviceGroup.objects.create(name="Sales")
    declaration_set = create_set("Baseline", by="tests")
    declaration_set.declarations.add(passcode, org)
    assign(declaration_set, groups=[group], by="tests")
    return {"passcode": passcode, "org": org, "set": declaration_set, "group": group}


def read_pages(stored) -> list[str]:
    pk = stored["set"].pk
    return [
        "/declarations/",
        "/declarations/?kind=configuration&q=pass&failing=on",
        "/declarations/passcode/",
        "/declarations/sets/",
        f"/declarations/sets/{pk}/",
    ]


def operator_pages(stored) -> list[str]:
    pk, group = stored["set"].pk, stored["group"].pk
    return [
        "/declarations/new/",
        f"/declarations/new/?type={PASSCODE_TYPE}",
        "/declarations/new/served-data/?type=com.apple.asset.data",
        "/declarations/upload/",
        "/declarations/passcode/edit/",
        "/declarations/passcode/delete/",
        "/declarations/sets/new/",
        f"/declarations/sets/{pk}/remove/?declaration=passcode",
        f"/declarations/sets/{pk}/unassign/?group={group}",
        f"/declarations/sets/{pk}/delete/",
    ]


# --- access ----------------------------------------------------------------------------------


def test_every_page_needs_login_and_a_role(client, staff, stored):
    for path in read_pages(stored) + operator_pages(stored):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
        assert staff[None].get(path).status_code == 403, path


def test_viewers_read_everything_and_operators_manage(staff, stored):
    for path in read_pages(stored):
        for role in (VIEWER, OPERATOR, ADMIN):
            assert staff[role].get(path).status_code == 200, (path, role)
    for path in operator_pages(stored):
        assert staff[VIEWER].get(path).status_code == 403, path
        for role in (OPERATOR, ADMIN):
            assert staff[role].get(path).status_code == 200, (path, role)
    viewer_page = staff[VIEWER].get("/declarations/passcode/").text
    assert "Edit…" not in viewer_page and "Delete…" not in viewer_page
    assert "Edit…" in staff[OPERATOR].get("/declarations/passcode/").text
    assert "New declaration" not in staff[VIEWER].get("/declarations/").text


def test_a_viewer_changes_nothing(staff, stored):
    viewer, pk = staff[VIEWER], stored["set"].pk
    before = AuditEntry.objects.count()
    refused = [
        post(viewer, f"/declarations/new/?type={PASSCODE_TYPE}", {"Identifier": "x"}),
        post(viewer, "/declarations/upload/", {"text": json.dumps(ORGANIZATION)}),
        post(viewer, "/declarations/passcode/delete/"),
        post(viewer, "/declarations/sets/new/", {"name": "Other"}),
        post(viewer, f"/declarations/sets/{pk}/assign/", {"group": stored["group"].pk}),
        post(viewer, f"/declarations/sets/{pk}/delete/"),
    ]
    assert [response.status_code for response in refused] == [403] * len(refused)
    assert Declaration.objects.count() == 2 and DeclarationSet.objects.count() == 1
    assert AuditEntry.objects.count() == before


def test_credentials_are_for_administrators(staff, settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    operator, admin = staff[OPERATOR], staff[ADMIN]
    acme = "/declarations/new/served-data/?type=com.apple.asset.credential.acme"
    login = "/declarations/new/served-data/?type=com.apple.asset.credential.userpassword"
    assert operator.get(acme).status_code == 403
    assert operator.get(login).status_code == 403
    scep = "/declarations/new/?type=com.apple.asset.credential.scep"
    assert operator.get(scep).status_code == 403
    assert "needs the admin role" in operator.get("/declarations/new/").text
    document = json.dumps({"UserName": "alice", "Password": "hunter2-secret"}).encode()
    upload = SimpleUploadedFile("login.json", document, "application/json")
    refused = post(
        operator, login, {"Identifier": "login", "file": upload, "content_type": "application/json"}
    )
    assert refused.status_code == 403 and not ServedAsset.objects.exists()
    assert admin.get(acme).status_code == 200
    upload = SimpleUploadedFile("login.json", document, "application/json")
    response = post(
        admin, login, {"Identifier": "login", "file": upload, "content_type": "application/json"}
    )
    assert response.status_code == 302
    page = admin.get("/declarations/login/").text
    assert hashlib.sha256(document).hexdigest() in page and "hunter2" not in page
    # An operator reads it, but may not change or delete it.
    assert "hunter2" not in operator.get("/declarations/login/").text
    assert operator.get("/declarations/login/edit/").status_code == 403
    assert post(operator, "/declarations/login/delete/").status_code == 403
    assert Declaration.objects.filter(identifier="login").exists()


def test_an_administrator_makes_an_acme_credential_with_options(staff, settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    path = "/declarations/new/served-data/?type=com.apple.asset.credential.acme"
    form = staff[ADMIN].get(path).text
    assert 'name="KeySize"' in form and 'name="DirectoryURL"' not in form
    bad = post(staff[ADMIN], path, {"Identifier": "acme", "KeyType": "RSA", "KeySize": "x"})
    assert bad.status_code == 400 and "whole number" in field_errors(bad.text, "KeySize")
    response = post(
        staff[ADMIN],
        path,
        {"Identifier": "acme", "KeyType": "ECSECPrimeRandom", "KeySize": "256",
         "HardwareBound": "true", "Attest": "true"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    served = ServedAsset.objects.get(declaration__identifier="acme")
    assert served.source == "acme" and served.options["KeySize"] == 256
    assert audited("declaration.created").target == "acme"


# --- the schema form ---------------------------------------------------------------------------


def test_the_schema_form_builds_the_declaration(staff):
    path = f"/declarations/new/?type={PASSCODE_TYPE}"
    form = staff[OPERATOR].get(path).text
    # One field per key of Apple's schema, with its title, its key and its description.
    assert 'name="MinimumLength"' in form and 'type="number"' in form
    assert "Require Alphanumeric Passcode" in form and "RequireAlphanumericPasscode" in form
    assert "— not set (default: No) —" in form  # an optional boolean: unset, Yes or No
    data = {
        "Identifier": "com.example.passcode",
        "MinimumLength": "8",
        "RequireAlphanumericPasscode": "true",
        "RequirePasscode": "",  # not set: not sent
        "description": "Eight characters",
    }
    response = post(staff[OPERATOR], path, data)
    assert response.status_code == 302
    assert response["Location"] == "/declarations/com.example.passcode/"
    declaration = Declaration.objects.get(identifier="com.example.passcode")
    assert declaration.type == PASSCODE_TYPE and declaration.kind == "configuration"
    assert declaration.payload == {"MinimumLength": 8, "RequireAlphanumericPasscode": True}
    assert declaration.description == "Eight characters"
    entry = audited("declaration.created")
    assert entry.target == "com.example.passcode" and entry.actor == "operator-user"
    page = html.unescape(staff[VIEWER].get(response["Location"]).text)
    assert declaration.server_token in page and '"MinimumLength": 8' in page


def test_bad_input_is_shown_next_to_its_field_and_stores_nothing(staff):
    path = f"/declarations/new/?type={PASSCODE_TYPE}"
    operator = staff[OPERATOR]
    not_a_number = post(operator, path, {"Identifier": "p", "MinimumLength": "six"})
    assert not_a_number.status_code == 400
    assert "whole number" in field_errors(not_a_number.text, "MinimumLength")
    bad_regex = post(operator, path, {"Identifier": "p", "CustomRegex": '{"Bogus": 1}'})
    assert bad_regex.status_code == 400
    assert "bogus" in field_errors(bad_regex.text, "CustomRegex")  # the schema's refusal
    bad_json = post(operator, path, {"Identifier": "p", "CustomRegex": "{not json"})
    assert "not valid json" in field_errors(bad_json.text, "CustomRegex")
    slash = post(operator, path, {"Identifier": "a/b", "MinimumLength": "6"})
    assert slash.status_code == 400 and "/" in field_errors(slash.text, "Identifier")
    save_declaration(PASSCODE, by="tests")
    taken = post(operator, path, {"Identifier": "passcode", "MinimumLength": "4"})
    assert "exists" in field_errors(taken.text, "Identifier")
    assert Declaration.objects.get().payload == PASSCODE["Payload"]  # unchanged
    unknown = operator.get("/declarations/new/?type=com.apple.nope")
    assert unknown.status_code == 400 and "unknown declaration Type" in unknown.text


def test_editing_keeps_the_type_and_identifier_and_unsets_a_key(staff, stored):
    form = staff[OPERATOR].get("/declarations/passcode/edit/").text
    assert re.search(r'name="MinimumLength"[^>]*value="6"', form)
    assert re.search(r'<option value="true" selected>Yes</option>', form)
    old_token = stored["passcode"].server_token
    response = post(
        staff[OPERATOR],
        "/declarations/passcode/edit/",
        {"Identifier": "ignored", "MinimumLength": "10", "RequireAlphanumericPasscode": ""},
    )
    assert response.status_code == 302
    passcode = Declaration.objects.get(identifier="passcode")
    assert passcode.payload == {"MinimumLength": 10}
    assert passcode.server_token != old_token
    assert not Declaration.objects.filter(identifier="ignored").exists()
    assert audited("declaration.updated").target == "passcode"


# --- JSON ------------------------------------------------------------------------------------


def test_upload_json_stores_all_or_nothing(staff):
    operator = staff[OPERATOR]
    both = json.dumps([PASSCODE, ACTIVATION])
    response = post(operator, "/declarations/upload/", {"text": both})
    assert response.status_code == 302 and response["Location"] == "/declarations/"
    assert set(Declaration.objects.values_list("identifier", flat=True)) == {
        "passcode",
        "activate-passcode",
    }
    broken = [ORGANIZATION, {**PASSCODE, "Identifier": "p2", "Payload": {"MinimumLength": "6"}}]
    refused = post(operator, "/declarations/upload/", {"text": json.dumps(broken)})
    assert refused.status_code == 400
    assert "declaration 2 of 2 (p2)" in field_errors(refused.text, "text")
    assert not Declaration.objects.filter(identifier__in=["org", "p2"]).exists()
    upload = SimpleUploadedFile("org.json", json.dumps(ORGANIZATION).encode(), "application/json")
    single = post(operator, "/declarations/upload/", {"file": upload})
    assert single.status_code == 302 and single["Location"] == "/declarations/org/"
    not_objects = post(operator, "/declarations/upload/", {"text": "[1]"})
    assert "must be a json object" in field_errors(not_objects.text, "text")
    garbage = post(operator, "/declarations/upload/", {"text": "{nope"})
    assert "not valid json" in field_errors(garbage.text, "text")
    assert post(operator, "/declarations/upload/", {}).status_code == 400


def test_served_data_shows_size_and_hash_never_the_content(staff, settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    content = b"printer-config: floor-3-secret-queue"
    upload = SimpleUploadedFile("printers.conf", content, "text/plain")
    response = post(
        staff[OPERATOR],
        "/declarations/new/served-data/?type=com.apple.asset.data",
        {"Identifier": "printers", "file": upload, "content_type": "text/plain"},
    )
    assert response.status_code == 302
    page = staff[VIEWER].get("/declarations/printers/").text
    assert hashlib.sha256(content).hexdigest() in page and f"{len(content)} bytes" in page
    assert "floor-3-secret-queue" not in page
    edit = staff[OPERATOR].get("/declarations/printers/edit/").text
    assert "Give it new data" in edit and 'name="Reference"' not in edit
    again = post(
        staff[OPERATOR],
        "/declarations/new/served-data/?type=com.apple.asset.data",
        {"Identifier": "printers", "file": SimpleUploadedFile("x", b"2"), "content_type": "a/b"},
    )
    assert again.status_code == 400 and "exists" in field_errors(again.text, "Identifier")
    newer = post(
        staff[OPERATOR],
        "/declarations/printers/data/",
        {"file": SimpleUploadedFile("p.conf", b"floor 4"), "content_type": "text/plain"},
    )
    assert newer.status_code == 302
    served = ServedAsset.objects.get(declaration__identifier="printers")
    assert served.sha256 == hashlib.sha256(b"floor 4").hexdigest()
    assert audited("declaration.updated").target == "printers"


# --- sets, assignments and a real device --------------------------------------------------------


def test_a_set_assigned_to_a_group_reaches_an_enrolled_device(staff, enrolled):
    save_declaration(PASSCODE, by="tests")
    operator = staff[OPERATOR]
    group = DeviceGroup.objects.create(name="Lab")
    Device.objects.filter(udid=enrolled.udid).update(group=group)
    created = post(operator, "/declarations/sets/new/", {"name": "Lab policy"})
    assert created.status_code == 302
    declaration_set = DeclarationSet.objects.get(name="Lab policy")
    passcode = Declaration.objects.get(identifier="passcode")
    base = f"/declarations/sets/{declaration_set.pk}"
    assert post(operator, f"{base}/add/", {"declarations": [passcode.pk]}).status_code == 302
    assert declarative_commands(enrolled.udid) == []  # assigned nowhere yet
    response = post(operator, f"{base}/assign/", {"group": group.pk})
    assert response.status_code == 302
    assert audited("declaration_set.assigned").details["groups"] == ["Lab"]
    assert len(declarative_commands(enrolled.udid)) == 1
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    assert [i["Identifier"] for i in items["Configurations"]] == ["passcode"]
    page = operator.get(f"{base}/").text
    assert "Lab" in page and "1 device gets this set" in page
    listing = staff[VIEWER].get("/declarations/").text
    assert re.search(r'<td class="num">\s*1\s*</td>', listing)  # the devices that should have it


def test_a_device_that_cannot_take_a_declaration_is_refused_by_name(staff, enrolled):
    save_declaration(PASSCODE, by="tests")
    Device.objects.filter(udid=enrolled.udid).update(platform="watchOS", os_version="10.0")
    declaration_set = create_set("Watches", by="tests")
    declaration_set.declarations.add(Declaration.objects.get(identifier="passcode"))
    response = post(
        staff[OPERATOR],
        f"/declarations/sets/{declaration_set.pk}/assign/",
        {"devices": enrolled.udid},
    )
    assert response.status_code == 400
    error = field_errors(response.text, "devices")
    assert "not supported" in error and enrolled.udid.lower() in error
    assert not declaration_set.devices.exists() and declarative_commands(enrolled.udid) == []


def test_unassign_remove_and_delete_ask_first(staff, stored, enrolled):
    operator, pk = staff[OPERATOR], stored["set"].pk
    Device.objects.filter(udid=enrolled.udid).update(group=stored["group"])
    assign(stored["set"], devices=Device.objects.filter(udid=enrolled.udid), by="tests")
    asked = operator.get(f"/declarations/sets/{pk}/unassign/?device={enrolled.udid}")
    assert asked.status_code == 200 and "Unassign" in asked.text
    assert post(operator, f"/declarations/sets/{pk}/unassign/", {"device": enrolled.udid})
    assert not stored["set"].devices.exists()
    removal = operator.get(f"/declarations/sets/{pk}/remove/?declaration=org")
    assert "Remove org from Baseline?" in removal.text
    post(operator, f"/declarations/sets/{pk}/remove/", {"declaration": "org"})
    assert list(stored["set"].declarations.values_list("identifier", flat=True)) == ["passcode"]
    confirmation = operator.get(f"/declarations/sets/{pk}/delete/").text
    assert "1 device(s) lose what no other set gives them" in confirmation
    assert post(operator, f"/declarations/sets/{pk}/delete/").status_code == 302
    assert not DeclarationSet.objects.exists()
    assert audited("declaration_set.deleted").target == "Baseline"


def test_delete_names_the_devices_and_is_refused_while_referenced(staff, stored, enrolled):
    operator = staff[OPERATOR]
    Device.objects.filter(udid=enrolled.udid).update(group=stored["group"])
    save_declaration(ACTIVATION, by="tests")  # refers to passcode
    refused = operator.get("/declarations/passcode/delete/")
    assert "This cannot be done now" in refused.text and "activate-passcode" in refused.text
    assert post(operator, "/declarations/passcode/delete/").status_code == 409
    assert Declaration.objects.filter(identifier="passcode").exists()
    asked = operator.get("/declarations/org/delete/").text
    device = Device.objects.get(udid=enrolled.udid)
    assert "1 device(s) lose it at their next sync" in asked and str(device) in asked
    assert post(operator, "/declarations/org/delete/").status_code == 302
    assert not Declaration.objects.filter(identifier="org").exists()
    assert audited("declaration.deleted").target == "org"


# --- states: the device page, a declaration's page, the dashboard ----------------------------


def report_failed_passcode(enrolled) -> None:
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    tokens = {i["Identifier"]: i["ServerToken"] for v in items.values() for i in v}
    reasons = [{"code": FAILED_REASON, "description": "passcode too short for this device"}]
    report = processed(
        configurations=[
            declaration_status(
                "passcode", tokens["passcode"], active=False, valid="invalid", reasons=reasons
            )
        ],
        management=[declaration_status("org", tokens["org"])],
    )
    report["device"] = {"operating-system": {"version": "17.5", "build-version": "21F79"}}
    assert declarative(enrolled, "status", status_report(report, full=True)).status == 200


def test_the_device_page_shows_its_declarations_after_a_status_report(staff, enrolled):
    page = staff[VIEWER].get(f"/devices/{enrolled.udid}/").text
    assert 'id="declarations"' in page and "No declaration is assigned to this device" in page
    give(enrolled, PASSCODE, ORGANIZATION)
    pending = staff[VIEWER].get(f"/devices/{enrolled.udid}/").text
    assert "pending 2" in pending and "no status report yet" in pending
    report_failed_passcode(enrolled)
    page = staff[VIEWER].get(f"/devices/{enrolled.udid}/").text
    section = page[page.index('id="declarations"') :]
    assert "failed 1" in section and "active 1" in section
    assert FAILED_REASON in section and "passcode too short for this device" in section
    assert REASONS[FAILED_REASON] in section
    assert "full, 1 so far" in section
    assert "device.operating-system.version" in section and "17.5" in section


def test_a_declaration_page_counts_its_states_and_the_dashboard_the_failures(staff, enrolled):
    give(enrolled, PASSCODE, ORGANIZATION)
    assert "No declaration is failing" in staff[VIEWER].get("/").text
    report_failed_passcode(enrolled)
    assert DeclarationState.objects.filter(failed=True).count() == 1
    detail = staff[VIEWER].get("/declarations/passcode/").text
    assert "failed 1" in detail and f'href="/devices/{enrolled.udid}/"' in detail
    assert REASONS[FAILED_REASON] in detail
    dashboard = staff[VIEWER].get("/").text
    assert "1 declaration failing" in dashboard and "on 1 device" in dashboard
    assert 'href="/declarations/?failing=true"' in dashboard
    failing = staff[VIEWER].get("/declarations/?failing=true").text
    assert "/declarations/passcode/" in failing and "/declarations/org/" not in failing
    everything = staff[VIEWER].get("/declarations/").text
    assert "/declarations/org/" in everything


def test_the_list_filters_by_kind_type_and_search(staff, stored):
    viewer = staff[VIEWER]
    by_kind = viewer.get("/declarations/?kind=management").text
    assert "/declarations/org/" in by_kind and "/declarations/passcode/" not in by_kind
    by_type = viewer.get(f"/declarations/?type={PASSCODE_TYPE}").text
    assert "/declarations/passcode/" in by_type and "/declarations/org/" not in by_type
    by_note = viewer.get("/declarations/?q=six+digits").text
    assert "/declarations/passcode/" in by_note and "/declarations/org/" not in by_note
    assert 'href="/declarations/" title="Declarative Device Management"' in by_note  # the nav
    unknown = viewer.get("/declarations/?type=com.example.nope")
    assert unknown.status_code == 400 and "valid choice" in field_errors(unknown.text, "type")
    assert "/declarations/passcode/" not in unknown.text


def test_an_identifier_named_like_a_page_has_its_own_address(staff):
    save_declaration({**ORGANIZATION, "Identifier": "sets"}, by="tests")
    listing = staff[VIEWER].get("/declarations/").text
    assert 'href="/declarations/sets/about/"' in listing
    assert "Example Corp" in staff[VIEWER].get("/declarations/sets/about/").text
    assert staff[OPERATOR].get("/declarations/sets/edit/").status_code == 200


def test_credential_options_are_shown_but_no_secret(staff, settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    serve_credential("scep-identity", "scep", {"Keysize": 4096}, by="tests")
    page = staff[VIEWER].get("/declarations/scep-identity/").text
    assert "SCEP, made for each device" in page and "4096" in page
    assert "Challenge" not in page.split('id="served"')[1].split("</dl>")[0]
