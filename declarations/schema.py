"""Every declaration Type Apple documents, and the checks of a declaration against it.

The definitions are data: schema.json, which scripts/gen_declarations.py generates from Apple's
declarative schema (declarative/ in github.com/apple/device-management); edit the generator,
not the JSON. The walk over a payload's keys is the command catalog's own
(commands.catalog.definitions.validate_keys), so a declaration is refused for what a command
would be: a missing required key, a wrong type, a value outside Apple's list, a key Apple does
not define, and, for a device, a key or Type its platform or OS version does not support.

This module is plain Python (no Django): scripts and tests use it alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from commands.catalog.definitions import (
    PLATFORMS,
    CatalogError,
    KeySpec,
    example_keys,
    key_spec,
    keys_from_json,
    validate_keys,
)
from mdm_portal.plist import os_version as parse_version

# The kinds, as a Type names them (com.apple.<kind>.…) and as the protocol's paths do
# (declaration/<kind>/<identifier>); the manifest (declaration-items) names them in plural.
KINDS = ("activation", "asset", "configuration", "management")
MANIFEST_ARRAYS = {
    "activation": "Activations",
    "asset": "Assets",
    "configuration": "Configurations",
    "management": "Management",
}
# What the status item management.declarations calls each kind's array.
STATUS_ARRAYS = {
    "activation": "activations",
    "asset": "assets",
    "configuration": "configurations",
    "management": "management",
}
# Apple: "The size of this string should not exceed 64 octets" (Identifier and ServerToken).
MAX_IDENTIFIER_OCTETS = 64
ENVELOPE_KEYS = ("Type", "Identifier", "ServerToken", "Payload")


class DeclarationError(ValueError):
    """A declaration the portal refuses; the message names the problem. `key` is the path
    of the payload key it names (``MinimumLength``, ``Reference.DataURL``), or None."""

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class TypeSupport:
    """How a declaration Type is supported on one platform; introduced None: not at all.
    `enrollments` are Apple's names (supervised, device, user, local)."""

    introduced: str | None
    enrollments: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class DeclarationType:
    name: str
    kind: str
    title: str
    description: str
    keys: tuple[KeySpec, ...]
    platforms: dict[str, TypeSupport] = field(hash=False)
    # The keys as generated (with title, description and default): what a form shows.
    fields: tuple[dict, ...] = field(hash=False, default=())


def _load_json() -> dict:
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _definition(name: str, raw: dict, kind: str = "") -> DeclarationType:
    return DeclarationType(
        name=name,
        kind=raw.get("kind", kind),
        title=raw["title"],
        description=raw["description"],
        keys=tuple(key_spec(key) for key in raw["keys"]),
        platforms={
            platform: TypeSupport(
                info["introduced"], tuple(info["enrollments"]), tuple(info["scopes"])
            )
            for platform, info in raw["platforms"].items()
        },
        fields=tuple(raw["keys"]),
    )


_RAW = _load_json()
TYPES: dict[str, DeclarationType] = {
    name: _definition(name, raw) for name, raw in _RAW["declarations"].items()
}
# The documents an asset's data may be (com.apple.credential.acme, …scep, …).
CREDENTIALS: dict[str, DeclarationType] = {
    name: _definition(name, raw, "credential") for name, raw in _RAW["credentials"].items()
}
# The protocol's own objects (TokensResponse, DeclarationItemsResponse, StatusReport).
PROTOCOL: dict[str, DeclarationType] = {
    name: _definition(name, raw, "protocol") for name, raw in _RAW["protocol"].items()
}
# Status items by their dotted name (device.operating-system.version, management.declarations).
STATUS_ITEMS: dict[str, DeclarationType] = {
    name: _definition(name, raw, "status") for name, raw in _RAW["status_items"].items()
}
# What a device's reason codes mean (Error.ConfigurationCannotBeApplied, Info.Predicate, …).
REASONS: dict[str, str] = dict(_RAW["reasons"])


def types_of_kind(kind: str) -> list[DeclarationType]:
    return sorted((t for t in TYPES.values() if t.kind == kind), key=lambda t: t.name)


def get_type(name: Any) -> DeclarationType:
    if not isinstance(name, str) or not name:
        raise DeclarationError("Type must be a non-empty string", key="Type")
    try:
        return TYPES[name]
    except KeyError:
        raise DeclarationError(
            f"unknown declaration Type {name!r} (not in Apple's declarative schema)", key="Type"
        ) from None


