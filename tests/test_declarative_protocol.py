"""The DeclarativeManagement check-in over real requests: tokens, declaration-items, each
declaration, the status report, and the DeclarativeManagement command queued when (and only
when) a device's declarations change."""

import re

import pytest

from commands.models import QueuedCommand, Status
from declarations.models import (
    Declaration,
    DeclarationRevision,
    DeclarationSet,
    DeclarationState,
    DeviceDeclarations,
)
from declarations.schema import PROTOCOL, validate_payload
from declarations.sets import remove_declarations
from declarations.states import counts, declaration_rows, device_rows, failing_summary
from declarations.store import KEPT_REVISIONS, save_declaration
from declarations.tokens import EMPTY_TOKEN
from devices.models import Device
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
    sync_tokens_of,
)

pytestmark = pytest.mark.django_db
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_tokens_of_a_device_with_nothing(enrolled):
    answer = json_of(declarative(enrolled, "tokens"))
    validate_payload(PROTOCOL["TokensResponse"], answer)
    assert answer["SyncTokens"]["DeclarationsToken"] == EMPTY_TOKEN
    assert TIMESTAMP.match(answer["SyncTokens"]["Timestamp"])
    items = json_of(declarative(enrolled, "declaration-items"))
    validate_payload(PROTOCOL["DeclarationItemsResponse"], items)
    assert items["Declarations"] == {
        "Activations": [],
        "Assets": [],
        "Configurations": [],
        "Management": [],
    }
    assert declarative_commands(enrolled.udid) == []


def test_an_assigned_set_is_one_command_and_the_manifest_it_announces(enrolled):
    save_declaration(PASSCODE, by="tests")  # in no set, but the activation refers to it
    give(enrolled, ACTIVATION, ORGANIZATION)
    [command] = declarative_commands(enrolled.udid)
    announced = sync_tokens_of(command)
    tokens = json_of(declarative(enrolled, "tokens"))["SyncTokens"]
    assert tokens == announced  # the same token and the same Timestamp, asked again
    items = json_of(declarative(enrolled, "declaration-items"))
    assert items["DeclarationsToken"] == announced["DeclarationsToken"]
    by_kind = {kind: [i["Identifier"] for i in v] for kind, v in items["Declarations"].items()}
    assert by_kind == {
        "Activations": ["activate-passcode"],
        "Assets": [],
        "Configurations": ["passcode"],
        "Management": ["org"],
    }
    fetched = json_of(declarative(enrolled, "declaration/configuration/passcode"))
    assert fetched["Type"] == PASSCODE["Type"]
    assert fetched["Payload"] == PASSCODE["Payload"]
    [item] = items["Declarations"]["Configurations"]
    assert fetched["ServerToken"] == item["ServerToken"]


def test_unknown_or_misnamed_declarations_are_refused(enrolled):
    give(enrolled, ORGANIZATION)
    assert declarative(enrolled, "declaration/configuration/org").status == 404  # wrong kind
    assert declarative(enrolled, "declaration/management/nope").status == 404
    assert declarative(enrolled, "declaration/other/org").status == 400
    assert declarative(enrolled, "bogus").status == 400


def test_tokens_change_exactly_when_the_set_does(enrolled):
    give(enrolled, PASSCODE, ORGANIZATION)
    first = json_of(declarative(enrolled, "tokens"))["SyncTokens"]["DeclarationsToken"]
    save_declaration(PASSCODE, by="tests")  # the same content again: no new revision
    assert len(declarative_commands(enrolled.udid)) == 1
    assert json_of(declarative(enrolled, "tokens"))["SyncTokens"]["DeclarationsToken"] == first
    changed = {**PASSCODE, "Payload": {**PASSCODE["Payload"], "MinimumLength": 8}}
    save_declaration(changed, by="tests")
    commands = declarative_commands(enrolled.udid)
    assert len(commands) == 2
    second = sync_tokens_of(commands[1])["DeclarationsToken"]
    assert second != first
    assert json_of(declarative(enrolled, "tokens"))["SyncTokens"]["DeclarationsToken"] == second


