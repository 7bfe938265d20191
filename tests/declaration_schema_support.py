"""The declarative schema data read as plain JSON, for the schema-driven declaration tests.

declarations/schema.json's Types are walked here without declarations.schema: the chain of keys
to every key at any depth, a minimal valid payload holding one (place), the path a refusal names
(key_path), and the OS version each key came in on each platform, so the tests that use them
hold the module the portal runs to what the data says.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from commands.catalog.definitions import PLATFORMS

SCHEMA_JSON = Path(__file__).resolve().parents[1] / "declarations/schema.json"
SCHEMA: dict[str, dict] = json.loads(SCHEMA_JSON.read_text(encoding="utf-8"))["declarations"]
TYPE_NAMES = sorted(SCHEMA)
# A value of another type, for each type a key may have ('any' takes every value: none).
WRONG = {
    "string": 123,
    "integer": "x",
    "real": "x",
    "boolean": "yes",
    "dictionary": [],
    "array": {},
    "data": 123,
    "date": 123,
}
# What a value stands under in an open dictionary (a single subkey ANY: any key name).
ANY = "ANY"
OPEN_KEY = "SomeKey"
IDENTIFIER = "test-declaration"


def top_keys(name: str) -> list[dict]:
    return SCHEMA[name]["keys"]


def container_subkeys(key: dict) -> list[dict]:
    """The keys of a value (a dictionary's keys, an array's item, an open dictionary's ANY)."""
    return key["subkeys"] if key["type"] in ("dictionary", "array") else []


def is_open(keys: list[dict]) -> bool:
    return [key["name"] for key in keys] == [ANY]


def slot_name(key: dict) -> str:
    return OPEN_KEY if key["name"] == ANY else key["name"]


def json_example(key: dict) -> Any:
    """A minimal valid value for a schema key, built independently of the module's example."""
    if key["allowed"]:
        return key["allowed"][0]
    kind = key["type"]
    if kind == "dictionary":
        return {
            sub["name"]: json_example(sub)
            for sub in container_subkeys(key)
            if sub["required"] and sub["name"] != ANY
        }
    if kind == "array":
        return [json_example(key["subkeys"][0])] if key["subkeys"] else []
    return {"string": "x", "boolean": True, "integer": 1, "real": 1.5, "any": "x"}[kind]


def chains(keys: list[dict], prefix: tuple = ()) -> list[tuple[dict, ...]]:
    """Every key reachable through dictionaries and arrays, as the chain of keys leading to it."""
    found = []
    for key in keys:
        chain = (*prefix, key)
        found.append(chain)
        found.extend(chains(container_subkeys(key), chain))
    return found


def place(name: str, chain: tuple[dict, ...]) -> tuple[dict, Any, Any]:
    """A valid payload holding the chain's last key; returns (payload, its parent, its slot).

    Optional parents are filled with their minimal example; an array's item sits at index 0,
    an open dictionary's value under OPEN_KEY.
    """
    payload = {key["name"]: json_example(key) for key in top_keys(name) if key["required"]}
    parent: Any = payload
    slot: Any = slot_name(chain[0])
    for outer, inner in zip(chain, chain[1:], strict=False):
        if isinstance(parent, dict):
            parent.setdefault(slot, json_example(outer))
        container = parent[slot]
        parent, slot = (container, 0) if outer["type"] == "array" else (container, slot_name(inner))
    if isinstance(parent, dict):
        parent.setdefault(slot, json_example(chain[-1]))
    return payload, parent, slot


def key_path(chain: tuple[dict, ...]) -> str:
    """The key's path as refusals name it: Outer.Inner, Items[0].Name."""
    path = ""
    for index, key in enumerate(chain):
        if index and chain[index - 1]["type"] == "array":
            path += "[0]"
        else:
            path = f"{path}.{slot_name(key)}" if path else slot_name(key)
    return path


def declaration(name: str, payload: Any, identifier: str = IDENTIFIER) -> dict:
    return {"Type": name, "Identifier": identifier, "Payload": payload}


def cases(predicate) -> list:
    return [
        pytest.param(name, chain, id=f"{name}:{key_path(chain)}")
        for name in TYPE_NAMES
        for chain in chains(top_keys(name))
        if predicate(chain)
    ]


def is_dictionary_key(chain: tuple[dict, ...]) -> bool:
    """The chain's last key is a named key of a dictionary (not an item, not ANY)."""
    return chain[-1]["name"] != ANY and (len(chain) == 1 or chain[-2]["type"] == "dictionary")


def version(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def below(text: str) -> str:
    """A version just before `text`: 16.2 -> 16.1, 15.0 -> 14, 1.1 -> 1.0."""
    parts = list(version(text))
    parts[-1] -= 1
    return ".".join(map(str, parts))


def introduced(name: str, platform: str) -> str | None:
    return SCHEMA[name]["platforms"][platform]["introduced"]


def key_introduced(name: str, chain: tuple[dict, ...], platform: str) -> str | None:
    """The version a key came in on a platform (None: not supported): the Type's where Apple
    states none for the key."""
    platforms = chain[-1]["platforms"]
    return platforms[platform] if platform in platforms else introduced(name, platform)


def present(keys: list[dict], value: dict, prefix: tuple = ()) -> list[tuple[dict, ...]]:
    """The chains of keys a payload built here holds."""
    found = []
    by_name = {key["name"]: key for key in keys}
    for name, item in value.items():
        key = by_name[ANY] if is_open(keys) else by_name[name]
        chain = (*prefix, key)
        found.append(chain)
        if key["type"] == "dictionary" and key["subkeys"]:
            found.extend(present(key["subkeys"], item, chain))
        elif key["type"] == "array" and key["subkeys"]:
            spec = key["subkeys"][0]
            for entry in item:
                found.append((*chain, spec))
                if spec["type"] == "dictionary" and spec["subkeys"]:
                    found.extend(present(spec["subkeys"], entry, (*chain, spec)))
    return found


def first_blocking(name: str, payload: dict, platform: str, at: str) -> str | None:
    """The path of the first key of `payload` a device on `platform` `at` lacks, or None."""
    for chain in present(top_keys(name), payload):
        came = key_introduced(name, chain, platform)
        if came is None or version(came) > version(at):
            return key_path(chain)
    return None


def type_platform_cases(predicate) -> list:
    return [
        pytest.param(name, platform, id=f"{name}:{platform}")
        for name in TYPE_NAMES
        for platform in PLATFORMS
        if predicate(name, platform)
    ]
