"""Turning a query command's Acknowledged result into inventory.

The inventory is what the latest results said, with when each was reported: every query
command's answer is stored as the device's InventoryReport of that kind, and the lists that
the portal searches (profiles, apps, certificates) are also kept as rows, replaced as a whole
by each new list. DeviceInformation also fills the identity columns of Device.

A result is read and checked completely before anything is written, and everything is
written in one transaction, so a malformed result leaves the inventory as it was.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from django.db import connection, models, transaction
from django.utils import timezone

from mdm_portal import hot_sql
from mdm_portal.plist import has_type
from mdm_portal.plist import type_name as plist_type_name

from .models import (
    Device,
    InstalledApplication,
    InstalledCertificate,
    InstalledProfile,
    InventoryReport,
)
from .platforms import platform_for

Kind = InventoryReport.Kind

INVENTORY_REQUEST_TYPES: frozenset[str] = frozenset(Kind.values)

# DeviceInformation query keys that are also Device columns.
DEVICE_COLUMNS: dict[str, str] = {
    "SerialNumber": "serial_number",
    "DeviceName": "device_name",
    "Model": "model",
    "ModelName": "model_name",
    "ProductName": "product_name",
    "OSVersion": "os_version",
    "BuildVersion": "build_version",
    "IMEI": "imei",
    "MEID": "meid",
}

# The result key holding each kind's answer, and the type Apple's schema gives it.
# Restrictions has two keys and is read by _restrictions_payload.
_PAYLOAD_KEYS: dict[str, tuple[str, str]] = {
    Kind.DEVICE_INFORMATION: ("QueryResponses", "dictionary"),
    Kind.SECURITY_INFO: ("SecurityInfo", "dictionary"),
    Kind.PROFILE_LIST: ("ProfileList", "array"),
    Kind.PROVISIONING_PROFILE_LIST: ("ProvisioningProfileList", "array"),
    Kind.CERTIFICATE_LIST: ("CertificateList", "array"),
    Kind.INSTALLED_APPLICATION_LIST: ("InstalledApplicationList", "array"),
    Kind.MANAGED_APPLICATION_LIST: ("ManagedApplicationList", "dictionary"),
}

# Dictionaries keyed by an identifier (app, profile) whose values are themselves dictionaries.
_DICTS_OF_DICTS = {"ManagedApplicationList", "ProfileRestrictions"}

_BULK_BATCH_SIZE = 1000


class InventoryError(ValueError):
    """A result that cannot be inventory: a missing key or a value of the wrong type."""


def json_safe(value: Any) -> Any:
    """Plist values as JSON: data as base64, dates as ISO 8601, recursively.

    Raises TypeError for a value no plist can hold.
    """
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        # plistlib gives naive datetimes that are in UTC: say so in the string.
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity, and PostgreSQL's jsonb rejects them
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"{type(value).__name__} is not a plist value")


@dataclass
class _Inventory:
    """What one result says, checked and ready to be written."""

    data: Any  # the report's data, JSON-safe
    row_model: type[models.Model] | None = None  # the rows this kind replaces, if any
    rows: list[models.Model] = field(default_factory=list)
    device_values: dict[str, str] = field(default_factory=dict)  # Device columns to set


def apply_result(
    device: Device,
    request_type: str,
    result: dict,
    reported_at: datetime | None = None,
    *,
    savepoint: bool = True,
) -> bool:
    """Update the device's inventory from one Acknowledged result.

    Returns False if this request type carries no inventory, True otherwise. A result older
    than the stored report of its kind is ignored (and True returned): the inventory already
    holds something newer. Raises InventoryError, having written nothing, if the result is
    malformed.
    """
    if request_type not in INVENTORY_REQUEST_TYPES:
        return False
    _checked(result, "dictionary", f"the {request_type} result")
    status = result.get("Status", "Acknowledged")
    if status != "Acknowledged":
        raise InventoryError(f"the {request_type} result has Status {status!r}, not Acknowledged")
    if reported_at is None:
        reported_at = timezone.now()
    elif timezone.is_naive(reported_at):
        raise ValueError("reported_at must be timezone-aware")

    inventory = _read(request_type, result, device, reported_at)
    # `savepoint=False`: the caller's own savepoint already holds the writes together.
    with transaction.atomic(savepoint=savepoint):
        _write(device, request_type, inventory, reported_at)
    return True


# Reading: everything is checked here, before anything is written.


def _read(kind: str, result: dict, device: Device, reported_at: datetime) -> _Inventory:
    if kind == Kind.RESTRICTIONS:
        payload = _restrictions_payload(result)
    else:
        key, expected = _PAYLOAD_KEYS[kind]
        payload = _payload(result, key, expected)
    try:
        inventory = _Inventory(data=json_safe(payload))
    except TypeError as exc:
        raise InventoryError(f"the {kind} result holds a non-plist value: {exc}") from exc

    if kind == Kind.DEVICE_INFORMATION:
        inventory.device_values = _device_values(payload)
    elif kind in _ROW_READERS:
        inventory.row_model, read_rows = _ROW_READERS[kind]
        inventory.rows = read_rows(payload, device, reported_at)
    return inventory


def _payload(result: dict, key: str, expected: str) -> dict | list:
    """result[key], which must be a plist <expected> ("dictionary" or "array"): an array of
    dictionaries, or for some keys a dictionary of dictionaries."""
    value = _checked(result.get(key), expected, key)
    if expected == "array":
        for index, entry in enumerate(value):
            _checked(entry, "dictionary", f"{key}[{index}]")
    if key in _DICTS_OF_DICTS:
        for name, entry in value.items():
            _checked(entry, "dictionary", f"{key}[{name!r}]")
    return value


def _restrictions_payload(result: dict) -> dict:
    payload = {"GlobalRestrictions": _payload(result, "GlobalRestrictions", "dictionary")}
    # Only there when the command asked for it with ProfileRestrictions = true.
    if "ProfileRestrictions" in result:
        payload["ProfileRestrictions"] = _payload(result, "ProfileRestrictions", "dictionary")
    return payload


def _device_values(answers: dict) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, column in DEVICE_COLUMNS.items():
        if key in answers:
            values[column] = _text(answers, key, "QueryResponses")
    platform = platform_for(values.get("product_name", ""), values.get("model_name", ""))
    if platform:
        values["platform"] = platform
    if "IsSupervised" in answers:
        values["is_supervised"] = _boolean(answers, "IsSupervised", "QueryResponses")
    return _fit(Device, values)


def _profile_rows(entries: list[dict], device: Device, at: datetime) -> list[InstalledProfile]:
    return [
        InstalledProfile(
            device=device,
            reported_at=at,
            **_fit(
                InstalledProfile,
                {
                    "identifier": _text(entry, "PayloadIdentifier", where),
                    "uuid": _text(entry, "PayloadUUID", where),
                    "display_name": _text(entry, "PayloadDisplayName", where),
                    "organization": _text(entry, "PayloadOrganization", where),
                    "version": _integer(entry, "PayloadVersion", where, bits=32),
                    "is_managed": _boolean(entry, "IsManaged", where),
                    "is_encrypted": _boolean(entry, "IsEncrypted", where),
                },
            ),
        )
        for where, entry in _entries("ProfileList", entries)
    ]


def _application_rows(
    entries: list[dict], device: Device, at: datetime
) -> list[InstalledApplication]:
    return [
        InstalledApplication(
            device=device,
            reported_at=at,
            **_fit(
                InstalledApplication,
                {
                    "identifier": _text(entry, "Identifier", where),
                    "name": _text(entry, "Name", where),
                    "version": _text(entry, "Version", where),
                    "short_version": _text(entry, "ShortVersion", where),
                    "bundle_size": _integer(entry, "BundleSize", where, bits=64),
                    "dynamic_size": _integer(entry, "DynamicSize", where, bits=64),
                    "is_managed": _boolean(entry, "IsManaged", where),
                },
            ),
        )
        for where, entry in _entries("InstalledApplicationList", entries)
        # An app without an identifier cannot be told apart from the others.
        if entry.get("Identifier")
    ]


def _certificate_rows(
    entries: list[dict], device: Device, at: datetime
) -> list[InstalledCertificate]:
    rows = []
    for where, entry in _entries("CertificateList", entries):
        der = bytes(_checked(entry.get("Data"), "data", f"{where}.Data (a DER certificate)"))
        values = {
            "common_name": _text(entry, "CommonName", where),
            "is_identity": bool(_boolean(entry, "IsIdentity", where)),
            "sha256": hashlib.sha256(der).hexdigest(),
            "not_after": _not_after(der),
        }
        values = _fit(InstalledCertificate, values)
        rows.append(InstalledCertificate(device=device, reported_at=at, **values))
    return rows


def _not_after(der: bytes) -> datetime | None:
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None  # not a certificate we can parse: its fingerprint is still worth keeping


# Each kind kept as rows: the model, and how a validated list becomes its rows.
_ROW_READERS: dict[str, tuple[type[models.Model], Callable[..., list]]] = {
    Kind.PROFILE_LIST: (InstalledProfile, _profile_rows),
    Kind.INSTALLED_APPLICATION_LIST: (InstalledApplication, _application_rows),
    Kind.CERTIFICATE_LIST: (InstalledCertificate, _certificate_rows),
}


# Field readers: a missing key is blank (or None); a value of the wrong type is an error, since
# the column would otherwise hold something the device never meant.


def _entries(key: str, entries: list[dict]):
    for index, entry in enumerate(entries):
        yield f"{key}[{index}]", entry


def _checked(value: Any, expected: str, what: str) -> Any:
    """`value` if it is a plist <expected>; else InventoryError naming `what`."""
    if not has_type(value, expected):
        # Plists have no null: None means the key was not there at all.
        if value is None:
            raise InventoryError(f"{what} is missing (expected <{expected}>)")
        raise InventoryError(f"{what} must be <{expected}>, not {plist_type_name(value)}")
    return value


def _text(entry: dict, key: str, where: str) -> str:
    return _checked(entry.get(key, ""), "string", f"{where}.{key}")


def _integer(entry: dict, key: str, where: str, bits: int) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    _checked(value, "integer", f"{where}.{key}")
    # Plist integers may be wider than the column, which PostgreSQL would refuse.
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise InventoryError(f"{where}.{key} is out of range: {value}")
    return value


def _boolean(entry: dict, key: str, where: str) -> bool | None:
    value = entry.get(key)
    return value if value is None else _checked(value, "boolean", f"{where}.{key}")


def _fit(model: type[models.Model], values: dict[str, Any]) -> dict[str, Any]:
    """Truncate strings to their column's max_length: PostgreSQL rejects longer ones."""
    for name, value in values.items():
        max_length = model._meta.get_field(name).max_length
        if isinstance(value, str) and max_length:
            values[name] = value[:max_length]
    return values