def test_status_report_records_states_and_inventory(enrolled):
    give(enrolled, PASSCODE, ORGANIZATION)
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    passcode_token = items["Configurations"][0]["ServerToken"]
    org_token = items["Management"][0]["ServerToken"]
    reasons = [{"code": "Error.ConfigurationCannotBeApplied", "description": "no passcode"}]
    report = processed(
        configurations=[
            declaration_status(
                "passcode", passcode_token, active=False, valid="invalid", reasons=reasons
            )
        ],
        management=[declaration_status("org", org_token)],
    )
    report["device"] = {"operating-system": {"version": "17.5", "build-version": "21F79"}}
    response = declarative(enrolled, "status", status_report(report, full=True))
    assert response.status == 200
    states = {s.identifier: s for s in DeclarationState.objects.filter(device__udid=enrolled.udid)}
    assert states["passcode"].failed and not states["passcode"].active
    assert states["passcode"].reasons == reasons
    assert states["org"].active and states["org"].valid == "valid" and not states["org"].failed
    assert states["org"].declaration.identifier == "org"
    device = Device.objects.get(udid=enrolled.udid)
    assert (device.os_version, device.build_version) == ("17.5", "21F79")
    sync = DeviceDeclarations.objects.get(device=device)
    assert sync.last_report_full and sync.reports == 1


def test_a_declaration_removed_from_the_set_is_reported_gone(enrolled):
    give(enrolled, PASSCODE, ORGANIZATION)
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    tokens = {i["Identifier"]: i["ServerToken"] for v in items.values() for i in v}
    both = processed(
        configurations=[declaration_status("passcode", tokens["passcode"])],
        management=[declaration_status("org", tokens["org"])],
    )
    declarative(enrolled, "status", status_report(both))
    remove_declarations(
        DeclarationSet.objects.get(name="set"), [Declaration.objects.get(identifier="passcode")]
    )
    assert len(declarative_commands(enrolled.udid)) == 2
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    assert items["Configurations"] == []
    only_org = processed(management=[declaration_status("org", tokens["org"])])
    declarative(enrolled, "status", status_report(only_org))
    left = DeclarationState.objects.filter(device__udid=enrolled.udid)
    assert list(left.values_list("identifier", flat=True)) == ["org"]


@pytest.mark.parametrize(
    "data",
    [None, b"not json", b"[]", b'{"Errors": []}', b'{"StatusItems": {}, "Errors": 1}'],
)
def test_a_bad_status_report_is_refused_and_changes_nothing(enrolled, data):
    response = declarative(enrolled, "status", data)
    assert response.status == 400
    assert not DeviceDeclarations.objects.filter(device__udid=enrolled.udid, reports__gt=0).exists()


def test_a_mistyped_declaration_state_is_refused(enrolled):
    bad = processed(
        configurations=[{"identifier": "x", "server-token": "t", "active": "yes", "valid": "valid"}]
    )
    assert declarative(enrolled, "status", status_report(bad)).status == 400
    assert not DeclarationState.objects.exists()


def test_an_unenrolled_device_gets_no_declarations(device):
    device.authenticate()
    assert declarative(device, "tokens").status == 400


def test_states_join_the_manifest_with_the_report(enrolled):
    give(enrolled, PASSCODE, ORGANIZATION)
    device = Device.objects.get(udid=enrolled.udid)
    assert {row.identifier: row.state for row in device_rows(device)} == {
        "passcode": "pending",
        "org": "pending",
    }
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    tokens = {i["Identifier"]: i["ServerToken"] for v in items.values() for i in v}
    reasons = [{"code": "Error.ConfigurationCannotBeApplied"}]
    report = processed(
        configurations=[
            declaration_status("passcode", tokens["passcode"], active=False, reasons=reasons)
        ],
        management=[declaration_status("org", tokens["org"]), declaration_status("old", "t")],
    )
    declarative(enrolled, "status", status_report(report))
    rows = device_rows(device)
    assert [(row.identifier, row.state) for row in rows] == [
        ("passcode", "failed"),
        ("org", "active"),
        ("old", "removing"),
    ]
    assert rows[0].reasons == reasons
    assert failing_summary() == {"declarations": 1, "devices": 1}
    passcode_rows = declaration_rows(Declaration.objects.get(identifier="passcode"))
    assert counts(passcode_rows)["failed"] == 1


