"""The few commands that need more than their schema: one small hook each.

A hook may check a command against its recipients before it is queued (and adjust it), add
what only the server has at delivery, or act on the device's acknowledgement. Hooks that need
a higher layer are registered by it (enrollment registers InstallProfile's signing and
ProfileList's reconciliation from its AppConfig): the queue knows no profile.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .definitions import CatalogError
from .device_queries import QUERY_RIGHTS


class AdminOnly(CatalogError):
    """A command only an administrator may queue, asked by someone else (the API: 403)."""


@dataclass(frozen=True)
class Recipient:
    """What the catalog needs to know of one device the command goes to."""

    id: int
    udid: str
    access_rights: int
    platform: str
    os_version: str
    lost_mode: bool
    has_unlock_token: bool


@dataclass(frozen=True)
class Draft:
    """A command about to be queued, with the devices it goes to and who asks."""

    request_type: str
    command: dict  # the Command dictionary, RequestType included
    recipients: list[Recipient]
    is_admin: bool  # an administrator (superuser, or an operator at the server's shell)
    reason: str = ""
    drop_disallowed_queries: bool = False
    # Per-command choices, e.g. InstallProfile's {"sign": True, "encrypt": False}.
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Hook:
    check: Callable[[Draft], dict] | None = None  # returns the command to queue
    before_send: Callable[[object, dict], None] | None = None  # (device, command) -> adds keys
    on_acknowledged: Callable[[object, dict], list[str]] | None = None  # -> changed fields
    enforced_when_raw: bool = False  # a safety check that even a raw command must pass


def _device_information(draft: Draft) -> dict:
    """Queries must be known; queries some device's rights do not cover are refused or dropped."""
    command = dict(draft.command)
    queries = command.get("Queries", [])
    unknown = sorted(q for q in queries if q not in QUERY_RIGHTS)
    if unknown:
        raise CatalogError(
            f"DeviceInformation: unknown queries {', '.join(unknown)} (queue it raw to send them)",
            key="Queries",
        )
    # Rights every target has: a query is kept only if all of them allow it.
    common = ~0
    for recipient in draft.recipients:
        common &= recipient.access_rights
    disallowed = [q for q in queries if QUERY_RIGHTS[q] & common != QUERY_RIGHTS[q]]
    if disallowed and not draft.drop_disallowed_queries:
        raise CatalogError(
            "DeviceInformation: the devices' AccessRights do not allow "
            f"{', '.join(disallowed)} (drop them, or enroll with more rights)",
            key="Queries",
        )
    command["Queries"] = [q for q in queries if q not in disallowed]
    if queries and not command["Queries"]:
        raise CatalogError(
            "DeviceInformation: no query is left that the AccessRights allow", key="Queries"
        )
    return command


def _install_application(draft: Draft) -> dict:
    given = [k for k in ("iTunesStoreID", "ManifestURL", "Identifier") if k in draft.command]
    if len(given) != 1:
        raise CatalogError(
            "InstallApplication: give exactly one of iTunesStoreID, ManifestURL, Identifier"
            + (f" (got {', '.join(given)})" if given else "")
        )
    return draft.command


def _erase_device(draft: Draft) -> dict:
    """Administrators only (it destroys the device's data); a Mac needs its six-digit PIN."""
    if not draft.is_admin:
        raise AdminOnly("EraseDevice: only an administrator may erase a device")
    pin = draft.command.get("PIN")
    if pin is not None and not re.fullmatch(r"\d{6}", pin):
        raise CatalogError("EraseDevice: PIN must be six digits", key="PIN")
    macs = [r.udid for r in draft.recipients if r.platform == "macOS"]
    if macs and pin is None:
        raise CatalogError(
            "EraseDevice: a Mac needs the six-digit Find My PIN (PIN) to be erased: "
            + ", ".join(macs[:5]),
            key="PIN",
        )
    return draft.command


def _clear_passcode(draft: Draft) -> dict:
    """The UnlockToken is a master passcode: admins only, with a reason, never to lost devices."""
    if not draft.is_admin:
        raise AdminOnly("ClearPasscode: only an administrator may clear a passcode")
    if not draft.reason.strip():
        raise CatalogError("ClearPasscode: state the reason (it goes into the audit log)")
    lost = [r.udid for r in draft.recipients if r.lost_mode]
    if lost:
        raise CatalogError("ClearPasscode: never sent to a lost device: " + ", ".join(lost[:5]))
    missing = [r.udid for r in draft.recipients if not r.has_unlock_token]
    if missing:
        raise CatalogError("ClearPasscode: no UnlockToken escrowed for " + ", ".join(missing[:5]))
    if "UnlockToken" in draft.command:
        raise CatalogError("ClearPasscode: the UnlockToken is added by the server at delivery")
    return draft.command


def _attach_unlock_token(device, command: dict) -> None:
    # Attached at delivery, never stored with the command.
    if device.unlock_token:
        command["UnlockToken"] = device.unlock_token


def _settings(draft: Draft) -> dict:
    if not draft.command.get("Settings"):
        raise CatalogError("Settings: give at least one setting item", key="Settings")
    return draft.command


def _declarative_management(draft: Draft) -> dict:
    data = draft.command.get("Data")
    if data is not None:
        try:
            tokens = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise CatalogError(
                "DeclarativeManagement: Data must be JSON (the SyncTokens)", key="Data"
            ) from None
        if not isinstance(tokens, dict):
            raise CatalogError("DeclarativeManagement: Data must be a JSON object", key="Data")
    return draft.command


def _lost_mode(value: bool):
    def apply(device, report: dict) -> list[str]:
        device.lost_mode = value
        return ["lost_mode"]

    return apply


def _released(device, report: dict) -> list[str]:
    """DeviceConfigured acknowledged: the device leaves Setup Assistant, configured."""
    device.awaiting_configuration = False
    return ["awaiting_configuration"]


HOOKS: dict[str, Hook] = {
    "DeviceInformation": Hook(check=_device_information),
    "InstallApplication": Hook(check=_install_application),
    "EraseDevice": Hook(check=_erase_device),
    "ClearPasscode": Hook(
        check=_clear_passcode, before_send=_attach_unlock_token, enforced_when_raw=True
    ),
    "Settings": Hook(check=_settings),
    "DeclarativeManagement": Hook(check=_declarative_management),
    "EnableLostMode": Hook(on_acknowledged=_lost_mode(True)),
    "DisableLostMode": Hook(on_acknowledged=_lost_mode(False)),
    "DeviceConfigured": Hook(on_acknowledged=_released),
}


def register_hook(request_type: str, hook: Hook) -> None:
    """Add the hook of `request_type` (from a higher layer's AppConfig); one hook per type."""
    existing = HOOKS.get(request_type)
    if existing is not None and existing != hook:
        raise ValueError(f"{request_type} already has a hook")
    HOOKS[request_type] = hook