# Writing: called inside transaction.atomic().


def _write(device: Device, kind: str, inventory: _Inventory, reported_at: datetime) -> None:
    if not _store_report(device.pk, kind, inventory.data, reported_at):
        return  # a newer result is already stored; this one would turn the clock back
    if inventory.row_model is not None:
        _replace_rows(device, inventory.row_model, inventory.rows)
    if inventory.device_values:
        _update_device(device, inventory.device_values)


def _store_report(device_id: int, kind: str, data: Any, reported_at: datetime) -> bool:
    """Insert or replace the device's report of `kind`, unless a newer one is stored; False
    then. One statement, which also locks the row, so two results of one kind for one device
    cannot interleave. A DeviceInformation answer is merged into the stored one: a query for
    some keys must not erase the others (each key keeps the value of the latest result)."""
    table = InventoryReport._meta.db_table
    if connection.vendor == "postgresql":
        merged = f"{table}.data || EXCLUDED.data"
        is_object = f"jsonb_typeof({table}.data) = 'object'"
    else:  # SQLite: RFC 7396 merge (results hold no nulls, which it would drop)
        merged = f"json_patch({table}.data, EXCLUDED.data)"
        is_object = f"json_type({table}.data) = 'object'"
    sql = (
        f"INSERT INTO {table} (device_id, kind, data, reported_at) "  # noqa: S608 - our names
        "VALUES (%s, %s, %s, %s) ON CONFLICT (device_id, kind) DO UPDATE SET "
        f"data = CASE WHEN EXCLUDED.kind = '{Kind.DEVICE_INFORMATION}' AND {is_object} "
        f"THEN {merged} ELSE EXCLUDED.data END, reported_at = EXCLUDED.reported_at "
        f"WHERE {table}.reported_at <= EXCLUDED.reported_at RETURNING id"
    )
    data_field = InventoryReport._meta.get_field("data")
    params = [
        device_id,
        kind,
        data_field.get_db_prep_save(data, connection),
        connection.ops.adapt_datetimefield_value(reported_at),
    ]
    return bool(hot_sql.fetch(sql, params))


def _replace_rows(device: Device, model: type[models.Model], rows: list[models.Model]) -> None:
    # The list is the device's whole list: rows it no longer has must go. Both are single
    # bulk queries (the row models have no dependents), whatever the list's length.
    model.objects.filter(device=device).delete()
    model.objects.bulk_create(rows, batch_size=_BULK_BATCH_SIZE)


def _update_device(device: Device, values: dict[str, Any]) -> None:
    """Set the device's inventory columns in one statement that writes the row only when a
    value differs (no need to read the row first)."""
    distinct = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"
    columns, params, checks, check_params = [], [], [], []
    for name, value in values.items():
        column = Device._meta.get_field(name)
        prepared = column.get_db_prep_save(value, connection)
        columns.append(f"{column.column} = %s")
        params.append(prepared)
        checks.append(f"{column.column} {distinct} %s")
        check_params.append(prepared)
        setattr(device, name, value)
    sql = (
        f"UPDATE {Device._meta.db_table} SET {', '.join(columns)} "  # noqa: S608 - our names
        f"WHERE id = %s AND ({' OR '.join(checks)})"
    )
    hot_sql.fetch(sql, [*params, device.pk, *check_params])
