"""Regenerate declarations/schema.json from Apple's declarative-management schema (YAML).

Usage: python scripts/gen_declarations.py [path/to/apple-device-management]

Like scripts/gen_catalog.py for commands: Apple's repository is not shipped with the portal, so
this distils what the portal needs from `declarative/` into a committed JSON file:

- every declaration Type (configurations, assets, activations, management): its kind, keys,
  their types, which are required, allowed values, per-platform support (OS version,
  enrollment types and scopes), and each key's title, first sentence and default for forms;
- the credential documents an asset's data may be (com.apple.credential.*), which the portal
  serves for its ACME and SCEP credential assets;
- the protocol's responses and the status report, which the tests hold the portal's answers to;
- the status items, and the reasons a device may give for a declaration's state.

The output is deterministic (sorted object keys, Apple's key order kept).
"""

import importlib.util
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "declarations/schema.json"


def _load_gen_catalog():
    spec = importlib.util.spec_from_file_location("gen_catalog", ROOT / "scripts/gen_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One reading of Apple's key types, versions and sentences for commands and declarations alike.
gen_catalog = _load_gen_catalog()
DEFAULT_SCHEMA = gen_catalog.DEFAULT_SCHEMA
PLATFORMS = gen_catalog.PLATFORMS
# The second word of a Type names its kind (com.apple.<kind>.<name>).
KINDS = ("activation", "asset", "configuration", "management")


def convert_key(raw: dict, where: str) -> dict:
    """A key as the command catalog has it, plus what a form shows (title, a sentence, the
    default) and, for an asset's Reference, the media types its data may have."""
    where = f"{where}.{raw['key']}"
    allowed = raw.get("rangelist")
    key = {
        "name": str(raw["key"]),
        "type": gen_catalog.key_type(raw.get("type"), where),
        "required": raw.get("presence") == "required",
        "allowed": list(allowed) if allowed is not None else None,
        "platforms": gen_catalog.key_platforms(raw.get("supportedOS")),
        "subkeys": [convert_key(sub, where) for sub in raw.get("subkeys") or []],
        "title": str(raw.get("title") or ""),
        "description": gen_catalog.first_sentence(raw.get("content")),
    }
    if "default" in raw:
        key["default"] = raw["default"]
    if "asset-content-types" in raw:  # the media types an asset's data may have
        key["content_types"] = list(raw["asset-content-types"])
    return key


def platform_support(info: dict) -> dict:
    """When a platform got the type (None: never), and for which enrollments and scopes."""
    introduced = gen_catalog.version(info.get("introduced"))
    if introduced is None:
        return {"introduced": None, "enrollments": [], "scopes": []}
    return {
        "introduced": introduced,
        "enrollments": list(info.get("allowed-enrollments") or []),
        "scopes": list(info.get("allowed-scopes") or []),
    }


def platforms(payload: dict) -> dict:
    supported = payload.get("supportedOS") or {}
    return {
        platform: platform_support(supported.get(platform) or {"introduced": "n/a"})
        for platform in PLATFORMS
    }


def describe(raw: dict, name: str, path: Path, schema_root: Path) -> dict:
    return {
        "title": raw.get("title", name),
        "description": gen_catalog.first_sentence(raw.get("description")),
        "source_file": path.relative_to(schema_root).as_posix(),
        "platforms": platforms(raw["payload"]),
        "keys": [convert_key(key, name) for key in raw.get("payloadkeys") or []],
    }


def kind_of(declaration_type: str) -> str:
    parts = declaration_type.split(".")
    if len(parts) < 4 or parts[:2] != ["com", "apple"] or parts[2] not in KINDS:
        raise SystemExit(f"declaration type {declaration_type!r} has no kind")
    return parts[2]


def collect(folder: Path, field: str, schema_root: Path) -> dict[str, dict]:
    """Every YAML under `folder` whose payload names itself with `field`, by that name."""
    found: dict[str, dict] = {}
    for path in sorted(folder.rglob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        name = (raw.get("payload") or {}).get(field)
        if name is None:
            continue
        if name in found:
            raise SystemExit(f"{path.name}: {field} {name} defined twice")
        found[name] = describe(raw, name, path, schema_root)
    return found


def build(schema_root: Path) -> dict:
    root = schema_root / "declarative"
    if not (root / "declarations").is_dir():
        raise SystemExit(f"no declarative schema found under {root}")
    declarations = collect(root / "declarations", "declarationtype", schema_root)
    declarations.pop("any", None)  # declarationbase.yaml: the keys every declaration has
    for name, declaration in declarations.items():
        declaration["kind"] = kind_of(name)
    base = yaml.safe_load((root / "declarations/declarationbase.yaml").read_text())
    return {
        "declarations": declarations,
        "credentials": collect(
            root / "declarations/assets/credentials", "credentialtype", schema_root
        ),
        "protocol": collect(root / "protocol", "requesttype", schema_root),
        "status_items": collect(root / "status", "statusitemtype", schema_root),
        "reasons": {
            reason["value"]: gen_catalog.first_sentence(reason.get("description"))
            for reason in base.get("reasons") or []
        },
    }


def render(schema: dict) -> str:
    return json.dumps(schema, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    schema_root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SCHEMA
    schema = build(schema_root.resolve())
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(render(schema))
    counts = ", ".join(f"{len(schema[part])} {part}" for part in schema)
    print(f"wrote {counts} to {TARGET}")


if __name__ == "__main__":
    main()
