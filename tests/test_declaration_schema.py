"""Every declaration Type, checked against the schema data it is built from.

The cases are generated from declarations/schema.json (what scripts/gen_declarations.py distils
from Apple's declarative YAML), read here as plain JSON - not through declarations.schema - so
they also prove that the definitions the portal uses say what the data says: for each Type a
valid example is accepted (and stored, with its ServerToken), each required key at any depth is
missed, each key gets a value of the wrong type, each closed list a value outside it, and each
platform and OS version Apple names is held to. tests/test_declarations_match_apple.py checks
that the data still matches Apple's YAML.
"""

import json
import re
from typing import Any

import pytest

from commands.catalog.definitions import PLATFORMS
from declarations import schema
from declarations.models import Declaration, DeclarationSet, DeviceDeclarations
from declarations.schema import (
    DeclarationError,
    example_declaration,
    unsupported_reason,
    validate_declaration,
)
from declarations.sets import add_declarations, assign, create_set
from declarations.store import save_declaration
from declarations.tokens import server_token
from devices.groups import create_group
from devices.models import Device
from mdm_portal.models import AuditEntry
from tests.declaration_schema_support import (
    IDENTIFIER,
    SCHEMA,
    TYPE_NAMES,
    WRONG,
    below,
    cases,
    chains,
    declaration,
    first_blocking,
    introduced,
    is_dictionary_key,
    is_open,
    json_example,
    key_introduced,
    key_path,
    place,
    present,
    top_keys,
    type_platform_cases,
    version,
)
from tests.declarative_support import declarative_commands


def refused(data: dict) -> DeclarationError:
    with pytest.raises(DeclarationError) as refusal:
        validate_declaration(data)
    return refusal.value


# --- every Type is defined, as the data says -----------------------------------------------


def test_every_type_is_defined():
    assert len(SCHEMA) == 38
    assert sorted(schema.TYPES) == TYPE_NAMES
    for name in TYPE_NAMES:
        assert SCHEMA[name]["kind"] == name.split(".")[2] and SCHEMA[name]["kind"] in schema.KINDS
    assert {key["type"] for name in TYPE_NAMES for c in chains(top_keys(name)) for key in c} <= {
        *WRONG,
        "any",
    }


def assert_keys_match(where: str, keys: list[dict], specs: tuple) -> None:
    assert [k["name"] for k in keys] == [s.name for s in specs], where
    for key, spec in zip(keys, specs, strict=True):
        at = f"{where}.{key['name']}"
        assert spec.type == key["type"], at
        assert spec.required == key["required"], at
        assert spec.allowed == (tuple(key["allowed"]) if key["allowed"] is not None else None), at
        assert spec.platforms == key["platforms"], at
        assert_keys_match(at, key["subkeys"], spec.subkeys)


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_type_matches_schema_json(name):
    definition = schema.get_type(name)
    raw = SCHEMA[name]
    assert (definition.name, definition.kind, definition.title) == (name, raw["kind"], raw["title"])
    assert_keys_match(name, raw["keys"], definition.keys)
    for platform in PLATFORMS:
        support = definition.platforms[platform]
        expected = raw["platforms"][platform]
        assert support.introduced == expected["introduced"], platform
        assert list(support.enrollments) == expected["enrollments"], platform


# --- a valid example is accepted, is JSON, and is stored -----------------------------------


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_example_declaration_is_valid_json(name):
    example = example_declaration(schema.TYPES[name], IDENTIFIER)
    assert validate_declaration(example) is schema.TYPES[name]
    # Declarations are JSON: the example survives a JSON round trip unchanged.
    assert json.loads(json.dumps(example)) == example
    required = sorted(key["name"] for key in top_keys(name) if key["required"])
    assert sorted(example["Payload"]) == required
    # And the example built here from the JSON alone is valid as well.
    independent = {key["name"]: json_example(key) for key in top_keys(name) if key["required"]}
    validate_declaration(declaration(name, independent))


@pytest.mark.django_db
@pytest.mark.parametrize("name", TYPE_NAMES)
def test_example_declaration_is_stored_with_its_server_token(name):
    example = example_declaration(schema.TYPES[name], IDENTIFIER)
    stored, created = save_declaration(example, by="tests")
    assert created
    row = Declaration.objects.get(identifier=IDENTIFIER)
    assert (row.type, row.kind, row.payload) == (name, SCHEMA[name]["kind"], example["Payload"])
    assert row.server_token == server_token(name, IDENTIFIER, example["Payload"])
    assert re.fullmatch(r"[0-9a-f]{64}", row.server_token)
    assert AuditEntry.objects.filter(action="declaration.created", target=IDENTIFIER).count() == 1
    # A ServerToken given with it is the client's guess: the portal keeps its own.
    again, created = save_declaration({**example, "ServerToken": "mine"}, by="tests")
    assert not created and again.server_token == row.server_token