def test_a_sync_sees_the_revisions_its_manifest_named(enrolled):
    give(enrolled, PASSCODE)
    [item] = json_of(declarative(enrolled, "declaration-items"))["Declarations"]["Configurations"]
    changed = {**PASSCODE, "Payload": {"MinimumLength": 10}}
    save_declaration(changed, by="tests")  # while the device is between its two requests
    fetched = json_of(declarative(enrolled, "declaration/configuration/passcode"))
    assert fetched["ServerToken"] == item["ServerToken"]
    assert fetched["Payload"] == PASSCODE["Payload"]
    # The change queued another sync, which names and serves the new revision.
    assert len(declarative_commands(enrolled.udid)) == 2
    [new] = json_of(declarative(enrolled, "declaration-items"))["Declarations"]["Configurations"]
    assert new["ServerToken"] != item["ServerToken"]
    fetched = json_of(declarative(enrolled, "declaration/configuration/passcode"))
    assert (fetched["ServerToken"], fetched["Payload"]) == (
        new["ServerToken"],
        {"MinimumLength": 10},
    )


def test_only_the_last_revisions_are_kept(enrolled):
    for length in range(4, 4 + KEPT_REVISIONS + 3):
        save_declaration({**PASSCODE, "Payload": {"MinimumLength": length}}, by="tests")
    kept = DeclarationRevision.objects.filter(identifier="passcode")
    assert kept.count() == KEPT_REVISIONS
    current = Declaration.objects.get(identifier="passcode").server_token
    assert kept.filter(server_token=current).exists()


def test_a_new_enrollment_forgets_what_the_device_was_told(enrolled):
    """Authenticate starts an enrollment whose device holds no declarations: it is told to
    sync again at its TokenUpdate, and its earlier states are gone."""
    give(enrolled, ORGANIZATION)
    items = json_of(declarative(enrolled, "declaration-items"))["Declarations"]
    org = declaration_status("org", items["Management"][0]["ServerToken"])
    declarative(enrolled, "status", status_report(processed(management=[org]), full=True))
    assert DeclarationState.objects.filter(device__udid=enrolled.udid).count() == 1

    enrolled.enroll()  # Authenticate and TokenUpdate again, as after an erase

    assert not DeclarationState.objects.filter(device__udid=enrolled.udid).exists()
    device = Device.objects.get(udid=enrolled.udid)
    assert {row.identifier: row.state for row in device_rows(device)} == {"org": "pending"}
    commands = declarative_commands(enrolled.udid)
    assert len(commands) == 2
    assert (
        sync_tokens_of(commands[1])["DeclarationsToken"]
        == sync_tokens_of(commands[0])["DeclarationsToken"]
    )


def test_an_offline_device_waits_with_one_announcement_the_newest(enrolled):
    give(enrolled, PASSCODE)
    for length in (7, 8, 9):
        save_declaration({**PASSCODE, "Payload": {"MinimumLength": length}}, by="tests")
    rows = QueuedCommand.objects.filter(
        device__udid=enrolled.udid, request_type="DeclarativeManagement"
    ).order_by("id")
    assert [row.status for row in rows] == [Status.CANCELED] * 3 + [Status.QUEUED]
    newest = sync_tokens_of(rows.last().command.command_dict())
    assert newest == json_of(declarative(enrolled, "tokens"))["SyncTokens"]


def test_a_device_given_declarations_before_its_first_token_update_is_told_then(device):
    device.authenticate()
    give(device, ORGANIZATION)  # pending: nothing can be queued for it yet
    assert declarative_commands(device.udid) == []
    assert device.token_update().status == 200
    [command] = declarative_commands(device.udid)
    assert sync_tokens_of(command) == json_of(declarative(device, "tokens"))["SyncTokens"]


def test_a_first_token_update_without_declarations_queues_none(enrolled):
    assert declarative_commands(enrolled.udid) == []
    assert not DeviceDeclarations.objects.filter(device__udid=enrolled.udid).exists()
