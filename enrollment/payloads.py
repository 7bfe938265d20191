"""A configuration profile as people read it: each payload's type, identifier and display name,
and its keys and values as nested data, with secrets masked.

Profiles carry credentials (Wi-Fi and VPN passwords, shared secrets, SCEP challenges, PKCS#12
passwords and key data). Nobody reads them in the portal: a text value under a key that names
a secret is replaced by MASKED, and binary data (certificates, PKCS#12 bundles, fonts) is shown
by its size only. Booleans and numbers are shown as they are, so a restriction such as
`allowPasswordAutoFill` stays readable.
"""

import datetime as dt
import plistlib
from dataclasses import dataclass, field
from typing import Any

from mdm_portal.masking import MASKED, is_secret_key

# The payload keys shown as the payload's headline rather than among its settings.
HEADLINE_KEYS = ("PayloadType", "PayloadIdentifier", "PayloadDisplayName", "PayloadUUID")


@dataclass
class Entry:
    """One key and its value: `text` for a scalar, `children` for a dictionary or an array."""

    key: str
    text: str = ""
    children: list["Entry"] = field(default_factory=list)
    kind: str = "text"  # text, masked, data, dict, array
    masked: bool = False


@dataclass
class Payload:
    type: str
    identifier: str
    display_name: str
    uuid: str
    entries: list[Entry]


def entry(key: str, value: Any, *, secret: bool = False) -> Entry:
    """The readable form of `value` under `key`; `secret` when an enclosing key names one."""
    secret = secret or is_secret_key(key)
    if isinstance(value, dict):
        return Entry(
            key,
            kind="dict",
            text=f"{len(value)} key(s)",
            children=[entry(k, v, secret=secret) for k, v in value.items()],
        )
    if isinstance(value, list):
        return Entry(
            key,
            kind="array",
            text=f"{len(value)} item(s)",
            children=[
                entry(f"{index + 1}.", item, secret=secret) for index, item in enumerate(value)
            ],
        )
    if isinstance(value, bytes):
        return Entry(key, kind="data", text=f"data, {len(value):,} bytes (not shown)")
    if isinstance(value, bool):
        return Entry(key, text="true" if value else "false")
    if isinstance(value, int | float):
        return Entry(key, text=str(value))
    if isinstance(value, dt.datetime):
        return Entry(key, text=value.isoformat())
    if secret and value != "":
        return Entry(key, kind="masked", text=MASKED, masked=True)
    return Entry(key, text=str(value))


def readable_payloads(profile: dict) -> list[Payload]:
    """The profile's payloads, each with its settings as entries, secrets masked."""
    payloads = []
    for item in profile.get("PayloadContent") or []:
        if not isinstance(item, dict):
            continue
        payloads.append(
            Payload(
                type=str(item.get("PayloadType", "")),
                identifier=str(item.get("PayloadIdentifier", "")),
                display_name=str(item.get("PayloadDisplayName", "")),
                uuid=str(item.get("PayloadUUID", "")),
                entries=[
                    entry(key, value) for key, value in item.items() if key not in HEADLINE_KEYS
                ],
            )
        )
    return payloads


def profile_settings(profile: dict) -> list[Entry]:
    """The profile's own top-level keys other than its payloads and what the library keeps
    (headline, description, version)."""
    skip = {*HEADLINE_KEYS, "PayloadContent", "PayloadDescription", "PayloadVersion"}
    return [entry(key, value) for key, value in profile.items() if key not in skip]


def stored_profile(payload: bytes) -> dict:
    """The profile dictionary kept in the library (an XML plist)."""
    return plistlib.loads(bytes(payload))