# --- every required key, at any depth, must be there ---------------------------------------


@pytest.mark.parametrize(
    "name, chain", cases(lambda chain: chain[-1]["required"] and is_dictionary_key(chain))
)
def test_missing_required_key_is_refused(name, chain):
    payload, parent, slot = place(name, chain)
    validate_declaration(declaration(name, payload))  # complete, it passes
    del parent[slot]
    refusal = refused(declaration(name, payload))
    path = key_path(chain)
    assert refusal.key == path
    assert re.search(rf"missing required key {re.escape(path)}\b", str(refusal))


# --- a value of the wrong type is refused, at any depth ------------------------------------


# Every key but the 'any' ones, which take a value of every type (the next test shows it).
@pytest.mark.parametrize("name, chain", cases(lambda chain: chain[-1]["type"] != "any"))
def test_wrong_type_is_refused(name, chain):
    key = chain[-1]
    payload, parent, slot = place(name, chain)
    parent[slot] = WRONG[key["type"]]
    refusal = refused(declaration(name, payload))
    path = key_path(chain)
    assert refusal.key == path
    assert f"key {path} must be <{key['type']}>, not" in str(refusal)


@pytest.mark.parametrize("name, chain", cases(lambda chain: chain[-1]["type"] == "any"))
def test_any_key_takes_every_json_value(name, chain):
    payload, parent, slot = place(name, chain)
    for value in ("text", 7, 2.5, False, [1, "a"], {"nested": {"list": [True]}}):
        parent[slot] = value
        validate_declaration(declaration(name, payload))


# --- a value outside Apple's list is refused -----------------------------------------------


def outside(key: dict) -> Any:
    if key["type"] == "integer":
        return max(key["allowed"]) + 1
    return "NotAnAllowedValue"


@pytest.mark.parametrize("name, chain", cases(lambda chain: chain[-1]["allowed"] is not None))
def test_value_outside_rangelist_is_refused(name, chain):
    payload, parent, slot = place(name, chain)
    validate_declaration(declaration(name, payload))
    parent[slot] = outside(chain[-1])
    refusal = refused(declaration(name, payload))
    assert refusal.key == key_path(chain)
    assert f"key {key_path(chain)} must be one of" in str(refusal)


# --- keys Apple does not define are refused ------------------------------------------------


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_unknown_key_is_refused(name):
    payload = {**example_declaration(schema.TYPES[name], IDENTIFIER)["Payload"], "NoSuchKey": 1}
    if is_open(top_keys(name)):  # management.properties: any key is the admin's to name
        validate_declaration(declaration(name, payload))
        return
    refusal = refused(declaration(name, payload))
    assert refusal.key == "NoSuchKey" and "unknown key NoSuchKey" in str(refusal)


@pytest.mark.parametrize(
    "name, chain",
    cases(
        lambda chain: (
            chain[-1]["type"] == "dictionary"
            and chain[-1]["subkeys"]
            and not is_open(chain[-1]["subkeys"])
        )
    ),
)
def test_unknown_nested_key_is_refused(name, chain):
    payload, parent, slot = place(name, chain)
    parent[slot]["NoSuchKey"] = "x"
    refusal = refused(declaration(name, payload))
    assert refusal.key == f"{key_path(chain)}.NoSuchKey"
    assert f"unknown key {key_path(chain)}.NoSuchKey" in str(refusal)


# --- the envelope: Type, Identifier, Payload -----------------------------------------------

VALID = declaration("com.apple.management.organization-info", {"Name": "Example"}, "org")


@pytest.mark.parametrize(
    "change, key, message",
    [
        ({"Type": "com.apple.configuration.nope"}, "Type", "unknown declaration Type"),
        ({"Type": "com.apple.credential.acme"}, "Type", "unknown declaration Type"),  # a document
        ({"Type": 5}, "Type", "Type must be a non-empty string"),
        ({"Payload": []}, "Payload", "Payload must be a JSON object"),
        ({"Extra": 1}, "Extra", "unknown key Extra"),
    ],
)
def test_a_bad_envelope_is_refused(change, key, message):
    refusal = refused({**VALID, **change})
    assert refusal.key == key and message in str(refusal)


@pytest.mark.parametrize("missing", ["Type", "Identifier", "Payload"])
def test_a_missing_envelope_key_is_refused(missing):
    data = {key: value for key, value in VALID.items() if key != missing}
    refusal = refused(data)
    assert refusal.key == missing and f"missing required key {missing}" in str(refusal)


