"""The command catalog, checked against the schema data it is built from.

The cases are generated from commands/catalog/schema.json (what scripts/gen_catalog.py distils
from Apple's YAML), read here as plain JSON - not through definitions.py - so they also prove
that the definitions production uses say what the data says. They need no database and
nothing beside the repository; tests/test_schema_matches_apple.py checks that the data still
matches Apple's YAML.
"""

import base64
import dataclasses
import json
import plistlib
import re
from pathlib import Path
from typing import Any

import pytest

from commands.catalog.definitions import (
    DEFINITIONS,
    CatalogError,
    example_payload,
    from_json,
    get_definition,
    validate_payload,
)

SCHEMA_JSON = Path(__file__).resolve().parents[1] / "commands/catalog/schema.json"
SCHEMA: dict[str, dict] = json.loads(SCHEMA_JSON.read_text(encoding="utf-8"))
REQUEST_TYPES = sorted(SCHEMA)
PY_TYPES = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "real": float,
    "data": bytes,
    "dictionary": dict,
    "array": list,
}


def top_keys(rt: str) -> list[dict]:
    return SCHEMA[rt]["keys"]


def is_open(key: dict) -> bool:
    """A dictionary whose single subkey `ANY` stands for arbitrary keys."""
    return [sub["name"] for sub in key["subkeys"]] == ["ANY"]


def container_subkeys(key: dict) -> list[dict]:
    """Subkeys that are keys of a value (dictionary keys, array item shapes), not documentation.

    A <string>'s subkeys (DeviceInformation's query names) are values it may take.
    """
    if key["type"] not in ("dictionary", "array") or is_open(key):
        return []
    return key["subkeys"]


def json_example(key: dict) -> Any:
    """A minimal valid value for a schema key, built independently of the module's example."""
    if key["allowed"]:
        return key["allowed"][0]
    kind = key["type"]
    if kind == "dictionary":
        return {sub["name"]: json_example(sub) for sub in container_subkeys(key) if sub["required"]}
    if kind == "array":
        return [json_example(key["subkeys"][0])]
    return {"string": "x", "boolean": True, "integer": 1, "data": b"x", "any": "x"}[kind]


def chains(keys: list[dict], prefix: tuple = ()) -> list[tuple[dict, ...]]:
    """Every key reachable through dictionaries and arrays, as the chain of keys leading to it."""
    found = []
    for key in keys:
        chain = (*prefix, key)
        found.append(chain)
        found.extend(chains(container_subkeys(key), chain))
    return found


def place(rt: str, chain: tuple[dict, ...]) -> tuple[dict, Any, Any]:
    """A valid payload holding the chain's last key; returns (payload, its parent, its slot).

    Optional parents are filled with their minimal example; an array item shape (or, for a
    multi-shape array, the chosen shape) sits at index 0.
    """
    payload = {key["name"]: json_example(key) for key in top_keys(rt) if key["required"]}
    parent: Any = payload
    slot: Any = chain[0]["name"]
    for outer, inner in zip(chain, chain[1:], strict=False):
        if isinstance(parent, dict):
            parent.setdefault(slot, json_example(outer))
        container = parent[slot]
        if outer["type"] == "array":
            if len(outer["subkeys"]) > 1:
                container[0] = json_example(inner)  # the shape this chain goes through
            parent, slot = container, 0
        else:
            parent, slot = container, inner["name"]
    if isinstance(parent, dict):
        parent.setdefault(slot, json_example(chain[-1]))
    return payload, parent, slot


def label(rt: str, chain: tuple[dict, ...]) -> str:
    return rt + ":" + ".".join(key["name"] for key in chain)


def cases(predicate) -> list:
    return [
        pytest.param(rt, chain, id=label(rt, chain))
        for rt in REQUEST_TYPES
        for chain in chains(top_keys(rt))
        if predicate(chain)
    ]


def is_dictionary_key(chain: tuple[dict, ...]) -> bool:
    """The chain's last key is a key of a dictionary (not an array's item shape)."""
    return len(chain) == 1 or chain[-2]["type"] == "dictionary"


# --- (a) every command is in the catalog, as Apple describes it ---------------------------


def test_every_request_type_is_defined():
    assert len(SCHEMA) == 66
    assert sorted(DEFINITIONS) == REQUEST_TYPES


def test_unknown_request_type_is_refused():
    with pytest.raises(CatalogError, match="unknown RequestType 'Foo'"):
        get_definition("Foo")


def assert_keys_match(rt: str, keys: list[dict], specs: tuple) -> None:
    assert [k["name"] for k in keys] == [s.name for s in specs], rt
    for key, spec in zip(keys, specs, strict=True):
        where = f"{rt}.{key['name']}"
        assert spec.type == key["type"], where
        assert spec.required == key["required"], where
        allowed = tuple(key["allowed"]) if key["allowed"] is not None else None
        assert spec.allowed == allowed, where
        assert spec.platforms == key["platforms"], where
        assert_keys_match(rt, key["subkeys"], spec.subkeys)


