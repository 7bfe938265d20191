"""`mdm_declaration`: declarations from real JSON files, sets, assignments and status, as an
admin runs them; each refusal is a CommandError that names the problem and changes nothing."""

import base64
import hashlib
import io
import json

import pytest
from django.core.management import CommandError, call_command

from declarations.models import Declaration, DeclarationSet, DeviceDeclarations, ServedAsset
from devices.groups import create_group
from devices.models import Device
from mdm_portal.models import AuditEntry
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
)

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("mdm_declaration", *args, stdout=out, stderr=err, **options)
    return out.getvalue()


def write(tmp_path, value, name="declarations.json") -> str:
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value, indent=2))
    return str(path)


def refused(*args, match: str, **options) -> None:
    with pytest.raises(CommandError, match=match):
        run(*args, **options)


def row_of(out: str, first: str) -> list[str]:
    """The cells of the table row that starts with `first`."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def tokens_of(items: dict) -> dict[str, str]:
    return {i["Identifier"]: i["ServerToken"] for v in items["Declarations"].values() for i in v}


def test_added_file_reaches_a_device_at_its_next_check_in(tmp_path, enrolled):
    assert "set 'Staff' created" in run("set", "create", "Staff")
    assigned = run("assign", "Staff", "--device", enrolled.udid)
    assert "given to 1 device(s) and 0 group(s)" in assigned
    assert "queued for 0 device(s)" in assigned  # an empty set: nothing changed for it
    given = [{**PASSCODE, "ServerToken": "from-the-file"}, ORGANIZATION, ACTIVATION]
    out = run("add", write(tmp_path, given), "--set", "Staff", "--description", "shell")
    stored = {d.identifier: d for d in Declaration.objects.all()}
    assert sorted(stored) == ["activate-passcode", "org", "passcode"]
    for identifier, declaration in stored.items():
        row = row_of(out, identifier)
        assert row == [identifier, declaration.kind, "created", declaration.server_token]
        assert declaration.description == "shell" and declaration.created_by == "mdm_declaration"
    assert stored["passcode"].server_token != "from-the-file"  # the portal computes its own
    assert "in set 'Staff'\n" in out
    assert "3 declaration(s) stored; DeclarativeManagement queued for 1 device(s)" in out
    assert len(declarative_commands(enrolled.udid)) == 1
    items = json_of(declarative(enrolled, "declaration-items"))
    assert tokens_of(items) == {i: d.server_token for i, d in stored.items()}
    fetched = json_of(declarative(enrolled, "declaration/configuration/passcode"))
    assert fetched["Payload"] == PASSCODE["Payload"]
    created = AuditEntry.objects.filter(action="declaration.created")
    assert set(created.values_list("actor", flat=True)) == {"mdm_declaration"}


def test_adding_again_is_unchanged_or_a_new_revision(tmp_path, enrolled):
    run("set", "create", "Staff")
    run("assign", "Staff", "--device", enrolled.udid)
    run("add", write(tmp_path, PASSCODE), "--set", "Staff")
    again = run("add", write(tmp_path, PASSCODE))
    assert row_of(again, "passcode")[:3] == ["passcode", "configuration", "unchanged"]
    assert "queued for 0 device(s)" in again
    changed = {**PASSCODE, "Payload": {**PASSCODE["Payload"], "MinimumLength": 8}}
    out = run("add", "-", stdin=io.StringIO(json.dumps(changed)))
    assert row_of(out, "passcode")[2] == "updated" and "queued for 1 device(s)" in out
    assert Declaration.objects.get(identifier="passcode").payload["MinimumLength"] == 8
    assert len(declarative_commands(enrolled.udid)) == 2
    # Two revisions and a new member of the set in one file: one command for the device.
    run("add", write(tmp_path, ORGANIZATION), "--set", "Staff")
    renamed = {**ORGANIZATION, "Payload": {"Name": "Renamed"}}
    both = [PASSCODE, renamed, {**ACTIVATION, "Payload": {"StandardConfigurations": []}}]
    out = run("add", write(tmp_path, both), "--set", "Staff")
    assert [row_of(out, i)[2] for i in ("passcode", "org", "activate-passcode")] == [
        "updated",
        "updated",
        "created",
    ]
    assert "3 declaration(s) stored; DeclarativeManagement queued for 1 device(s)" in out
    assert len(declarative_commands(enrolled.udid)) == 4
    out = run("add", write(tmp_path, [PASSCODE, ORGANIZATION]))  # not in --set: still once
    assert "queued for 1 device(s)" in out and len(declarative_commands(enrolled.udid)) == 5


@pytest.mark.parametrize(
    "content, message",
    [
        ('[\n  {"Type": "x",}\n]', r"is not JSON: .* at line 2, column 16"),
        ('{"Type": ', r"is not JSON: .* at line 1, column 10"),
        ("[]", "holds an empty array"),
        ('[{"Type": "x"}, 5]', "item 2 is not a declaration"),
        (json.dumps([PASSCODE, PASSCODE]), "the Identifier passcode appears more than once"),
        (
            json.dumps([ORGANIZATION, {**PASSCODE, "Payload": {"MinimumLength": "six"}}]),
            r"declaration 2 \('passcode'\): .*key MinimumLength must be <integer>.*nothing was",
        ),
        (
            json.dumps([ORGANIZATION, {**PASSCODE, "Identifier": "a/b"}]),
            r"declaration 2 \('a/b'\): Identifier must not contain '/'",
        ),
        (json.dumps({**ORGANIZATION, "Type": "com.apple.nope"}), "unknown declaration Type"),
    ],
    ids=[
        "trailing-comma",
        "cut-short",
        "empty",
        "not-an-object",
        "twice",
        "mistyped",
        "slash",
        "type",
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_added(tmp_path, content, message):
    refused("add", write(tmp_path, content), "--set", "New", match=message)
    assert not Declaration.objects.exists()
    assert not DeclarationSet.objects.exists()
    assert not AuditEntry.objects.exists()


def test_unreadable_files_are_refused(tmp_path):
    refused("add", str(tmp_path / "missing.json"), match="cannot read the file .*missing.json")
    (tmp_path / "latin1.json").write_bytes(b'{"Identifier": "caf\xe9"}')
    refused("add", str(tmp_path / "latin1.json"), match="is not UTF-8 text")


def test_a_set_the_device_cannot_take_refuses_the_whole_file(tmp_path, enrolled):
    Device.objects.filter(udid=enrolled.udid).update(platform="iOS", os_version="16.4")
    run("set", "create", "Staff")
    run("assign", "Staff", "--device", enrolled.udid)
    certificate = {
        "Type": "com.apple.configuration.security.certificate",
        "Identifier": "root-ca",
        "Payload": {"CredentialAssetReference": "root-ca-data"},
    }
    refused(
        "add",
        write(tmp_path, [ORGANIZATION, certificate]),
        "--set",
        "Staff",
        match=rf"root-ca on {enrolled.udid}: .*needs iOS 17.0 or later, not 16.4",
    )
    assert not Declaration.objects.exists()
    assert not DeclarationSet.objects.get(name="Staff").declarations.exists()
    assert declarative_commands(enrolled.udid) == []


def test_add_data_serves_it_and_never_prints_it(tmp_path):
    content = b"<config>hello</config>"
    out = run(
        "add-data",
        "config",
        write(tmp_path, content.decode(), "c.xml"),
        "--content-type",
        "application/xml",
    )
    digest = hashlib.sha256(content).hexdigest()
    declaration = Declaration.objects.get(identifier="config")
    assert out.strip() == (
        f"created config: com.apple.asset.data, {len(content)} bytes, SHA-256 {digest}; "
        f"ServerToken {declaration.server_token}"
    )
    assert bytes(declaration.served.content) == content
    again = run("add-data", "config", "-", "--content-type", "text/plain", stdin=io.StringIO("two"))
    assert again.startswith("updated config: com.apple.asset.data, 3 bytes")
    secret = json.dumps({"UserName": "svc", "Password": "hunter2-secret"})
    out = run(
        "add-data",
        "login",
        write(tmp_path, secret, "login.json"),
        "--content-type",
        "application/json",
        "--type",
        "com.apple.asset.credential.userpassword",
    )
    assert "created login: com.apple.asset.credential.userpassword" in out
    assert "hunter2" not in out


def test_add_data_takes_an_identity_with_its_pkcs12_in_base64(tmp_path):
    identity = {"Password": "p12-password", "Identity": base64.b64encode(b"PKCS12").decode()}
    out = run(
        "add-data",
        "wifi-identity",
        write(tmp_path, identity, "identity.json"),
        "--content-type",
        "application/json",
        "--type",
        "com.apple.asset.credential.identity",
    )
    assert "created wifi-identity: com.apple.asset.credential.identity" in out
    assert "p12-password" not in out and "UEtDUzEy" not in out
    bad = {"Password": "x", "Identity": "not base64!"}
    refused(
        "add-data",
        "other-identity",
        write(tmp_path, bad, "bad.json"),
        "--content-type",
        "application/json",
        "--type",
        "com.apple.asset.credential.identity",
        match="key Identity must be base64",
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--content-type", "text/plain", "--type", "com.apple.asset.credential.userpassword"],
            "must be application/json",
        ),
        (
            [
                "--content-type",
                "application/json",
                "--type",
                "com.apple.asset.credential.userpassword",
            ],
            "key UserName must be <string>",
        ),
        (["--content-type", "text"], "'text' is not a media type"),
        (["--content-type", "text/plain", "--type", "com.apple.asset.nope"], "invalid choice"),
    ],
    ids=["content-type", "document", "media-type", "type"],
)
def test_bad_data_is_refused_and_nothing_is_stored(tmp_path, args, message):
    path = write(tmp_path, json.dumps({"UserName": 5}), "data.json")
    refused("add-data", "login", path, *args, match=message)
    assert not Declaration.objects.exists() and not ServedAsset.objects.exists()


def test_add_credential_acme_and_scep_with_their_options():
    out = run(
        "add-credential",
        "acme-id",
        "acme",
        "--key-type",
        "RSA",
        "--key-size",
        "2048",
        "--no-hardware-bound",
        "--no-attest",
    )
    assert "created acme-id: com.apple.asset.credential.acme, acme credential" in out
    served = ServedAsset.objects.get(declaration__identifier="acme-id")
    assert served.options == {
        "KeyType": "RSA",
        "KeySize": 2048,
        "HardwareBound": False,
        "Attest": False,
    }
    run("add-credential", "scep-id", "scep", "--key-size", "4096", "--name", "Example CA")
    scep = ServedAsset.objects.get(declaration__identifier="scep-id").options
    assert scep["Keysize"] == 4096 and scep["Name"] == "Example CA"
    refused(
        "add-credential", "x", "acme", "--retries", "3", match="--retries is not an option of acme"
    )
    refused("add-credential", "x", "acme", "--no-hardware-bound", match="HardwareBound")
    refused("add-credential", "x", "scep", "--key-size", "3000", match="Keysize must be one of")
    assert not Declaration.objects.filter(identifier="x").exists()


def report_failure(enrolled) -> None:
    """The device reports passcode failed and org active."""
    tokens = tokens_of(json_of(declarative(enrolled, "declaration-items")))
    reasons = [{"code": "Error.ConfigurationCannotBeApplied", "description": "no passcode"}]
    report = processed(
        configurations=[
            declaration_status("passcode", tokens["passcode"], active=False, reasons=reasons)
        ],
        management=[declaration_status("org", tokens["org"])],
    )
    assert declarative(enrolled, "status", status_report(report, full=True)).status == 200


@pytest.fixture
def staff(tmp_path, enrolled):
    """The three declarations in the set Staff, given to the enrolled device."""
    run("add", write(tmp_path, [PASSCODE, ORGANIZATION, ACTIVATION]), "--set", "Staff")
    run("assign", "Staff", "--device", enrolled.udid)
    return enrolled


def test_list_shows_sets_devices_and_failures(staff):
    report_failure(staff)
    lines = run("list").splitlines()
    assert lines[0].split() == [
        "IDENTIFIER",
        "KIND",
        "TYPE",
        "SERVERTOKEN",
        "SETS",
        "DEVICES",
        "FAILING",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    passcode = Declaration.objects.get(identifier="passcode")
    assert rows["passcode"] == [
        "passcode",
        "configuration",
        PASSCODE["Type"],
        passcode.server_token[:12],
        "Staff",
        "1",
        "1",
    ]
    assert rows["org"][-1] == "0"
    listed = json.loads(run("list", "--kind", "management", "--json"))
    assert [(d["identifier"], d["sets"], d["devices"]) for d in listed] == [("org", ["Staff"], 1)]
    assert listed[0]["server_token"] == Declaration.objects.get(identifier="org").server_token


def test_show_prints_what_the_device_gets_and_where_it_stands(staff):
    report_failure(staff)
    out = run("show", "passcode")
    document, rest = out.split("\n}\n", 1)
    assert json.loads(document + "}") == json_of(
        declarative(staff, "declaration/configuration/passcode")
    )
    assert "in sets: Staff" in rest
    assert "referred to by: activate-passcode" in rest
    assert "devices that should have it: 1" in rest
    assert "states: failed 1, pending 0, active 0, inactive 0, removing 0" in rest
    assert f"failed on {staff.udid}: Error.ConfigurationCannotBeApplied" in rest
    refused("show", "nope", match="no declaration has the Identifier 'nope'")


def test_delete_refuses_what_is_referenced_and_tells_devices(staff):
    refused("delete", "passcode", match="passcode is referenced by activate-passcode")
    assert "deleted activate-passcode; DeclarativeManagement queued for 1 device(s)" in run(
        "delete", "activate-passcode"
    )
    # passcode is in the set itself: still the device's.
    assert sorted(tokens_of(json_of(declarative(staff, "declaration-items")))) == [
        "org",
        "passcode",
    ]
    refused("delete", "activate-passcode", match="no declaration has the Identifier")


def test_sets_create_add_remove_list_delete(tmp_path, enrolled):
    run("add", write(tmp_path, [PASSCODE, ORGANIZATION]))
    run("set", "create", "Phones", "--description", "every phone")
    refused("set", "create", "Phones", match="a declaration set named 'Phones' exists")
    refused("set", "add", "Phones", "org", "nope", match="no declaration has the Identifier nope")
    assert not DeclarationSet.objects.get(name="Phones").declarations.exists()
    run("assign", "Phones", "--device", enrolled.udid)
    assert "2 added to 'Phones'; DeclarativeManagement queued for 1 device(s)" in run(
        "set", "add", "Phones", "org", "passcode"
    )
    assert "1 removed from 'Phones'; DeclarativeManagement queued for 1" in run(
        "set", "remove", "Phones", "passcode"
    )
    listing = run("set", "list").splitlines()
    assert listing[0].split() == ["NAME", "DECLARATIONS", "DEVICES", "GROUPS", "REACHES"]
    assert listing[1].split() == ["Phones", "org", "1", "-", "1", "device(s)"]
    assert "set 'Phones' deleted; DeclarativeManagement queued for 1 device(s)" in run(
        "set", "delete", "Phones"
    )
    refused("set", "delete", "Phones", match="no declaration set named 'Phones'")
    assert "no declaration set yet" in run("set", "list")
    assert len(declarative_commands(enrolled.udid)) == 3


def test_assign_by_serial_and_group_and_unassign(tmp_path, make_device):
    first, second = make_device(), make_device()
    for device in (first, second):
        device.enroll()
    Device.objects.filter(udid=first.udid).update(serial_number="C02SERIAL001")
    group = create_group("Lab", by="tests")
    Device.objects.filter(udid=second.udid).update(group=group)
    run("add", write(tmp_path, ORGANIZATION), "--set", "Org")
    out = run("assign", "Org", "--device", "c02serial001", "--group", "Lab")
    assert "given to 1 device(s) and 1 group(s) (Lab); DeclarativeManagement queued for 2" in out
    assert list(DeclarationSet.objects.get(name="Org").groups.all()) == [group]
    out = run("unassign", "Org", "--group", "Lab")
    assert "taken from 0 device(s) and 1 group(s) (Lab); DeclarativeManagement queued for 1" in out
    assert (
        len(declarative_commands(second.udid)) == 2 and len(declarative_commands(first.udid)) == 1
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["Org"], "name devices"),
        (["Org", "--device", "NOPE-UDID"], "no device has this UDID or serial number: NOPE-UDID"),
        (["Org", "--group", "Nope"], "no device group named 'Nope'"),
        (["Nope", "--group", "Lab"], "no declaration set named 'Nope'"),
    ],
    ids=["no-target", "device", "group", "set"],
)
def test_assign_refusals_change_nothing(tmp_path, enrolled, args, message):
    create_group("Lab", by="tests")
    run("add", write(tmp_path, ORGANIZATION), "--set", "Org")
    refused("assign", *args, match=message)
    org = DeclarationSet.objects.get(name="Org")
    assert not org.devices.exists() and not org.groups.exists()
    assert not AuditEntry.objects.filter(action="declaration_set.assigned").exists()


def test_assign_refuses_a_device_whose_os_lacks_a_declaration(tmp_path, enrolled):
    Device.objects.filter(udid=enrolled.udid).update(platform="tvOS", os_version="17.0")
    run("add", write(tmp_path, PASSCODE), "--set", "Passcode")
    refused(
        "assign",
        "Passcode",
        "--device",
        enrolled.udid,
        match=rf"passcode on {enrolled.udid}: com.apple.configuration.passcode.settings is not "
        "supported on tvOS",
    )
    assert not DeclarationSet.objects.get(name="Passcode").devices.exists()
    assert declarative_commands(enrolled.udid) == []
    assert not DeviceDeclarations.objects.filter(device__udid=enrolled.udid, token__gt="").exists()


def test_status_of_the_fleet_and_of_one_device(staff):
    pending = run("status")
    assert all(f"{staff.udid}  {i}" in pending for i in ("activate-passcode", "org", "passcode"))
    report_failure(staff)
    fleet = run("status").splitlines()
    assert fleet[0].split() == ["DEVICE", "IDENTIFIER", "KIND", "STATE", "REPORTED"]
    states = {line.split()[1]: line.split()[3] for line in fleet[1:] if line.startswith(staff.udid)}
    assert states == {"passcode": "failed", "activate-passcode": "pending"}  # org is active
    assert f"  {staff.udid} passcode: Error.ConfigurationCannotBeApplied: no passcode (The " in (
        "\n".join(fleet)
    )
    every = run("status", "--all")
    assert f"{staff.udid}  org" in every and "active" in every
    assert [row["identifier"] for row in json.loads(run("status", "--failed", "--json"))] == [
        "passcode"
    ]
    one = run("status", staff.udid)
    first = one.splitlines()[0]
    assert first.startswith(f"{staff.udid} (F2LXK0ABCDEF, iOS 17.4): last status report 20")
    assert {line.split()[0]: line.split()[2] for line in one.splitlines()[2:5]} == {
        "passcode": "failed",
        "activate-passcode": "pending",
        "org": "active",
    }
    device = json.loads(run("status", staff.udid, "--json"))
    assert device["device"] == staff.udid and device["last_report_at"]
    [failed] = [row for row in device["declarations"] if row["state"] == "failed"]
    assert failed["reasons"][0]["meaning"].startswith("The configuration cannot be applied")
    refused("status", "NOPE", match="no device has this UDID or serial number: NOPE")


def test_status_needs_a_udid_when_a_serial_is_shared(make_device):
    for _ in range(2):
        make_device().enroll()  # both report the simulator's serial number
    refused("status", "F2LXK0ABCDEF", match="the serial number of several devices: give a UDID")


def test_every_subcommand_has_help(capsys):
    for subcommand in (
        "add",
        "add-data",
        "add-credential",
        "list",
        "show",
        "delete",
        "set",
        "assign",
        "unassign",
        "status",
    ):
        with pytest.raises(SystemExit) as done:
            call_command("mdm_declaration", subcommand, "--help")
        assert done.value.code == 0
        assert "usage:" in capsys.readouterr().out
