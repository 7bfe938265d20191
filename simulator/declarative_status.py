"""A simulated device's status channel: the status items it has (its identity, model and
operating system, its client capabilities, the declarations it holds) and the status reports
it sends with them (the `status` endpoint's Data, Apple's StatusReport).

StatusItems nest by the dotted names ({"device": {"operating-system": {"version": …}}}). The
first report after an enrollment is a FullReport with every item; later ones are incremental:
the items whose value changed since the last report, and management.declarations always,
whole (it lists every declaration the device holds, so one no longer listed is gone).
"""

from __future__ import annotations

import json
from typing import Any

from . import declarative_catalog as catalog
from .state import DeclarativeState, DeviceState

# Marketing names of the simulated fleet's hardware (simulator/state.py HARDWARE).
MARKETING_NAMES = {
    "iPhone15,2": "iPhone 14 Pro",
    "iPhone14,5": "iPhone 13",
    "iPhone16,1": "iPhone 15 Pro",
    "iPad13,18": "iPad (10th generation)",
}


def device_facts(state: DeviceState) -> dict[str, Any]:
    """The device.* status items, by dotted name: what predicates read and reports carry."""
    major = state.os_version.split(".")[0]
    return {
        "device.identifier.serial-number": state.serial,
        "device.identifier.udid": state.udid,
        "device.model.family": state.model_name,
        "device.model.identifier": state.product,
        "device.model.marketing-name": MARKETING_NAMES.get(state.product, state.model_name),
        "device.model.number": state.model,
        "device.operating-system.build-version": state.build_version,
        "device.operating-system.family": state.platform,
        "device.operating-system.marketing-name": f"{state.platform} {major}",
        "device.operating-system.version": state.os_version,
    }


def client_capabilities(state: DeviceState) -> dict:
    return {
        "supported-versions": [catalog.PROTOCOL_VERSION],
        "supported-features": {},
        "supported-payloads": {
            "declarations": catalog.supported_types(state),
            "status-items": sorted(catalog.STATUS_ITEMS),
        },
    }


def current_items(state: DeviceState, declarations: dict[str, list[dict]]) -> dict[str, Any]:
    """Every status item the device reports, by dotted name."""
    return {
        **device_facts(state),
        catalog.CAPABILITIES_ITEM: client_capabilities(state),
        catalog.DECLARATIONS_ITEM: declarations,
    }


def nested(items: dict[str, Any]) -> dict:
    """Dotted names to the nested dictionaries of StatusItems."""
    tree: dict = {}
    for name in sorted(items):
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = items[name]
    return tree


def report(memory: DeclarativeState, items: dict[str, Any]) -> tuple[dict, bool] | None:
    """The next status report for the device's current `items` ((report, full)), or None
    when nothing changed since the last one."""
    full = memory.reports == 0
    if full:
        changed = dict(items)
    else:
        changed = {
            name: value
            for name, value in items.items()
            if _canonical(memory.reported.get(name)) != _canonical(value)
        }
        if not changed:
            return None
        changed[catalog.DECLARATIONS_ITEM] = items[catalog.DECLARATIONS_ITEM]
    document: dict = {"StatusItems": nested(changed), "Errors": []}
    if full:
        document["FullReport"] = True
    return document, full


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def reported(memory: DeclarativeState, items: dict[str, Any]) -> None:
    """Note that `items` are what the portal now knows."""
    memory.reported = json.loads(json.dumps(items))
    memory.reports += 1