@pytest.mark.parametrize("rt", REQUEST_TYPES)
def test_definition_matches_schema_json(rt):
    definition = get_definition(rt)
    assert definition.request_type == rt
    assert definition.title == SCHEMA[rt]["title"]
    assert definition.description == SCHEMA[rt]["description"]
    assert_keys_match(rt, top_keys(rt), definition.keys)
    platforms = {name: dataclasses.asdict(s) for name, s in definition.platforms.items()}
    assert platforms == SCHEMA[rt]["platforms"]


# --- (b) the example payload is valid and holds exactly the required keys -----------------


@pytest.mark.parametrize("rt", REQUEST_TYPES)
def test_example_payload_is_valid(rt):
    definition = get_definition(rt)
    example = example_payload(definition)
    validate_payload(definition, example)
    required = [key for key in top_keys(rt) if key["required"]]
    assert sorted(example) == sorted(key["name"] for key in required)
    sent = plistlib.loads(plistlib.dumps({"Command": {"RequestType": rt, **example}}))
    for key in required:
        value = sent["Command"][key["name"]]
        assert type(value) is PY_TYPES[key["type"]], f"{key['name']}: {type(value).__name__}"


# --- (c) every required key, at any depth, must be there -----------------------------------


@pytest.mark.parametrize(
    "rt, chain",
    cases(lambda chain: chain[-1]["required"] and is_dictionary_key(chain)),
)
def test_missing_required_key_is_refused(rt, chain):
    payload, parent, slot = place(rt, chain)
    validate_payload(get_definition(rt), payload)  # complete, it passes
    del parent[slot]
    with pytest.raises(
        CatalogError, match=rf"missing required key \S*\b{re.escape(chain[-1]['name'])}\b"
    ):
        validate_payload(get_definition(rt), payload)


# --- (d) a top-level value of the wrong type is refused ------------------------------------


@pytest.mark.parametrize(
    "rt, chain", cases(lambda chain: len(chain) == 1 and chain[0]["type"] != "any")
)
def test_wrong_type_is_refused(rt, chain):
    key = chain[0]
    payload, parent, slot = place(rt, chain)
    parent[slot] = 12 if key["type"] == "string" else "wrong"
    with pytest.raises(CatalogError, match=rf"key {key['name']} must be <{key['type']}>, not"):
        validate_payload(get_definition(rt), payload)


# --- (e) a string outside Apple's list of values is refused -------------------------------


@pytest.mark.parametrize(
    "rt, chain",
    cases(lambda chain: chain[-1]["type"] == "string" and chain[-1]["allowed"] is not None),
)
def test_value_outside_rangelist_is_refused(rt, chain):
    payload, parent, slot = place(rt, chain)
    validate_payload(get_definition(rt), payload)
    parent[slot] = "NotAnAllowedValue"
    with pytest.raises(CatalogError, match="must be one of|matches no variant"):
        validate_payload(get_definition(rt), payload)


# --- (f) keys Apple does not define are refused -------------------------------------------


@pytest.mark.parametrize("rt", REQUEST_TYPES)
def test_unknown_key_is_refused(rt):
    definition = get_definition(rt)
    payload = {**example_payload(definition), "NoSuchKey": "x"}
    with pytest.raises(CatalogError, match=r"unknown key NoSuchKey \(queue it raw"):
        validate_payload(definition, payload)


@pytest.mark.parametrize("rt", REQUEST_TYPES)
def test_request_type_in_payload_is_ignored(rt):
    definition = get_definition(rt)
    validate_payload(definition, {"RequestType": rt, **example_payload(definition)})


# --- (g) specific cases --------------------------------------------------------------------

SETTINGS = DEFINITIONS["Settings"]


def test_settings_item_by_variant():
    validate_payload(SETTINGS, {"Settings": [{"Item": "DataRoaming", "Enabled": False}]})
    with pytest.raises(CatalogError, match=r"missing required key Settings\[0\]\.Enabled"):
        validate_payload(SETTINGS, {"Settings": [{"Item": "DataRoaming"}]})
    with pytest.raises(CatalogError, match=r"Settings\[0\]\.Item matches no variant.*NoSuchSet"):
        validate_payload(SETTINGS, {"Settings": [{"Item": "NoSuchSetting", "Enabled": True}]})
    with pytest.raises(CatalogError, match=r"key Settings\[1\]\.Enabled must be <boolean>"):
        validate_payload(
            SETTINGS,
            {
                "Settings": [
                    {"Item": "DataRoaming", "Enabled": True},
                    {"Item": "Bluetooth", "Enabled": 1},
                ]
            },
        )
    with pytest.raises(CatalogError, match=r"unknown key Settings\[0\]\.Where"):
        validate_payload(
            SETTINGS, {"Settings": [{"Item": "DataRoaming", "Enabled": True, "Where": 1}]}
        )


