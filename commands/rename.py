"""Renaming a device. The name is the device's own (DeviceName, as it reports it): the portal
stores no name of its own, it asks the device to rename itself with a Settings command
(supervised iOS, macOS 10.10+, visionOS 2+) and, when the device's AccessRights allow the
query, a DeviceInformation for DeviceName right after, so the new name shows in the inventory
as soon as the device has applied it."""

from django.db import transaction

from devices.models import Device

from .catalog.device_queries import QUERY_RIGHTS
from .models import Command
from .queue import EnqueueError, enqueue

MAX_NAME = 255


def rename_device(
    device: Device, name: str, *, user=None, queued_by: str = "system", address=None
) -> list[Command]:
    """Queue the Settings DeviceName command (and the DeviceName query); returns what was
    queued. Raises EnqueueError naming the problem; then nothing is queued."""
    name = (name or "").strip()
    if not name:
        raise EnqueueError("name: give the device's new name")
    if len(name) > MAX_NAME:
        raise EnqueueError(f"name: at most {MAX_NAME} characters")
    settings = {"Settings": [{"Item": "DeviceName", "DeviceName": name}]}
    common = {"user": user, "queued_by": queued_by, "address": address}
    with transaction.atomic():
        queued = [enqueue(device, "Settings", settings, **common)]
        needed = QUERY_RIGHTS["DeviceName"]
        if device.access_rights & needed == needed:
            queued.append(
                enqueue(device, "DeviceInformation", {"Queries": ["DeviceName"]}, **common)
            )
    return queued
