"""Every MDM command Apple documents, and checks of a command payload against it.

The definitions come from schema.json, which scripts/gen_catalog.py generates from Apple's
schema (github.com/apple/device-management, mdm/commands/*.yaml); edit the generator, not
the JSON. This module is plain Python (no Django) so scripts and tests can use it alone.

A payload is the Command dictionary without RequestType. validate_payload() refuses what a
device would refuse or silently ignore: missing required keys, wrong types, values outside
Apple's list, keys Apple does not define and, given the device's platform and OS version,
keys that platform does not support yet. To send something the catalog does not know, the
queue takes a raw command instead.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mdm_portal.plist import has_type, is_plist_value
from mdm_portal.plist import os_version as _os_version

PLATFORMS = ("iOS", "macOS", "tvOS", "visionOS", "watchOS")
# A dictionary whose only subkey has this name takes arbitrary keys (app configurations).
ANY_KEY = "ANY"


class CatalogError(ValueError):
    """A payload (or a name) the catalog refuses; the message says what and where.

    `key` is the path of the key the message names (``PIN``, ``Settings[0].Item``), or None
    when it names no key: forms show the message next to that key's field.
    """

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class KeySpec:
    """One key of a command payload (or an array's item spec, or one alternative item shape).

    `platforms` holds only what Apple states for this key: the OS version that introduced
    it, or None where it is not supported. A platform it does not mention follows the
    command. For a string, `subkeys` lists the values Apple documents (DeviceInformation's
    query names); they are informative, not a closed list - `allowed` is the closed list.
    """

    name: str
    type: str
    required: bool
    allowed: tuple | None
    platforms: dict[str, str | None] = field(hash=False)
    subkeys: tuple[KeySpec, ...]

    @property
    def is_open_dictionary(self) -> bool:
        """A dictionary taking any keys, each valued like the single `ANY` subkey."""
        return self.type == "dictionary" and [s.name for s in self.subkeys] == [ANY_KEY]

    @property
    def is_multi_variant(self) -> bool:
        """An array whose items take one of several dictionary shapes (Settings' items)."""
        return self.type == "array" and len(self.subkeys) > 1


@dataclass(frozen=True)
class PlatformSupport:
    """How a command is supported on one platform; introduced None means not at all."""

    introduced: str | None
    device_channel: bool
    user_channel: bool
    access_right: str | None
    supervised: bool
    requires_dep: bool


@dataclass(frozen=True)
class CommandDefinition:
    request_type: str
    title: str
    description: str
    keys: tuple[KeySpec, ...]
    platforms: dict[str, PlatformSupport] = field(hash=False)


# --- loading -------------------------------------------------------------------------------


def key_spec(raw: dict) -> KeySpec:
    """A key of the generated schema (schema.json's form) as a KeySpec."""
    allowed = raw.get("allowed")
    return KeySpec(
        name=raw["name"],
        type=raw["type"],
        required=raw["required"],
        allowed=tuple(allowed) if allowed is not None else None,
        platforms=dict(raw.get("platforms") or {}),
        subkeys=tuple(key_spec(sub) for sub in raw.get("subkeys") or ()),
    )


def _command(request_type: str, raw: dict) -> CommandDefinition:
    return CommandDefinition(
        request_type=request_type,
        title=raw["title"],
        description=raw["description"],
        keys=tuple(key_spec(key) for key in raw["keys"]),
        platforms={name: PlatformSupport(**info) for name, info in raw["platforms"].items()},
    )


def _load() -> dict[str, CommandDefinition]:
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    return {rt: _command(rt, raw) for rt, raw in json.loads(text).items()}


DEFINITIONS: dict[str, CommandDefinition] = _load()


def get_definition(request_type: str) -> CommandDefinition:
    try:
        return DEFINITIONS[request_type]
    except KeyError:
        raise CatalogError(f"unknown RequestType {request_type!r}") from None


# --- values --------------------------------------------------------------------------------


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _variant_selector(variants: tuple[KeySpec, ...]) -> str | None:
    """The subkey naming an item's variant: present in every variant, each with a rangelist.

    For Settings that is `Item`, whose single allowed value is the variant's name.
    """
    common = None
    for variant in variants:
        names = {sub.name for sub in variant.subkeys if sub.allowed}
        common = names if common is None else common & names
    if not common:
        return None
    # Prefer Apple's `Item`; otherwise the first such key in schema order.
    return (
        "Item"
        if "Item" in common
        else next(s.name for s in variants[0].subkeys if s.name in common)
    )


def _find_variant(spec: KeySpec, item: Any) -> KeySpec | None:
    """The variant an array item claims by its selector value (None if it claims none)."""
    selector = _variant_selector(spec.subkeys)
    if selector is None or not isinstance(item, dict) or selector not in item:
        return None
    for variant in spec.subkeys:
        for sub in variant.subkeys:
            if sub.name == selector and item[selector] in (sub.allowed or ()):
                return variant
    return None


# --- validation ----------------------------------------------------------------------------

# What a container Apple describes no contents for may hold: any property-list value.
_FREE_FORM = KeySpec(ANY_KEY, "any", False, None, {}, ())


class _Validator:
    """Walks one payload; keeps its name (a RequestType or declaration Type), the target
    platform and what to say of an unknown key, for messages and checks."""

    def __init__(self, name: str, platform: str | None, os_version: str | None, unknown_hint: str):
        if platform is not None and platform not in PLATFORMS:
            raise CatalogError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
        self.request_type = name
        self.unknown_hint = unknown_hint
        self.platform = platform
        self.os_version = os_version
        # Only meaningful with a platform: an OS version alone does not say which OS.
        self.version = _os_version(os_version) if platform and os_version else None

    def error(self, message: str, key: str | None = None) -> CatalogError:
        return CatalogError(f"{self.request_type}: {message}", key=key or None)

    def type_error(self, path: str, wanted: str, value: Any) -> CatalogError:
        wanted = "a property-list value" if wanted == "any" else f"<{wanted}>"
        # None (JSON null) and the like have no plist form at all: say so.
        unencodable = "" if is_plist_value(value) else ", which a plist cannot hold"
        return self.error(
            f"key {path} must be {wanted}, not {type(value).__name__}{unencodable}", path
        )

    def dictionary(self, specs: tuple[KeySpec, ...], value: dict, path: str) -> None:
        """Check a dictionary against its subkeys: unknown, then missing, then each value."""
        for key in value:
            if not isinstance(key, str):
                raise self.error(f"key {_join(path, repr(key))} must be named by a string", path)
        if len(specs) == 1 and specs[0].name == ANY_KEY:
            for key, item in value.items():
                self.value(specs[0], item, _join(path, key))
            return
        if not specs and path:
            # A nested dictionary Apple gives no subkeys: nothing to hold its contents against.
            # (A command without keys, at the top, takes none.)
            self.value(_FREE_FORM, value, path)
            return
        by_name = {spec.name: spec for spec in specs}
        for key in value:
            if key not in by_name:
                raise self.error(
                    f"unknown key {_join(path, key)}{self.unknown_hint}", _join(path, key)
                )
        for spec in specs:
            if spec.required and spec.name not in value:
                raise self.error(
                    f"missing required key {_join(path, spec.name)}", _join(path, spec.name)
                )
        for key, item in value.items():
            self.value(by_name[key], item, _join(path, key))

    def value(self, spec: KeySpec, value: Any, path: str, label: str | None = None) -> None:
        """Check one value: platform support, type, allowed values, then its contents."""
        self.supported(spec, label or path, path)
        if not has_type(value, spec.type):
            raise self.type_error(path, spec.type, value)
        if spec.allowed is not None and value not in spec.allowed:
            choices = ", ".join(repr(a) for a in spec.allowed)
            raise self.error(f"key {path} must be one of {choices}, not {value!r}", path)
        if spec.type == "dictionary":
            self.dictionary(spec.subkeys, value, path)
        elif spec.type == "array":
            self.array(spec, value, path)

    def array(self, spec: KeySpec, value: list | tuple, path: str) -> None:
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not spec.subkeys:
                self.value(_FREE_FORM, item, item_path)
            elif spec.is_multi_variant:
                variant = self.variant(spec, item, item_path)
                self.value(variant, item, item_path, label=f"{item_path} ({variant.name})")
            else:
                self.value(spec.subkeys[0], item, item_path)

    def variant(self, spec: KeySpec, item: Any, path: str) -> KeySpec:
        """The variant an item of a multi-variant array must match, or a CatalogError."""
        if not isinstance(item, dict):
            raise self.type_error(path, "dictionary", item)
        selector = _variant_selector(spec.subkeys)
        if selector is None:
            # No selector key: accept the first variant the item validates against.
            for variant in spec.subkeys:
                try:
                    self.value(variant, item, path)
                except CatalogError:
                    continue
                return variant
            raise self.error(f"key {path} matches none of {', '.join(self.names(spec))}", path)
        if selector not in item:
            raise self.error(
                f"missing required key {path}.{selector} (one of {', '.join(self.names(spec))})",
                f"{path}.{selector}",
            )
        variant = _find_variant(spec, item)
        if variant is None:
            raise self.error(
                f"key {path}.{selector} matches no variant: must be one of "
                f"{', '.join(self.names(spec))}, not {item[selector]!r}",
                f"{path}.{selector}",
            )
        return variant

    @staticmethod
    def names(spec: KeySpec) -> list[str]:
        """What an item may be: its selector's allowed values, else the variants' names."""
        selector = _variant_selector(spec.subkeys)
        return [
            str(allowed)
            for variant in spec.subkeys
            for sub in variant.subkeys
            if sub.name == selector
            for allowed in sub.allowed or ()
        ] or [variant.name for variant in spec.subkeys]

    def supported(self, spec: KeySpec, where: str, path: str) -> None:
        """Refuse a key Apple marks 'n/a' on the platform, or newer than the device's OS."""
        if self.platform is None or self.platform not in spec.platforms:
            return
        introduced = spec.platforms[self.platform]
        if introduced is None:
            raise self.error(f"key {where} is not supported on {self.platform}", path)
        if self.version is not None and (_os_version(introduced) or ()) > self.version:
            raise self.error(
                f"key {where} needs {self.platform} {introduced} or later, not {self.os_version}",
                path,
            )


def validate_payload(
    definition: CommandDefinition,
    payload: dict,
    *,
    platform: str | None = None,
    os_version: str | None = None,
) -> None:
    """Raise CatalogError unless `payload` (the Command without RequestType) fits the schema.

    With `platform` ('iOS', 'macOS', 'tvOS', 'visionOS', 'watchOS'), keys Apple marks as
    unsupported there are refused too; with `os_version` as well, keys introduced in a later
    version. Whether the command itself runs on that platform is the caller's question
    (definition.platforms).
    """
    body = payload
    if isinstance(payload, dict):
        body = {key: value for key, value in payload.items() if key != "RequestType"}
    validate_keys(
        definition.request_type,
        definition.keys,
        body,
        platform=platform,
        os_version=os_version,
        unknown_hint=" (queue it raw to send keys the catalog does not know)",
    )


def validate_keys(
    name: str,
    keys: tuple[KeySpec, ...],
    payload: dict,
    *,
    platform: str | None = None,
    os_version: str | None = None,
    unknown_hint: str = "",
) -> None:
    """Raise CatalogError unless the dictionary `payload` fits `keys`: the one walk over
    Apple's key specs, for command payloads and declaration payloads alike. Messages start
    with `name`; `unknown_hint` follows the name of a key the schema does not know."""
    validator = _Validator(name, platform, os_version, unknown_hint)
    if not isinstance(payload, dict):
        raise validator.error(f"the payload must be a dictionary, not {type(payload).__name__}")
    validator.dictionary(keys, payload, "")


# --- JSON input ----------------------------------------------------------------------------


def from_json(definition: CommandDefinition, payload: dict) -> dict:
    """Turn a payload given as JSON into plist types: base64 strings of `data` keys -> bytes.

    JSON has no binary type, so `data` values arrive base64-encoded. Everything else is left
    as given (validate_payload() judges it); keys the schema does not know are kept as is.
    """
    return keys_from_json(definition.request_type, definition.keys, payload)


def keys_from_json(name: str, keys: tuple[KeySpec, ...], payload: dict) -> dict:
    """from_json for any keys (a declaration's credential document, which is JSON too);
    `name` starts the message of a value that is not base64."""
    return _json_dictionary(name, keys, payload, "")


def _json_dictionary(rt: str, specs: tuple[KeySpec, ...], value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        return value
    if len(specs) == 1 and specs[0].name == ANY_KEY:
        return {k: _json_value(rt, specs[0], v, _join(path, k)) for k, v in value.items()}
    by_name = {spec.name: spec for spec in specs}
    return {
        key: _json_value(rt, by_name[key], item, _join(path, key)) if key in by_name else item
        for key, item in value.items()
    }


def _json_value(rt: str, spec: KeySpec, value: Any, path: str) -> Any:
    if spec.type == "data" and isinstance(value, str):
        try:
            # Line breaks are common in pasted base64; they carry no data.
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CatalogError(
                f"{rt}: key {path} must be base64 for <data>: {exc}", key=path
            ) from None
    if spec.type == "dictionary":
        return _json_dictionary(rt, spec.subkeys, value, path)
    if spec.type == "array" and isinstance(value, list) and spec.subkeys:
        return [_json_item(rt, spec, item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _json_item(rt: str, spec: KeySpec, item: Any, path: str) -> Any:
    if not spec.is_multi_variant:
        return _json_value(rt, spec.subkeys[0], item, path)
    variant = _find_variant(spec, item)
    return item if variant is None else _json_value(rt, variant, item, path)


# --- examples ------------------------------------------------------------------------------

_EXAMPLES: Mapping[str, Any] = {
    "string": "example",
    "boolean": False,
    "integer": 0,
    "real": 0.0,
    "date": datetime.datetime(2001, 1, 1),  # plistlib writes naive datetimes as UTC
    "data": b"example",
    "any": "example",
}


def example_payload(definition: CommandDefinition) -> dict:
    """A minimal valid payload: the required keys only, each with a value of its type."""
    return example_keys(definition.keys)


def example_keys(specs: tuple[KeySpec, ...]) -> dict:
    return {spec.name: _example(spec) for spec in specs if spec.required and spec.name != ANY_KEY}


def _example(spec: KeySpec) -> Any:
    if spec.allowed:
        return spec.allowed[0]
    if spec.type == "dictionary":
        return example_keys(spec.subkeys)
    if spec.type == "array":
        # One item; for alternative item shapes, the first (its selector names it).
        return [_example(spec.subkeys[0])] if spec.subkeys else []
    if spec.type == "string" and spec.subkeys:
        return spec.subkeys[0].name  # a documented value, e.g. a DeviceInformation query
    return _EXAMPLES[spec.type]