def test_integer_rangelist_and_any_dictionary():
    wallpaper = {"Item": "Wallpaper", "Image": b"png", "Where": 2}
    validate_payload(SETTINGS, {"Settings": [wallpaper]})
    with pytest.raises(CatalogError, match=r"Settings\[0\]\.Where must be one of 1, 2, 3, not 4"):
        validate_payload(SETTINGS, {"Settings": [{**wallpaper, "Where": 4}]})
    with pytest.raises(CatalogError, match="must be <integer>, not bool"):
        validate_payload(SETTINGS, {"Settings": [{**wallpaper, "Where": True}]})
    install = DEFINITIONS["InstallApplication"]
    configuration = {"Server": "x", "Nested": {"List": [1, 2.5, b"x", True]}}
    validate_payload(install, {"Configuration": configuration})
    with pytest.raises(CatalogError, match=r"Configuration\.Bad must be a property-list value"):
        validate_payload(install, {"Configuration": {"Bad": {1, 2}}})


def test_key_not_supported_on_platform():
    erase = DEFINITIONS["EraseDevice"]
    with pytest.raises(CatalogError, match="EraseDevice: key PIN is not supported on iOS"):
        validate_payload(erase, {"PIN": "123456"}, platform="iOS")
    validate_payload(erase, {"PIN": "123456"}, platform="macOS")
    validate_payload(erase, {"PIN": "123456"})  # no platform: no platform check
    with pytest.raises(CatalogError, match=r"Settings\[0\] \(Wallpaper\) is not supported"):
        validate_payload(
            SETTINGS,
            {"Settings": [{"Item": "Wallpaper", "Image": b"x", "Where": 1}]},
            platform="macOS",
        )
    with pytest.raises(CatalogError, match="unknown platform"):
        validate_payload(erase, {}, platform="Windows")


def test_key_introduced_later_than_os_version():
    erase = DEFINITIONS["EraseDevice"]
    rts = {"ReturnToService": {"Enabled": True}}
    with pytest.raises(CatalogError, match="ReturnToService needs iOS 17.0 or later, not 16.7"):
        validate_payload(erase, rts, platform="iOS", os_version="16.7")
    for version in ("17", "17.0", "17.4.1", "18.1"):
        validate_payload(erase, rts, platform="iOS", os_version=version)
    # Numeric, not textual: 10.9 < 10.15 (AccountConfiguration's keys came in macOS 10.15).
    account = DEFINITIONS["AccountConfiguration"]
    name = {"PrimaryAccountFullName": "Jane"}
    for older in ("10.9", "10.14.6"):
        with pytest.raises(CatalogError, match="needs macOS 10.15 or later"):
            validate_payload(account, name, platform="macOS", os_version=older)
    for newer in ("10.15", "10.15.7", "11.0"):
        validate_payload(account, name, platform="macOS", os_version=newer)
    # Settings variants carry their own versions: Bluetooth came in macOS 10.13.4.
    bluetooth = {"Settings": [{"Item": "Bluetooth", "Enabled": True}]}
    with pytest.raises(CatalogError, match=r"Settings\[0\] \(Bluetooth\) needs macOS 10.13.4"):
        validate_payload(SETTINGS, bluetooth, platform="macOS", os_version="10.13")
    validate_payload(SETTINGS, bluetooth, platform="macOS", os_version="10.13.4")


def test_from_json_decodes_base64_data():
    install = DEFINITIONS["InstallProfile"]
    profile = b"<?xml version='1.0'?><plist/>"
    given = {"Payload": base64.b64encode(profile).decode()}
    converted = from_json(install, given)
    assert converted == {"Payload": profile}
    validate_payload(install, converted)
    with pytest.raises(CatalogError, match="InstallProfile: key Payload must be base64"):
        from_json(install, {"Payload": "not base64!"})
    # Nested and inside a multi-shape array; other values are left as given.
    wallpaper = {"Item": "Wallpaper", "Image": "cG5n", "Where": 1}
    assert from_json(SETTINGS, {"Settings": [wallpaper]}) == {
        "Settings": [{"Item": "Wallpaper", "Image": b"png", "Where": 1}]
    }
    erase = DEFINITIONS["EraseDevice"]
    assert from_json(erase, {"ReturnToService": {"Enabled": True, "MDMProfileData": "eA=="}}) == {
        "ReturnToService": {"Enabled": True, "MDMProfileData": b"x"}
    }
