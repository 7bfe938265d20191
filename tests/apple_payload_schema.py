"""Checks a profile payload against Apple's YAML schema of its PayloadType (mdm/profiles/ in
../shared/apple-device-management): every required key present, no key Apple does not define
for it (its own keys and the common Payload* keys), each value of its type and, where Apple
lists them, one of the allowed values; arrays and dictionaries down to their subkeys.

Only the tests that say so read the YAML; without it they skip (under CI=true they fail), as
tests/test_schema_matches_apple.py does.
"""

from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI

SCHEMA_ROOT = Path(__file__).resolve().parents[2] / "shared/apple-device-management"
TYPES = {
    "<string>": str,
    "<integer>": int,
    "<boolean>": bool,
    "<array>": list,
    "<dictionary>": dict,
    "<data>": bytes,
    "<real>": float,
}


def profile_schema(payload_type: str) -> dict:
    """Apple's YAML for `payload_type` (a skip, or a failure under CI, when it is absent)."""
    path = SCHEMA_ROOT.resolve() / "mdm/profiles" / f"{payload_type}.yaml"
    if not path.is_file():
        reason = f"Apple's payload schema is expected at {path} (shared/ beside the repository)"
        if IN_CI:
            pytest.fail("CI=true but " + reason, pytrace=False)
        pytest.skip(reason)
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _check_value(key: str, spec: dict, value, problems: list[str]) -> None:
    expected = TYPES.get(spec.get("type", ""))
    is_bool = isinstance(value, bool)
    if expected is not None and (not isinstance(value, expected) or (expected is int and is_bool)):
        problems.append(f"{key}: {value!r} is not {spec['type']}")
        return
    allowed = spec.get("rangelist")
    if allowed is not None and value not in allowed:
        problems.append(f"{key}: {value!r} is not one of {allowed}")
    subkeys = spec.get("subkeys") or []
    if isinstance(value, list) and subkeys:
        for index, item in enumerate(value):
            _check_value(f"{key}[{index}]", subkeys[0], item, problems)
    elif isinstance(value, dict) and subkeys:
        _check_keys(key, subkeys, value, problems)


def _check_keys(where: str, specs: list[dict], data: dict, problems: list[str]) -> None:
    by_key = {spec["key"]: spec for spec in specs}
    for spec in specs:
        if spec.get("presence") == "required" and spec["key"] not in data:
            problems.append(f"{where}: required key {spec['key']} is missing")
    for key, value in data.items():
        if key not in by_key:
            problems.append(f"{where}: {key} is not a key Apple defines here")
            continue
        _check_value(f"{where}.{key}", by_key[key], value, problems)


def payload_problems(payload: dict) -> list[str]:
    """What in `payload` Apple's schema of its PayloadType does not allow ([] when valid)."""
    schema = profile_schema(payload["PayloadType"])
    common = profile_schema("CommonPayloadKeys")["payloadkeys"]
    problems: list[str] = []
    _check_keys(payload["PayloadType"], [*common, *schema["payloadkeys"]], payload, problems)
    return problems
