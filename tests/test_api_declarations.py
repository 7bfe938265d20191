"""The declarations' API (/api/v1/declarations/, /api/v1/declaration-sets/,
/api/v1/devices/<udid>/declarations/) over real requests with real tokens: declarations added,
revised and deleted with Apple's schema checking them (a 400 names the key), data and
credentials served by the portal (never shown), the roles of the pages, and a set assigned to
an enrolled device that then syncs, reports, and shows up in the states."""

import base64
import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from declarations.assets import MAX_DATA_BYTES
from declarations.models import Declaration, DeclarationSet, ServedAsset
from devices.models import DeviceGroup
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.api_support import managed_devices
from tests.declarative_support import (
    ACTIVATION,
    ORGANIZATION,
    PASSCODE,
    declaration_status,
    declarative,
    declarative_commands,
    json_of,
    processed,
    status_report,
    sync_tokens_of,
)

pytestmark = pytest.mark.django_db

DECLARATIONS = "/api/v1/declarations/"
SETS = "/api/v1/declaration-sets/"
USERPASSWORD = "com.apple.asset.credential.userpassword"
PASSWORD = "hunter2-very-secret"  # in served data only: must never come back


def post(client, path: str, body, **kwargs):
    return client.post(path, body, format="json", **kwargs)


def created(client, declaration: dict, **extra) -> dict:
    response = post(client, DECLARATIONS, {**declaration, **extra})
    assert response.status_code == 201, response.content
    return response.json()


def new_set(client, name: str = "Baseline", *identifiers: str) -> int:
    response = post(client, SETS, {"name": name})
    assert response.status_code == 201, response.content
    set_id = response.json()["id"]
    if identifiers:
        added = post(client, f"{SETS}{set_id}/add-declarations/", {"declarations": identifiers})
        assert added.status_code == 200, added.content
    return set_id


def test_a_declaration_is_added_read_revised_and_deleted_by_identifier(api):
    assert post(api[VIEWER], DECLARATIONS, PASSCODE).status_code == 403
    body = created(api[OPERATOR], PASSCODE, description="six digits at least")
    assert (body["Type"], body["Identifier"], body["Payload"]) == (
        PASSCODE["Type"],
        "passcode",
        PASSCODE["Payload"],
    )
    assert len(body["ServerToken"]) == 64 and body["kind"] == "configuration"
    assert body["description"] == "six digits at least" and body["created_by"] == "operator-api"
    assert body["sets"] == [] and body["served"] is None
    assert body["states"] == dict.fromkeys(
        ["failed", "pending", "active", "inactive", "removing"], 0
    )
    path = f"{DECLARATIONS}passcode/"
    assert api[VIEWER].get(path).json() == body

    stronger = {**PASSCODE["Payload"], "MinimumLength": 8}
    put = api[OPERATOR].put(path, {"Type": PASSCODE["Type"], "Payload": stronger}, format="json")
    assert put.status_code == 200, put.content
    assert put.json()["Payload"] == stronger and put.json()["ServerToken"] != body["ServerToken"]
    noted = api[OPERATOR].patch(path, {"description": "eight now"}, format="json")
    assert noted.status_code == 200
    assert noted.json()["description"] == "eight now"
    assert noted.json()["ServerToken"] == put.json()["ServerToken"]  # a note is no revision

    other_type = {"Type": ORGANIZATION["Type"], "Payload": ORGANIZATION["Payload"]}
    refused = api[OPERATOR].put(path, other_type, format="json")
    assert refused.status_code == 400 and refused.json()["error"].startswith("Type:")
    assert "cannot change" in refused.json()["error"]
    renamed = api[OPERATOR].patch(path, {"Identifier": "other"}, format="json")
    assert renamed.status_code == 400 and renamed.json()["error"].startswith("Identifier:")
    assert api[VIEWER].delete(path).status_code == 403

    deleted = api[OPERATOR].delete(path)
    assert deleted.status_code == 200 and deleted.json() == {"queued": 0}
    assert api[VIEWER].get(path).status_code == 404
    updates = AuditEntry.objects.filter(action="declaration.updated").order_by("id")
    assert [entry.details.get("description_changed", False) for entry in updates] == [
        False,
        True,
    ]
    actions = AuditEntry.objects.filter(target="passcode").values_list("action", "details")
    assert {action for action, _ in actions} == {
        "declaration.created",
        "declaration.updated",
        "declaration.deleted",
    }
    assert all(details["token"] == "operator-script" for _, details in actions)


