"""The status channel: a device's status report (the `status` endpoint), stored.

A report's StatusItems are nested dictionaries ({"device": {"operating-system": {"version":
…}}}); each status item Apple documents is found by its dotted name and checked against its
schema before anything is written. Then, in the caller's transaction:

- the device's status items are updated: a FullReport replaces them, an incremental one is
  merged in (an array of items with identifiers is merged item by item, `_removed` dropping
  one, as Apple's incremental reports mark them);
- `management.declarations` (the full list of what the device has processed) replaces the
  device's DeclarationState rows: each declaration's active / valid state and reasons, and a
  declaration no longer listed is gone from the device;
- the device.* items update the inventory, as a DeviceInformation answer with the same facts
  would (devices.inventory.apply_result).
"""

import copy
import json
from typing import Any

from django.utils import timezone

from devices.inventory import InventoryError, apply_result
from devices.models import Device
from devices.protocol import ProtocolError

from .models import Declaration, DeclarationState, DeviceDeclarations
from .schema import KINDS, STATUS_ARRAYS, STATUS_ITEMS, DeclarationError, validate_payload

# Status items that say what DeviceInformation says, by the query key they answer.
INVENTORY_ITEMS = {
    "device.identifier.serial-number": "SerialNumber",
    "device.model.family": "ModelName",
    "device.model.identifier": "ProductName",
    "device.model.number": "Model",
    "device.operating-system.version": "OSVersion",
    "device.operating-system.build-version": "BuildVersion",
}
DECLARATIONS_ITEM = "management.declarations"
REMOVED = "_removed"


def parse_report(data: bytes | None) -> dict:
    """The report as a dictionary, or a 400 naming what is wrong with it."""
    if data is None:
        raise ProtocolError(
            400, "DeclarativeManagement status: Data (the status report) is missing"
        )
    try:
        report = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(400, "DeclarativeManagement status: Data is not JSON") from None
    if not isinstance(report, dict):
        raise ProtocolError(400, "DeclarativeManagement status: the report is not a JSON object")
    if not isinstance(report.get("StatusItems"), dict):
        raise ProtocolError(400, "DeclarativeManagement status: StatusItems must be an object")
    if not isinstance(report.get("Errors", []), list):
        raise ProtocolError(400, "DeclarativeManagement status: Errors must be an array")
    if not isinstance(report.get("FullReport", False), bool):
        raise ProtocolError(400, "DeclarativeManagement status: FullReport must be a boolean")
    return report


_MISSING = object()


def item_value(items: dict, name: str) -> Any:
    """The value of the status item `name` (dotted) in nested StatusItems, or _MISSING."""
    value: Any = items
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def known_items(items: dict) -> dict[str, Any]:
    """The documented status items the report carries, each checked against its schema."""
    found = {}
    for name, definition in STATUS_ITEMS.items():
        value = item_value(items, name)
        if value is _MISSING:
            continue
        try:
            validate_payload(definition, {name: value})
        except DeclarationError as exc:
            raise ProtocolError(400, f"DeclarativeManagement status: {exc}") from None
        found[name] = value
    return found


def merge(stored: dict, update: dict) -> dict:
    """An incremental report applied to the stored status items (a new dictionary)."""
    merged = copy.deepcopy(stored)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            merged[key] = merge(old, value)
        elif isinstance(value, list) and isinstance(old, list) and _identified(value + old):
            merged[key] = _merge_items(old, value)
        else:
            merged[key] = _without_removed(value)
    return merged


def _identified(items: list) -> bool:
    return bool(items) and all(isinstance(i, dict) and "identifier" in i for i in items)


def _merge_items(old: list, update: list) -> list:
    by_id = {item["identifier"]: item for item in old}
    for item in update:
        if item.get(REMOVED):
            by_id.pop(item["identifier"], None)
        else:
            by_id[item["identifier"]] = item
    return list(by_id.values())


def _without_removed(value):
    if isinstance(value, list):
        return [i for i in value if not (isinstance(i, dict) and i.get(REMOVED))]
    return value


def _failed(valid: str, reasons: list) -> bool:
    return valid == DeclarationState.Validity.INVALID or any(
        str(reason.get("code", "")).startswith("Error.") for reason in reasons
    )


def replace_states(device: Device, processed: dict, now) -> None:
    """The device's DeclarationState rows become what `management.declarations` lists."""
    listed: dict[str, DeclarationState] = {}
    for kind in KINDS:
        for item in processed.get(STATUS_ARRAYS[kind], []):
            reasons = item.get("reasons", [])
            listed[item["identifier"]] = DeclarationState(
                device=device,
                identifier=item["identifier"][:64],
                kind=kind,
                server_token=item["server-token"][:64],
                active=item["active"],
                valid=item["valid"],
                reasons=reasons,
                failed=_failed(item["valid"], reasons),
                reported_at=now,
            )
    ours = dict(
        Declaration.objects.filter(identifier__in=list(listed)).values_list("identifier", "pk")
    )
    for identifier, state in listed.items():
        state.declaration_id = ours.get(identifier)
    DeclarationState.objects.filter(device=device).exclude(identifier__in=list(listed)).delete()
    DeclarationState.objects.bulk_create(
        listed.values(),
        update_conflicts=True,
        unique_fields=["device", "identifier"],
        update_fields=[
            "declaration",
            "kind",
            "server_token",
            "active",
            "valid",
            "reasons",
            "failed",
            "reported_at",
        ],
    )


def _update_inventory(device: Device, items: dict[str, Any], now) -> None:
    answers = {
        INVENTORY_ITEMS[name]: value
        for name, value in items.items()
        if name in INVENTORY_ITEMS and isinstance(value, str)
    }
    if not answers:
        return
    try:
        apply_result(device, "DeviceInformation", {"QueryResponses": answers}, now)
    except InventoryError as exc:
        raise ProtocolError(400, f"DeclarativeManagement status: {exc}") from None


def record_status(device: Device, data: bytes | None) -> None:
    """Store one status report of `device` (checked whole before anything is written)."""
    report = parse_report(data)
    items = known_items(report["StatusItems"])
    now = timezone.now()
    row, _ = DeviceDeclarations.objects.select_for_update().get_or_create(device=device)
    full = report.get("FullReport", False)
    row.status_items = (
        _without_removed_deep(report["StatusItems"])
        if full
        else merge(row.status_items or {}, report["StatusItems"])
    )
    if DECLARATIONS_ITEM in items:
        # A whole list each time, not a change to merge: what is not listed is gone.
        row.status_items.setdefault("management", {})["declarations"] = items[DECLARATIONS_ITEM]
    row.last_report = report
    row.last_report_at = now
    row.last_report_full = full
    row.reports += 1
    row.save()
    if DECLARATIONS_ITEM in items:
        replace_states(device, items[DECLARATIONS_ITEM], now)
    _update_inventory(device, items, now)


def _without_removed_deep(value):
    if isinstance(value, dict):
        return {key: _without_removed_deep(item) for key, item in value.items()}
    return _without_removed(value)