def check_identifier(identifier: Any, what: str = "Identifier") -> str:
    if not isinstance(identifier, str) or not identifier.strip():
        raise DeclarationError(f"{what} must be a non-empty string", key=what)
    if identifier != identifier.strip():
        raise DeclarationError(f"{what} must not start or end with spaces", key=what)
    if len(identifier.encode()) > MAX_IDENTIFIER_OCTETS:
        raise DeclarationError(
            f"{what} is {len(identifier.encode())} octets; Apple allows {MAX_IDENTIFIER_OCTETS}",
            key=what,
        )
    if "/" in identifier:
        # It becomes a path segment of declaration/<kind>/<identifier>.
        raise DeclarationError(f"{what} must not contain '/'", key=what)
    return identifier


def validate_payload(
    declaration_type: DeclarationType,
    payload: Any,
    *,
    platform: str | None = None,
    os_version: str | None = None,
) -> None:
    """Raise DeclarationError unless `payload` fits the Type's keys (and, given a platform
    and OS version, uses no key that platform lacks or got later)."""
    try:
        validate_keys(
            declaration_type.name,
            declaration_type.keys,
            payload,
            platform=platform,
            os_version=os_version,
        )
    except CatalogError as exc:
        raise DeclarationError(str(exc), key=exc.key) from None


def from_json(declaration_type: DeclarationType, document: dict) -> dict:
    """A JSON document of the Type (a credential's data) in plist types, as validate_payload
    takes it: the base64 text of each <data> key as bytes (PKCS#12 Identity, CAFingerprint)."""
    try:
        return keys_from_json(declaration_type.name, declaration_type.keys, document)
    except CatalogError as exc:
        raise DeclarationError(str(exc), key=exc.key) from None


def validate_declaration(declaration: Any) -> DeclarationType:
    """Check a declaration as an admin gives it (JSON: Type, Identifier, Payload; a
    ServerToken is allowed and ignored, since the portal computes its own) and return its
    Type. Raises DeclarationError naming the first problem."""
    if not isinstance(declaration, dict):
        raise DeclarationError(
            f"a declaration must be a JSON object, not {type(declaration).__name__}"
        )
    unknown = sorted(set(declaration) - set(ENVELOPE_KEYS))
    if unknown:
        raise DeclarationError(
            f"unknown key {unknown[0]} (a declaration has {', '.join(ENVELOPE_KEYS)})",
            key=unknown[0],
        )
    for key in ("Type", "Identifier", "Payload"):
        if key not in declaration:
            raise DeclarationError(f"missing required key {key}", key=key)
    declaration_type = get_type(declaration["Type"])
    check_identifier(declaration["Identifier"])
    if not isinstance(declaration["Payload"], dict):
        raise DeclarationError(
            f"{declaration_type.name}: Payload must be a JSON object, "
            f"not {type(declaration['Payload']).__name__}",
            key="Payload",
        )
    validate_payload(declaration_type, declaration["Payload"])
    return declaration_type


def unsupported_reason(
    declaration_type: DeclarationType,
    payload: dict,
    *,
    platform: str,
    os_version: str,
    supervised: bool | None = None,
) -> str | None:
    """Why a device on `platform` `os_version` cannot take this declaration, or None.

    The Type must be supported on the platform, from a version the device has (an unknown
    version passes), and by a supervised-only Type only on a supervised device (known to be
    unsupervised: refused). Then its keys are checked for the platform and version too.
    """
    if platform not in PLATFORMS:
        return None  # a device that has not told us its platform yet: nothing to hold it to
    support = declaration_type.platforms.get(platform)
    if support is None or support.introduced is None:
        return f"{declaration_type.name} is not supported on {platform}"
    have = parse_version(os_version) if os_version else None
    if have is not None and (parse_version(support.introduced) or ()) > have:
        return (
            f"{declaration_type.name} needs {platform} {support.introduced} or later, "
            f"not {os_version}"
        )
    if (
        supervised is False
        and support.enrollments
        and set(support.enrollments) <= {"supervised", "local"}
    ):
        return f"{declaration_type.name} needs a supervised {platform} device"
    try:
        validate_payload(declaration_type, payload, platform=platform, os_version=os_version)
    except DeclarationError as exc:
        return str(exc)
    return None


def example_declaration(declaration_type: DeclarationType, identifier: str) -> dict:
    """A minimal valid declaration of the Type: its required keys, each with a value of its
    type (the command catalog's examples), for forms and tests."""
    return {
        "Type": declaration_type.name,
        "Identifier": identifier,
        "Payload": example_keys(declaration_type.keys),
    }