def test_the_list_filters_by_kind_type_identifier_and_failing(api):
    for declaration in (PASSCODE, ORGANIZATION, ACTIVATION):
        created(api[OPERATOR], declaration)

    def listed(query: str = "") -> list[str]:
        response = api[VIEWER].get(f"{DECLARATIONS}{query}")
        assert response.status_code == 200, response.content
        return [item["Identifier"] for item in response.json()["results"]]

    assert listed() == ["activate-passcode", "org", "passcode"]
    assert api[None].get(DECLARATIONS).status_code == 403  # a token whose user has no role
    assert APIClient().get(DECLARATIONS).status_code == 401
    assert listed("?kind=management") == ["org"]
    assert listed(f"?type={PASSCODE['Type']}") == ["passcode"]
    assert listed("?q=PASS") == ["activate-passcode", "passcode"]
    assert listed("?failing=true") == []
    assert listed("?failing=false") == ["activate-passcode", "org", "passcode"]
    bad = api[VIEWER].get(f"{DECLARATIONS}?kind=nonsense")
    assert bad.status_code == 400 and bad.json()["error"].startswith("kind")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"Type": PASSCODE["Type"], "Identifier": "p"}, "Payload"),
        ({**PASSCODE, "Type": "com.example.nope"}, "Type"),
        ({**PASSCODE, "Payload": {"MinimumLength": "six"}}, "MinimumLength"),
        ({**PASSCODE, "Payload": {"NoSuchKey": 1}}, "NoSuchKey"),
        ({**PASSCODE, "Identifier": "a/b"}, "Identifier"),
        ({**PASSCODE, "Identifier": "x" * 65}, "Identifier"),
        ({**PASSCODE, "Extra": 1}, "Extra"),
        ({**PASSCODE, "description": 5}, "description"),
    ],
)
def test_a_bad_declaration_is_a_400_naming_its_key_and_changes_nothing(api, body, key):
    response = post(api[OPERATOR], DECLARATIONS, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"].startswith(f"{key}:"), response.json()
    assert response.json()["detail"] == {key: [response.json()["error"].split(": ", 1)[1]]}
    assert not Declaration.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="declaration").exists()


def test_an_identifier_is_added_once_and_a_body_must_be_an_object(api):
    created(api[OPERATOR], PASSCODE)
    again = post(api[OPERATOR], DECLARATIONS, PASSCODE)
    assert again.status_code == 400 and again.json()["error"].startswith("Identifier:")
    listed = post(api[OPERATOR], DECLARATIONS, [PASSCODE])
    assert listed.status_code == 400 and "JSON object" in listed.json()["error"]
    assert Declaration.objects.count() == 1


def test_a_reverse_dns_identifier_names_its_declaration_in_urls(api):
    created(api[OPERATOR], {**PASSCODE, "Identifier": "com.example.passcode.json"})
    path = f"{DECLARATIONS}com.example.passcode.json/"
    for suffix in ("", "states/"):
        response = api[VIEWER].get(path + suffix)
        assert response.status_code == 200, (suffix, response.content)
    assert api[VIEWER].get(path).json()["Identifier"] == "com.example.passcode.json"
    assert api[OPERATOR].delete(path).status_code == 200


def test_a_referenced_declaration_is_a_409_until_its_referrer_goes(api):
    created(api[OPERATOR], PASSCODE)
    created(api[OPERATOR], ACTIVATION)
    refused = api[OPERATOR].delete(f"{DECLARATIONS}passcode/")
    assert refused.status_code == 409 and "activate-passcode" in refused.json()["error"]
    assert api[OPERATOR].delete(f"{DECLARATIONS}activate-passcode/").status_code == 200
    assert api[OPERATOR].delete(f"{DECLARATIONS}passcode/").status_code == 200


def upload(client, identifier: str, content: bytes, content_type: str, **fields):
    file = SimpleUploadedFile("data.bin", content, content_type)
    return client.post(
        f"{DECLARATIONS}{identifier}/data/", {"file": file, **fields}, format="multipart"
    )


