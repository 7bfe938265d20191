"""Helpers for declarative-management tests: a device's DeclarativeManagement messages over
real check-in requests, its asset downloads, and a small set of declarations."""

import json

from commands.models import QueuedCommand
from declarations.sets import assign, create_set
from declarations.store import save_declaration
from devices.models import Device
from tests.simulator import CHECKIN_CT, SimulatedDevice, sign_detached

PASSCODE = {
    "Type": "com.apple.configuration.passcode.settings",
    "Identifier": "passcode",
    "Payload": {"MinimumLength": 6, "RequireAlphanumericPasscode": True},
}
ORGANIZATION = {
    "Type": "com.apple.management.organization-info",
    "Identifier": "org",
    "Payload": {"Name": "Example Corp"},
}
ACTIVATION = {
    "Type": "com.apple.activation.simple",
    "Identifier": "activate-passcode",
    "Payload": {"StandardConfigurations": ["passcode"]},
}


def declarative(device: SimulatedDevice, endpoint: str, data: bytes | None = None, path=None):
    keys = {"Endpoint": endpoint}
    if data is not None:
        keys["Data"] = data
    return device.checkin("DeclarativeManagement", path=path or "/mdm/checkin", **keys)


def json_of(response) -> dict:
    assert response.status == 200, response.body
    return json.loads(response.body)


def status_report(items: dict, *, full: bool = False, errors=None) -> bytes:
    report = {"StatusItems": items, "Errors": errors or []}
    if full:
        report["FullReport"] = True
    return json.dumps(report).encode()


def declaration_status(identifier, token, *, active=True, valid="valid", reasons=None) -> dict:
    item = {"identifier": identifier, "server-token": token, "active": active, "valid": valid}
    if reasons is not None:
        item["reasons"] = reasons
    return item


def processed(**arrays) -> dict:
    """A management.declarations status item: the four arrays, given ones filled."""
    lists = {
        kind: arrays.get(kind, [])
        for kind in ("activations", "configurations", "assets", "management")
    }
    return {"management": {"declarations": lists}}


def declarative_commands(udid: str) -> list[dict]:
    """The DeclarativeManagement commands queued for a device, oldest first, as sent."""
    rows = QueuedCommand.objects.filter(
        device__udid=udid, request_type="DeclarativeManagement"
    ).order_by("id")
    return [row.command.command_dict() for row in rows]


def sync_tokens_of(command: dict) -> dict:
    return json.loads(command["Data"])["SyncTokens"]


def give(device: SimulatedDevice, *declarations: dict, set_name: str = "set") -> None:
    """Store the declarations and assign them, as one set, to the device."""
    stored = [save_declaration(d, by="tests")[0] for d in declarations]
    declaration_set = create_set(set_name, by="tests")
    declaration_set.declarations.add(*stored)
    assign(declaration_set, devices=Device.objects.filter(udid=device.udid), by="tests")


def download(client, device: SimulatedDevice, url: str, *, signed: bool = True):
    """GET an asset's data as the device does with Authentication MDM: Mdm-Signature over
    the empty body."""
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    headers = (
        {"Mdm-Signature": sign_detached(b"", device.certificate, device.key)} if signed else {}
    )
    return client.get("/" + path, headers=headers)


__all__ = ["CHECKIN_CT"]