@pytest.mark.parametrize(
    "identifier, message",
    [
        ("", "must be a non-empty string"),
        ("   ", "must be a non-empty string"),
        (5, "must be a non-empty string"),
        ("a" * 65, "is 65 octets; Apple allows 64"),
        ("é" * 33, "is 66 octets; Apple allows 64"),  # 33 characters, 66 octets in UTF-8
        ("a/b", "must not contain '/'"),
        (" padded", "must not start or end with spaces"),
    ],
    ids=["empty", "blank", "number", "65-octets", "66-octets-in-33-characters", "slash", "spaces"],
)
@pytest.mark.django_db
def test_a_bad_identifier_is_refused_and_nothing_is_stored(identifier, message):
    data = {**VALID, "Identifier": identifier}
    refusal = refused(data)
    assert refusal.key == "Identifier" and message in str(refusal)
    with pytest.raises(DeclarationError, match=re.escape(message)):
        save_declaration(data, by="tests")
    assert not Declaration.objects.exists()


@pytest.mark.parametrize("identifier", ["a" * 64, "é" * 32, "com.example.passcode-1"])
def test_an_identifier_of_up_to_64_octets_is_accepted(identifier):
    validate_declaration({**VALID, "Identifier": identifier})


# --- OS support: Types and keys on each platform and OS version ----------------------------


def example_payload(name: str) -> dict:
    return example_declaration(schema.TYPES[name], IDENTIFIER)["Payload"]


def reason(name: str, payload: dict, platform: str, os_version: str, **kwargs) -> str | None:
    return unsupported_reason(
        schema.TYPES[name], payload, platform=platform, os_version=os_version, **kwargs
    )


@pytest.mark.parametrize(
    "name, platform", type_platform_cases(lambda n, p: introduced(n, p) is None)
)
def test_a_type_is_refused_where_apple_says_na(name, platform):
    assert reason(name, example_payload(name), platform, "99.0") == (
        f"{name} is not supported on {platform}"
    )


@pytest.mark.parametrize(
    "name, platform", type_platform_cases(lambda n, p: introduced(n, p) is not None)
)
def test_a_type_needs_the_os_version_that_introduced_it(name, platform):
    came, payload = introduced(name, platform), example_payload(name)
    older = below(came)
    assert reason(name, payload, platform, older) == (
        f"{name} needs {platform} {came} or later, not {older}"
    )
    blocking = first_blocking(name, payload, platform, came)
    found = reason(name, payload, platform, came)
    if blocking is None:
        assert found is None
        assert reason(name, payload, platform, "") is None  # a version not known yet passes
    else:  # a required key came later (or never) on this platform
        assert found is not None and f"key {blocking} " in found


def later_key_cases() -> list:
    """(Type, key, platform) where the Type is supported and Apple gives the key a later
    version, or n/a, and no other key of the payload that holds it is later still."""
    found = []
    for name in TYPE_NAMES:
        for chain in chains(top_keys(name)):
            for platform, came in chain[-1]["platforms"].items():
                type_came = introduced(name, platform)
                if type_came is None or (came is not None and version(came) <= version(type_came)):
                    continue
                payload = place(name, chain)[0]
                others = [c for c in present(top_keys(name), payload) if c != chain]
                limit = came or "99.0"
                if any(
                    (other := key_introduced(name, c, platform)) is None
                    or version(other) >= version(limit)
                    for c in others
                ):
                    continue
                found.append(
                    pytest.param(name, chain, platform, id=f"{name}:{key_path(chain)}:{platform}")
                )
    return found


@pytest.mark.parametrize("name, chain, platform", later_key_cases())
def test_a_key_the_device_os_lacks_is_refused(name, chain, platform):
    payload = place(name, chain)[0]
    came = chain[-1]["platforms"][platform]
    path = key_path(chain)
    if came is None:
        assert reason(name, payload, platform, "99.0") == (
            f"{name}: key {path} is not supported on {platform}"
        )
        return
    older = below(came)
    assert reason(name, payload, platform, older) == (
        f"{name}: key {path} needs {platform} {came} or later, not {older}"
    )
    assert reason(name, payload, platform, came) is None


def test_some_keys_come_later_than_their_type():
    """The generated cases above are not empty: Apple's data has such keys."""
    ids = [param.id for param in later_key_cases()]
    assert "com.apple.configuration.passcode.settings:RequireAlphanumericPasscode:iOS" in ids
    assert "com.apple.configuration.passcode.settings:CustomRegex:iOS" in ids
    assert len(ids) > 20


@pytest.mark.parametrize(
    "name, platform",
    type_platform_cases(
        lambda n, p: (
            introduced(n, p) is not None
            and SCHEMA[n]["platforms"][p]["enrollments"]
            and set(SCHEMA[n]["platforms"][p]["enrollments"]) <= {"supervised", "local"}
        )
    ),
)
def test_a_supervised_only_type_is_refused_to_an_unsupervised_device(name, platform):
    payload, at = example_payload(name), "99.0"
    assert reason(name, payload, platform, at, supervised=False) == (
        f"{name} needs a supervised {platform} device"
    )
    if first_blocking(name, payload, platform, at) is None:
        assert reason(name, payload, platform, at, supervised=True) is None
        assert reason(name, payload, platform, at, supervised=None) is None  # not known yet