def test_data_is_served_from_the_portal_and_described_never_shown(api, settings):
    assert upload(api[VIEWER], "config", b"<a/>", "application/xml").status_code == 403
    first = upload(api[OPERATOR], "config", b"<config>one</config>", "application/xml")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["Type"] == "com.apple.asset.data" and body["kind"] == "asset"
    served = body["served"]
    assert served["source"] == "data" and served["content_type"] == "application/xml"
    assert served["size"] == 20
    assert served["sha256"] == hashlib.sha256(b"<config>one</config>").hexdigest()
    assert served["downloads"] == 0
    assert body["Payload"]["Reference"]["Hash-SHA-256"] == served["sha256"]
    assert body["Payload"]["Authentication"] == {"Type": "MDM"}
    # New data as base64 JSON: the same asset, a new ServerToken.
    again = post(
        api[OPERATOR],
        f"{DECLARATIONS}config/data/",
        {"data_base64": base64.b64encode(b"two").decode(), "content_type": "text/plain"},
    )
    assert again.status_code == 200, again.content
    assert again.json()["served"]["size"] == 3
    assert again.json()["ServerToken"] != body["ServerToken"]
    for text in (first.content, again.content, api[VIEWER].get(DECLARATIONS).content):
        assert b"<config>one</config>" not in text and b"dHdv" not in text  # base64 of "two"
    # Its Reference is the portal's: a revision must keep it.
    moved = {**again.json()["Payload"], "Reference": {"DataURL": "https://elsewhere/x"}}
    refused = api[OPERATOR].put(
        f"{DECLARATIONS}config/", {"Type": "com.apple.asset.data", "Payload": moved}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["error"].startswith("Reference:")
    not_base64 = post(
        api[OPERATOR],
        f"{DECLARATIONS}config/data/",
        {"data_base64": "%%%", "content_type": "text/plain"},
    )
    assert not_base64.status_code == 400
    assert not_base64.json()["error"].startswith("data_base64:")
    empty = upload(api[OPERATOR], "blank", b"", "text/plain")
    assert empty.status_code == 400
    # A body declared over the data limit is refused before it is read.
    file = SimpleUploadedFile("data.bin", b"x", "text/plain")
    too_big = api[OPERATOR].post(
        f"{DECLARATIONS}big/data/",
        {"file": file},
        format="multipart",
        CONTENT_LENGTH=str(MAX_DATA_BYTES + 65 * 1024),
    )
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]
    settings.MDM_API_MAX_BODY_BYTES = 100
    big = post(
        api[OPERATOR],
        f"{DECLARATIONS}config/data/",
        {"data_base64": base64.b64encode(b"x" * 200).decode(), "content_type": "text/plain"},
    )
    assert big.status_code == 413
    assert ServedAsset.objects.get().size == 3


def test_credentials_need_an_admin_and_their_secrets_never_come_back(api, enrolled):
    document = json.dumps({"UserName": "svc", "Password": PASSWORD}).encode()
    assert (
        upload(api[OPERATOR], "login", document, "application/json", type=USERPASSWORD).status_code
        == 403
    )
    external = {
        "Type": USERPASSWORD,
        "Identifier": "login",
        "Payload": {"Reference": {"DataURL": "https://vault.example/login"}},
    }
    assert post(api[OPERATOR], DECLARATIONS, external).status_code == 403
    acme = {"source": "acme", "options": {"KeySize": 256, "KeyType": "ECSECPrimeRandom"}}
    assert post(api[OPERATOR], f"{DECLARATIONS}acme-id/credential/", acme).status_code == 403
    assert not Declaration.objects.exists()

    responses = []
    login = upload(api[ADMIN], "login", document, "application/json", type=USERPASSWORD)
    assert login.status_code == 201, login.content
    assert login.json()["served"]["size"] == len(document)
    made = post(api[ADMIN], f"{DECLARATIONS}acme-id/credential/", acme)
    assert made.status_code == 201, made.content
    served = made.json()["served"]
    assert served["source"] == "acme" and served["options"]["KeySize"] == 256
    assert made.json()["Type"] == "com.apple.asset.credential.acme"
    changed = post(api[ADMIN], f"{DECLARATIONS}acme-id/credential/", {"source": "acme"})
    assert changed.status_code == 200 and changed.json()["served"]["options"]["KeySize"] == 384
    bad = post(api[ADMIN], f"{DECLARATIONS}acme-id/credential/", {"source": "acme",
               "options": {"KeySize": "big"}})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"].startswith("KeySize:")
    wrong = post(api[ADMIN], f"{DECLARATIONS}acme-id/credential/", {"source": "scep"})
    assert wrong.status_code == 400 and "acme" in wrong.json()["error"]
    responses += [login, made, changed]

    # An operator may read them and put them in sets, not change or delete them.
    assert api[OPERATOR].patch(f"{DECLARATIONS}acme-id/", {"description": "x"},
                               format="json").status_code == 403  # fmt: skip
    assert api[OPERATOR].delete(f"{DECLARATIONS}login/").status_code == 403
    set_id = new_set(api[OPERATOR], "Credentials", "login", "acme-id")
    assigned = post(api[OPERATOR], f"{SETS}{set_id}/assign/", {"devices": [enrolled.udid]})
    assert assigned.status_code == 200 and assigned.json() == {"queued": 1}
    for path in (
        DECLARATIONS,
        f"{DECLARATIONS}login/",
        f"{DECLARATIONS}login/states/",
        f"{SETS}{set_id}/",
        f"/api/v1/devices/{enrolled.udid}/declarations/",
        "/api/v1/audit/",
    ):
        response = api[VIEWER].get(path)
        assert response.status_code == 200, path
        responses.append(response)
    for response in responses:
        assert PASSWORD.encode() not in response.content
        assert base64.b64encode(document) not in response.content
    # Deleting one the device has tells the device (once the set no longer refers to it).
    assert api[ADMIN].delete(f"{DECLARATIONS}acme-id/").json() == {"queued": 1}


