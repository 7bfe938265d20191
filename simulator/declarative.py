"""Declarative Device Management as a simulated device runs it: the sync a DeclarativeManagement
command asks for, over DeclarativeManagement check-in messages (MessageType
DeclarativeManagement, with an Endpoint and optional Data, PUT to the CheckInURL and signed as
every check-in of the device is).

1. `tokens`: the SyncTokens. When their DeclarationsToken is the one last synced, nothing
   changed and the device goes straight to applying (and, unless a status changed, reports
   nothing).
2. `declaration-items`: the manifest, each declaration's Identifier and ServerToken by kind.
   Declarations no longer listed are dropped; each listed one the device does not hold at
   that ServerToken is fetched (`declaration/<kind>/<Identifier>`), the others are kept.
3. The assets the configurations being activated reference are loaded (their data
   downloaded, a credential's certificate obtained: declarative_assets), then every
   declaration's status is worked out (declarative_apply).
4. `status`: the status report (declarative_status), a FullReport the first time after
   enrollment and then what changed.

Everything is kept in the device's DeclarativeState, so a `--state` restart carries on; the
run's Stats count syncs, declarations fetched by kind, asset downloads, credentials obtained,
status reports and the failures the device reported (each Error code once per declaration
revision). An answer the device cannot use (a refusal, a manifest that is not one) is an
error of the run; a configuration that fails as it was told to is not.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

from . import declarative_apply as apply
from . import declarative_assets as assets
from . import declarative_catalog as catalog
from . import declarative_status as status
from .identity import CHECKIN_CT

if TYPE_CHECKING:
    from .device import SimulatedDevice

MESSAGE_TYPE = "DeclarativeManagement"


def _message(device: SimulatedDevice, endpoint: str, data: bytes | None = None) -> dict:
    message = {"MessageType": MESSAGE_TYPE, "UDID": device.state.udid, "Endpoint": endpoint}
    if data is not None:
        message["Data"] = data
    return message


async def _send(device: SimulatedDevice, endpoint: str, data: bytes | None = None):
    url = device.state.checkin_url or device.state.server_url
    return await device._put("declarative", url, _message(device, endpoint, data), CHECKIN_CT)


def _refused(device: SimulatedDevice, what: str) -> Exception:
    from .device import ExchangeFailed  # device.py imports this module

    device.stats.error(f"declarative: {what}")
    return ExchangeFailed(f"declarative: {what}")


def _json(device: SimulatedDevice, response: httpx.Response, endpoint: str) -> dict:
    if response.status_code != 200:
        raise _refused(device, f"{endpoint} HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise _refused(device, f"{endpoint} answered what is not a JSON object")
    return document


def _sync_token(device: SimulatedDevice, document: dict) -> str:
    tokens = document.get("SyncTokens")
    token = tokens.get("DeclarationsToken") if isinstance(tokens, dict) else None
    if not isinstance(token, str) or not token:
        raise _refused(device, "tokens without SyncTokens.DeclarationsToken")
    return token


def manifest_of(device: SimulatedDevice, document: dict) -> dict[str, tuple[str, str]]:
    """declaration-items as {Identifier: (kind, ServerToken)}."""
    arrays = document.get("Declarations")
    if not isinstance(arrays, dict):
        raise _refused(device, "declaration-items without Declarations")
    found: dict[str, tuple[str, str]] = {}
    for kind in catalog.KINDS:
        name = catalog.MANIFEST_ARRAYS[kind]
        items = arrays.get(name, [])
        if not isinstance(items, list):
            raise _refused(device, f"declaration-items: {name} is not an array")
        for item in items:
            identifier = item.get("Identifier") if isinstance(item, dict) else None
            token = item.get("ServerToken") if isinstance(item, dict) else None
            if not (isinstance(identifier, str) and isinstance(token, str) and identifier):
                raise _refused(device, "declaration-items: an item without Identifier/ServerToken")
            found[identifier] = (kind, token)
    return found


async def fetch(device: SimulatedDevice, kind: str, identifier: str, token: str) -> dict | None:
    """The declaration as the portal serves it, or None (counted) when it does not."""
    response = await _send(device, f"declaration/{kind}/{identifier}")
    if response.status_code != 200:
        device.stats.error(f"declarative: declaration HTTP {response.status_code}")
        return None
    try:
        document = response.json()
    except ValueError:
        document = None
    if (
        not isinstance(document, dict)
        or document.get("Identifier") != identifier
        or not isinstance(document.get("Type"), str)
        or not isinstance(document.get("Payload"), dict)
    ):
        device.stats.error("declarative: a declaration that is not the one asked for")
        return None
    if document.get("ServerToken") != token:
        device.stats.error("declarative: a declaration's ServerToken is not its manifest's")
    device.stats.declarations_fetched[kind] += 1
    return {
        "kind": kind,
        "Type": document["Type"],
        "ServerToken": str(document.get("ServerToken", token)),
        "Payload": document["Payload"],
    }


async def _update(device: SimulatedDevice) -> bool:
    """tokens, and when they changed declaration-items and the declarations; whether the
    manifest changed."""
    memory = device.state.declarative
    token = _sync_token(device, _json(device, await _send(device, "tokens"), "tokens"))
    if token == memory.token:
        return False
    items = _json(device, await _send(device, "declaration-items"), "declaration-items")
    listed = manifest_of(device, items)
    for identifier, held in list(memory.declarations.items()):
        if listed.get(identifier, ("", ""))[0] != held["kind"]:
            del memory.declarations[identifier]  # no longer listed (or now of another kind)
    for identifier, (kind, server_token) in listed.items():
        held = memory.declarations.get(identifier)
        if held is not None and held["ServerToken"] == server_token:
            continue
        fetched = await fetch(device, kind, identifier, server_token)
        if fetched is None:
            memory.declarations.pop(identifier, None)
        else:
            memory.declarations[identifier] = fetched
    memory.token = str(items.get("DeclarationsToken") or token)
    return True


async def _load_assets(device: SimulatedDevice, judge: apply.Device, changed: bool) -> None:
    """Load the assets to activate; kept ones stay unless their ServerToken changed (or they
    failed and the manifest changed: the device tries them again)."""
    memory = device.state.declarative
    for identifier in apply.needed_assets(memory.declarations, judge):
        declaration = memory.declarations[identifier]
        kept = memory.assets.get(identifier)
        if (
            kept is not None
            and kept.get("server_token") == declaration["ServerToken"]
            and (kept["valid"] or not changed)
        ):
            continue
        memory.assets[identifier] = await assets.load(device, identifier, declaration)
    for identifier in list(memory.assets):
        if memory.declarations.get(identifier, {}).get("kind") != "asset":
            del memory.assets[identifier]


def _count_failures(device: SimulatedDevice, arrays: dict) -> None:
    before = device.state.declarative.reported.get(catalog.DECLARATIONS_ITEM)
    known = set(apply.failed_codes(before)) if isinstance(before, dict) else set()
    for failure in set(apply.failed_codes(arrays)) - known:
        device.stats.declarative_failures[failure[2]] += 1


async def sync(device: SimulatedDevice) -> None:
    """One declarative sync of the device, ending with its status report (when due)."""
    state = device.state
    device.stats.declarative_syncs += 1
    changed = await _update(device)
    judge = apply.Device(state, status.device_facts(state), device.fleet.ddm_fail_rate)
    await _load_assets(device, judge, changed)
    arrays = apply.evaluate_all(state.declarative.declarations, state.declarative.assets, judge)
    _count_failures(device, arrays)
    items = status.current_items(state, arrays)
    due = status.report(state.declarative, items)
    if due is not None:
        document, _full = due
        response = await _send(device, "status", json.dumps(document).encode())
        if response.status_code != 200:
            raise _refused(device, f"status HTTP {response.status_code}")
        status.reported(state.declarative, items)
        device.stats.status_reports += 1
    state.declarative.sync_due = False