def test_a_device_whose_platform_is_not_known_yet_is_not_held():
    for name in TYPE_NAMES:
        assert reason(name, example_payload(name), "", "") is None


# --- sets.assign refuses a device whose OS cannot take a declaration -----------------------


def unsupported_os(name: str) -> tuple[str, str]:
    """A platform and OS version that cannot take the Type: n/a, or older than introduced."""
    for platform in PLATFORMS:
        if introduced(name, platform) is None:
            return platform, "99.0"
    return PLATFORMS[0], below(introduced(name, PLATFORMS[0]))


def supported_os(name: str) -> tuple[str, str]:
    payload = example_payload(name)
    for platform in PLATFORMS:
        if introduced(name, platform) and first_blocking(name, payload, platform, "99.0") is None:
            return platform, "99.0"
    raise AssertionError(f"{name} has no platform for its example")


@pytest.mark.django_db
@pytest.mark.parametrize("name", TYPE_NAMES)
def test_assign_refuses_a_device_whose_os_lacks_the_type_and_changes_nothing(enrolled, name):
    stored, _ = save_declaration(example_declaration(schema.TYPES[name], IDENTIFIER), by="tests")
    declaration_set = create_set("set", by="tests")
    add_declarations(declaration_set, [stored], by="tests")
    devices = Device.objects.filter(udid=enrolled.udid)
    platform, os_version = unsupported_os(name)
    devices.update(platform=platform, os_version=os_version)
    expected = reason(name, stored.payload, platform, os_version)
    assert expected is not None
    with pytest.raises(DeclarationError) as refusal:
        assign(declaration_set, devices=devices, by="tests")
    message = str(refusal.value)
    assert f"{IDENTIFIER} on {enrolled.udid}: {expected}" in message
    assert not DeclarationSet.objects.get(name="set").devices.exists()
    assert declarative_commands(enrolled.udid) == []
    assert not DeviceDeclarations.objects.filter(device__udid=enrolled.udid).exists()
    assert not AuditEntry.objects.filter(action="declaration_set.assigned").exists()
    # On an OS that has it, the same assignment goes through: one DeclarativeManagement.
    platform, os_version = supported_os(name)
    devices.update(platform=platform, os_version=os_version)
    assert assign(declaration_set, devices=devices, by="tests") == 1
    assert list(declaration_set.devices.values_list("udid", flat=True)) == [enrolled.udid]
    assert len(declarative_commands(enrolled.udid)) == 1


@pytest.mark.django_db
def test_support_is_checked_through_groups_and_when_a_set_grows(enrolled):
    """Spot checks: a group's device, a declaration added to a set the device already has,
    and a supervised-only Type on an unsupervised device."""
    devices = Device.objects.filter(udid=enrolled.udid)
    devices.update(platform="iOS", os_version="16.0")
    group = create_group("Phones", by="tests")
    devices.update(group=group)
    later = save_declaration(
        declaration(
            "com.apple.configuration.security.certificate", {"CredentialAssetReference": "c"}
        ),
        by="tests",
    )[0]
    first = create_set("certificates", by="tests")
    add_declarations(first, [later], by="tests")
    with pytest.raises(DeclarationError, match=rf"{enrolled.udid}: .*needs iOS 17.0 or later"):
        assign(first, groups=[group], by="tests")
    assert not first.groups.exists()
    organization = save_declaration(VALID, by="tests")[0]
    second = create_set("organization", by="tests")
    add_declarations(second, [organization], by="tests")
    assert assign(second, groups=[group], by="tests") == 1
    with pytest.raises(DeclarationError, match="needs iOS 17.0 or later, not 16.0"):
        add_declarations(second, [later], by="tests")
    assert list(second.declarations.values_list("identifier", flat=True)) == ["org"]
    watch = save_declaration(
        declaration(
            "com.apple.configuration.watch.enrollment",
            {"EnrollmentProfileURL": "https://x"},
            "watch",
        ),
        by="tests",
    )[0]
    third = create_set("watch", by="tests")
    add_declarations(third, [watch], by="tests")
    devices.update(os_version="17.4", is_supervised=False)
    with pytest.raises(DeclarationError, match="needs a supervised iOS device"):
        assign(third, devices=devices, by="tests")
    devices.update(is_supervised=True)
    assert assign(third, devices=devices, by="tests") == 1
    assert len(declarative_commands(enrolled.udid)) == 2