def test_a_set_given_to_an_enrolled_device_is_synced_reported_and_shown(api, enrolled):
    for declaration in (PASSCODE, ORGANIZATION):
        created(api[OPERATOR], declaration)
    set_id = new_set(api[OPERATOR], "Baseline", "passcode", "org")
    assert declarative_commands(enrolled.udid) == []  # the set is given to no one yet
    assign = f"{SETS}{set_id}/assign/"
    assert post(api[VIEWER], assign, {"devices": [enrolled.udid]}).status_code == 403
    given = post(api[OPERATOR], assign, {"devices": [enrolled.udid]})
    assert given.status_code == 200 and given.json() == {"queued": 1}
    [command] = declarative_commands(enrolled.udid)

    # The device syncs: its manifest has both, under the token the command announced.
    items = json_of(declarative(enrolled, "declaration-items"))
    assert items["DeclarationsToken"] == sync_tokens_of(command)["DeclarationsToken"]
    tokens = {
        item["Identifier"]: item["ServerToken"]
        for array in items["Declarations"].values()
        for item in array
    }
    assert set(tokens) == {"passcode", "org"}
    assert tokens["passcode"] == api[VIEWER].get(f"{DECLARATIONS}passcode/").json()["ServerToken"]
    again = post(api[OPERATOR], assign, {"devices": ["F2LXK0ABCDEF"]})  # by serial: no change
    assert again.json() == {"queued": 0} and len(declarative_commands(enrolled.udid)) == 1

    pending = api[VIEWER].get(f"{DECLARATIONS}passcode/states/").json()
    assert [row["state"] for row in pending["results"]] == ["pending"]
    assert pending["results"][0]["reported_at"] is None

    # It reports the passcode failed and the organization active.
    reasons = [{"code": "Error.ConfigurationCannotBeApplied", "description": "no passcode"}]
    report = processed(
        configurations=[
            declaration_status(
                "passcode", tokens["passcode"], active=False, valid="invalid", reasons=reasons
            )  # fmt: skip
        ],
        management=[declaration_status("org", tokens["org"])],
    )
    errors = [{"code": "Error.Example"}]
    assert declarative(enrolled, "status", status_report(report, full=True, errors=errors)
                       ).status == 200  # fmt: skip

    states = api[VIEWER].get(f"{DECLARATIONS}passcode/states/")
    assert states.status_code == 200
    [row] = states.json()["results"]
    assert row["udid"] == enrolled.udid and row["serial_number"] == "F2LXK0ABCDEF"
    assert row["device_name"] == "Test iPhone"
    assert (row["state"], row["active"], row["valid"]) == ("failed", False, "invalid")
    assert row["reasons"] == reasons and row["reported_server_token"] == tokens["passcode"]
    assert row["reported_at"]
    assert api[VIEWER].get(f"{DECLARATIONS}passcode/states/?state=active").json()["results"] == []
    assert api[VIEWER].get(f"{DECLARATIONS}passcode/states/?state=bad").status_code == 400
    failing = api[VIEWER].get(f"{DECLARATIONS}?failing=true").json()["results"]
    assert [(d["Identifier"], d["failing_devices"]) for d in failing] == [("passcode", 1)]
    detail = api[VIEWER].get(f"{DECLARATIONS}passcode/").json()
    assert detail["states"]["failed"] == 1 and detail["sets"] == [
        {"id": set_id, "name": "Baseline"}
    ]

    mine = api[VIEWER].get(f"/api/v1/devices/{enrolled.udid}/declarations/")
    assert mine.status_code == 200
    body = mine.json()
    assert body["sets"] == ["Baseline"]
    assert body["declarations_token"] == items["DeclarationsToken"]
    assert body["states"]["failed"] == 1 and body["states"]["active"] == 1
    by_id = {row["identifier"]: row for row in body["declarations"]}
    assert by_id["org"]["state"] == "active" and by_id["org"]["type"] == ORGANIZATION["Type"]
    assert by_id["passcode"]["reasons"] == reasons
    assert body["status"]["full"] is True and body["status"]["reports"] == 1
    assert body["status"]["errors"] == errors and body["status"]["last_report_at"]
    assert body["status"]["status_items"]["management"]["declarations"]
    assert api[VIEWER].get("/api/v1/devices/NOPE/declarations/").status_code == 404
    assert api[VIEWER].get(f"/api/v1/devices/{enrolled.udid}/").status_code == 200

    # Unassigned: one more command, and what the device still reports is being removed.
    taken = post(api[OPERATOR], f"{SETS}{set_id}/unassign/", {"devices": [enrolled.udid]})
    assert taken.json() == {"queued": 1} and len(declarative_commands(enrolled.udid)) == 2
    after = api[VIEWER].get(f"/api/v1/devices/{enrolled.udid}/declarations/").json()
    assert {row["state"] for row in after["declarations"]} == {"removing"}
    assert after["sets"] == []
    entry = AuditEntry.objects.filter(action="declaration_set.assigned").order_by("id").first()
    assert entry.details["token"] == "operator-script"
    assert entry.details["devices"] == [enrolled.udid] and entry.target == "Baseline"


