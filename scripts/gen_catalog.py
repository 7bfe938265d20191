"""Regenerate commands/catalog/schema.json from Apple's MDM command schema (YAML).

Usage: python scripts/gen_catalog.py [path/to/apple-device-management]

Apple's repository (github.com/apple/device-management) is not shipped with the portal, so
this script distils the part the portal needs - every command's keys, their types, which
are required, allowed values and per-platform support - into a small JSON file that is
committed. The output is deterministic (sorted object keys, Apple's key order kept), so
running the script again on the same schema gives no diff.
"""

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA = ROOT.parent / "shared/apple-device-management"
TARGET = ROOT / "commands/catalog/schema.json"
PLATFORMS = ("iOS", "macOS", "tvOS", "visionOS", "watchOS")
TYPES = {"string", "boolean", "dictionary", "array", "integer", "data", "any", "real", "date"}
# Apple writes "accessrights: None" for commands that need no right; JSON null says the same.
NO_RIGHT = {None, "None", "n/a"}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z'\"(])")


def version(value: Any) -> str | None:
    """An `introduced` value as a string, None for 'n/a' (not supported on that platform)."""
    if value is None or value == "n/a":
        return None
    if not isinstance(value, str):
        # An unquoted 10.10 would have been read as the float 10.1: refuse to guess.
        raise SystemExit(f"introduced version {value!r} is not a string; quote it in the YAML")
    return value


def first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    return SENTENCE_END.split(text, maxsplit=1)[0]


def key_type(raw: str, where: str) -> str:
    name = (raw or "").strip("<>")
    if name not in TYPES:
        raise SystemExit(f"{where}: unknown key type {raw!r}")
    return name


def key_platforms(supported: dict | None) -> dict[str, str | None]:
    """Only the platforms whose entry says when the key was introduced (or 'n/a')."""
    return {
        platform: version(info["introduced"])
        for platform, info in sorted((supported or {}).items())
        if isinstance(info, dict) and "introduced" in info
    }


def convert_key(raw: dict, where: str) -> dict:
    where = f"{where}.{raw['key']}"
    allowed = raw.get("rangelist")
    return {
        "name": str(raw["key"]),
        "type": key_type(raw.get("type"), where),
        # A missing presence is optional: only array item specs lack it, and there it is moot.
        "required": raw.get("presence") == "required",
        "allowed": list(allowed) if allowed is not None else None,
        "platforms": key_platforms(raw.get("supportedOS")),
        "subkeys": [convert_key(sub, where) for sub in raw.get("subkeys") or []],
    }


def channels(info: dict) -> tuple[bool, bool]:
    """(device channel, user channel) for one platform of a command.

    iOS only has a user channel on Shared iPad, so Apple puts iOS's channel flags inside
    the `sharedipad` block: they say what Shared iPad allows, while an ordinary iPhone or iPad
    always has the device channel. Other platforms carry the flags directly. Missing flags
    mean the device channel only.
    """
    if "devicechannel" not in info and "userchannel" not in info:
        shared_ipad = info.get("sharedipad") or {}
        return True, bool(shared_ipad.get("userchannel", False))
    return bool(info.get("devicechannel", True)), bool(info.get("userchannel", False))


def platform_support(info: dict) -> dict:
    introduced = version(info.get("introduced"))
    if introduced is None:
        return {
            "introduced": None,
            "device_channel": False,
            "user_channel": False,
            "access_right": None,
            "supervised": False,
            "requires_dep": False,
        }
    device_channel, user_channel = channels(info)
    right = info.get("accessrights")
    return {
        "introduced": introduced,
        "device_channel": device_channel,
        "user_channel": user_channel,
        "access_right": None if right in NO_RIGHT else str(right),
        "supervised": bool(info.get("supervised", False)),
        "requires_dep": bool(info.get("requiresdep", False)),
    }


def convert_command(path: Path, schema_root: Path) -> tuple[str, dict]:
    raw = yaml.safe_load(path.read_text())
    payload = raw["payload"]
    request_type = payload["requesttype"]
    supported = payload.get("supportedOS") or {}
    return request_type, {
        "title": raw.get("title", request_type),
        "description": first_sentence(raw.get("description") or payload.get("content")),
        "source_file": path.relative_to(schema_root).as_posix(),
        "platforms": {
            platform: platform_support(supported.get(platform) or {"introduced": "n/a"})
            for platform in PLATFORMS
        },
        "keys": [convert_key(key, request_type) for key in raw.get("payloadkeys") or []],
    }


def build(schema_root: Path) -> dict[str, dict]:
    commands: dict[str, dict] = {}
    for path in sorted((schema_root / "mdm/commands").glob("*.yaml")):
        request_type, command = convert_command(path, schema_root)
        if request_type in commands:
            raise SystemExit(f"{path.name}: RequestType {request_type} defined twice")
        commands[request_type] = command
    if not commands:
        raise SystemExit(f"no command schema found under {schema_root / 'mdm/commands'}")
    return commands


def render(commands: dict[str, dict]) -> str:
    """The text of schema.json: sorted keys, so a rerun on the same schema is no diff."""
    return json.dumps(commands, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    schema_root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SCHEMA
    commands = build(schema_root.resolve())
    TARGET.write_text(render(commands))
    print(f"wrote {len(commands)} commands to {TARGET}")


if __name__ == "__main__":
    main()
