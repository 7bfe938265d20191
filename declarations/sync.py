"""Telling devices that their declarations changed.

`resync(device_ids)` runs after anything that may change what devices should have (a
declaration edited or deleted, a set's contents or assignments, group membership, a first
TokenUpdate). For each managed device it computes the manifest's DeclarationsToken; where that
differs from the token last advertised to the device, it records the new one and queues one
DeclarativeManagement command whose Data carries the SyncTokens, so the device syncs. A device
whose token did not change gets nothing: tokens, and commands, change exactly when the set does.

`advertise(device)` is what the `tokens` and `declaration-items` endpoints stand on: the
device's current manifest and the SyncTokens for it, recorded as advertised. The Timestamp is
when the token was first advertised, so asking again gives the same answer. The items of the
last declaration-items answer are kept too: a declaration fetched after it is served at the
revision that answer named (models.DeclarationRevision), so one sync sees one consistent set
even if an admin changes a declaration meanwhile (the change queues the device another sync).

`forget_enrollment(device)` runs on Authenticate: a new enrollment starts with no declarations
on the device, so what it was told and reported before is dropped, and the resync at its
first TokenUpdate tells it to sync again when it should have any.
"""

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from commands.catalog import Recipient, unavailable_reason
from commands.queue import enqueue, queueable, supersede_undelivered
from devices.models import Device

from .manifest import items_of, manifest, manifest_of_sets, set_ids_by_device, token_of
from .models import Declaration, DeclarationState, DeviceDeclarations
from .tokens import EMPTY_TOKEN

log = logging.getLogger("mdm.declarations")

COMMAND = "DeclarativeManagement"


def timestamp(value: dt.datetime) -> str:
    """SyncTokens' Timestamp: RFC 3339 in UTC, to the second."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sync_tokens(token: str, at: dt.datetime) -> dict:
    return {"DeclarationsToken": token, "Timestamp": timestamp(at)}


@dataclass(frozen=True)
class Advertised:
    declarations: dict[str, Declaration]
    token: str
    at: dt.datetime

    @property
    def sync_tokens(self) -> dict:
        return sync_tokens(self.token, self.at)


def _record(row: DeviceDeclarations, token: str, now) -> None:
    if row.token != token or row.token_timestamp is None:
        row.token, row.token_timestamp = token, now


def advertise(device: Device, endpoint: str = "", *, with_items: bool = False) -> Advertised:
    """The device's manifest and SyncTokens now, recorded as what it was last told; with
    `with_items` (the declaration-items answer) the manifest's items too, which later fetches
    of a declaration are served by (protocol.declaration)."""
    now = timezone.now()
    declarations = manifest(device)
    token = token_of(declarations)
    row, _ = DeviceDeclarations.objects.select_for_update().get_or_create(device=device)
    _record(row, token, now)
    if with_items:
        row.advertised = items_of(declarations)
    row.first_sync_at = row.first_sync_at or now
    row.last_sync_at = now
    row.last_endpoint = endpoint[:200]
    row.save()
    return Advertised(declarations, row.token, row.token_timestamp)


def forget_enrollment(device: Device) -> None:
    """The device enrolls anew: it holds no declarations and has reported nothing yet."""
    DeviceDeclarations.objects.filter(device=device).delete()
    DeclarationState.objects.filter(device=device).delete()


def _supports_command(device: Device) -> bool:
    recipient = Recipient(
        id=device.pk,
        udid=device.udid,
        access_rights=device.access_rights,
        platform=device.platform,
        os_version=device.os_version,
        lost_mode=device.lost_mode,
        has_unlock_token=False,
    )
    return unavailable_reason(COMMAND, recipient) is None


def resync(device_ids: Iterable[int], *, by: str = "declarations") -> int:
    """Queue a DeclarativeManagement command for each managed device whose declarations
    changed since it was last told; returns how many were queued (one per device)."""
    device_ids = set(device_ids)
    if not device_ids:
        return 0
    with transaction.atomic():
        devices = list(
            queueable(Device.objects.filter(pk__in=device_ids, state=Device.State.ENROLLED))
            .select_for_update(of=("self",))
            .order_by("pk")
        )
        devices = [device for device in devices if _supports_command(device)]
        if not devices:
            return 0
        rows = {
            row.device_id: row
            for row in DeviceDeclarations.objects.select_for_update().filter(
                device_id__in=[device.pk for device in devices]
            )
        }
        set_ids = set_ids_by_device(device.pk for device in devices)
        manifests: dict[frozenset[int], dict[str, Declaration]] = {}
        changed: dict[str, list[Device]] = defaultdict(list)
        now = timezone.now()
        for device in devices:
            sets = set_ids[device.pk]
            if sets not in manifests:
                manifests[sets] = manifest_of_sets(sets)
            declarations = manifests[sets]
            token = token_of(declarations)
            row = rows.get(device.pk)
            if token == (row.token if row is not None and row.token else EMPTY_TOKEN):
                continue
            row = row or DeviceDeclarations(device=device)
            _record(row, token, now)
            row.save()
            changed[token].append(device)
        for token, targets in changed.items():
            # The newest token is the one to announce: an older announcement not yet
            # delivered is canceled, so an offline device waits with one, not one per change.
            supersede_undelivered(targets, COMMAND)
            data = json.dumps({"SyncTokens": sync_tokens(token, now)}).encode()
            enqueue(targets, COMMAND, {"Data": data}, queued_by=by)
    queued = sum(len(targets) for targets in changed.values())
    if queued:
        log.info("declarations changed for %s device(s): DeclarativeManagement queued", queued)
    return queued