def test_a_device_whose_os_cannot_take_a_declaration_is_refused_by_name(api):
    [old] = managed_devices(1, prefix="OLD", os_version="14.8")
    created(api[OPERATOR], PASSCODE)  # iOS 15 and later
    set_id = new_set(api[OPERATOR], "Baseline", "passcode")
    refused = post(api[OPERATOR], f"{SETS}{set_id}/assign/", {"devices": [old.udid]})
    assert refused.status_code == 400
    assert old.udid in refused.json()["error"] and "15.0" in refused.json()["error"]
    assert not DeclarationSet.objects.get().devices.exists()


def test_sets_are_created_renamed_given_to_groups_and_deleted(api):
    lab = DeviceGroup.objects.create(name="Lab")
    managed_devices(2, group=lab)
    created(api[OPERATOR], ORGANIZATION)
    assert post(api[VIEWER], SETS, {"name": "Baseline"}).status_code == 403
    set_id = new_set(api[OPERATOR], "Baseline")
    duplicate = post(api[OPERATOR], SETS, {"name": "Baseline"})
    assert duplicate.status_code == 400 and duplicate.json()["error"].startswith("name:")
    assert post(api[OPERATOR], SETS, {"name": ""}).json()["error"].startswith("name:")
    path = f"{SETS}{set_id}/"
    renamed = api[OPERATOR].patch(path, {"name": "Base"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Base"
    put = api[OPERATOR].put(path, {"name": "Base", "description": "all devices"}, format="json")
    assert put.json()["description"] == "all devices"
    assert AuditEntry.objects.filter(action="declaration_set.updated").count() == 2

    added = post(api[OPERATOR], f"{path}add-declarations/", {"declarations": ["org"]})
    assert added.json() == {"queued": 0}
    to_group = post(api[OPERATOR], f"{path}assign/", {"groups": ["Lab"]})
    assert to_group.status_code == 200 and to_group.json() == {"queued": 2}
    detail = api[VIEWER].get(path).json()
    assert detail["groups"] == ["Lab"] and detail["devices"] == []
    assert detail["declarations"] == ["org"] and detail["affected_devices"] == 2
    listed = api[VIEWER].get(SETS).json()["results"]
    assert [(s["name"], s["group_count"], s["device_count"]) for s in listed] == [("Base", 1, 0)]
    removed = post(api[OPERATOR], f"{path}remove-declarations/", {"declarations": ["org"]})
    assert removed.json() == {"queued": 2}

    for action, body, key in (
        ("assign", {}, "devices"),
        ("assign", {"devices": ["NO-SUCH-DEVICE"]}, "devices"),
        ("assign", {"groups": ["Nope"]}, "groups"),
        ("add-declarations", {"declarations": ["nope"]}, "declarations"),
        ("add-declarations", {"declarations": []}, "declarations"),
    ):
        response = post(api[OPERATOR], f"{path}{action}/", body)
        assert response.status_code == 400, (action, body)
        assert response.json()["error"].startswith(f"{key}:"), response.json()

    assert post(api[OPERATOR], f"{path}add-declarations/", {"declarations": ["org"]}).json() == {
        "queued": 2
    }
    assert api[VIEWER].delete(path).status_code == 403
    deleted = api[OPERATOR].delete(path)
    assert deleted.status_code == 200 and deleted.json() == {"queued": 2}
    assert api[VIEWER].get(path).status_code == 404
    assert Declaration.objects.filter(identifier="org").exists()  # a set's declarations stay
