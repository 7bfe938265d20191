"""Device sync: the portal's DepDevice records follow what Apple says of each DEP server.

A server without a cursor fetches (POST /server/devices) page after page until
more_to_follow is false; from then on each run syncs (POST /devices/sync) from the cursor it
kept, applying each device's op_type: added and modified are upserts, deleted marks the record
removed. Each page is committed in one transaction with the cursor that follows it, so a crash
leaves a cursor that matches the stored devices, and a fetch cut short (the page bound, a
network error) goes on fetching at the next run: DepServer.fetch_more says a fetch is under
way, since a sync from a half-fetch cursor would never list the devices not fetched yet.

What users of other MDMs run into, and what this does:
- Apple echoes the cursor it was given with more_to_follow true: asking again would loop, so
  the run stops there (said in last_sync_result) and the next run asks again.
- An expired (older than 7 days) or invalid cursor: the cursor is dropped and every device is
  fetched again in the same run; EXHAUSTED_CURSOR (a finished fetch) turns to a sync.
- A network error or Apple's refusal: the run is recorded as failed (last_sync_ok false,
  failed_syncs + 1, the reason), the cursor stays where the last committed page left it, and
  the next run tries again; one server's failure never stops the others.
- Devices added by a run get the server's auto-assign profile once the run ends, whatever
  became of its later pages; devices whose assignment request failed are tried again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mdm_portal.alerts import raise_alert, resolve_alerts
from mdm_portal.audit import audit

from .dep_client import DepClient, DepError
from .dep_models import DepDevice, DepServer
from .dep_profiles import ERROR, assign_profile

log = logging.getLogger(__name__)

TEXT_FIELDS = ("model", "description", "color", "asset_tag", "os", "device_family")
TEXT_FIELDS += ("device_assigned_by", "profile_status", "profile_uuid")
DATE_FIELDS = ("device_assigned_date", "profile_assign_time")
CURSOR_REFUSED = {"EXPIRED_CURSOR", "INVALID_CURSOR"}
ALERT_AFTER_FAILURES = 2  # one network blip is not worth an alert; two runs in a row are


@dataclass
class SyncOutcome:
    """What one run did for one server."""

    server: str
    ok: bool
    added: int = 0
    modified: int = 0
    deleted: int = 0
    message: str = ""
    pages: int = 0
    skipped: bool = False  # no server token: nothing was asked of Apple
    assigned: dict[str, str] = field(default_factory=dict)  # auto-assign: serial -> result


class _CursorMoved(Exception):
    """Another run of the same server committed a page since this one read the cursor."""


def sync_all(*, due_only: bool = False) -> list[SyncOutcome]:
    """Sync every DEP server (with `due_only`, those whose last run is MDM_DEP_SYNC_MINUTES
    old); a server that fails, however, never keeps the others from their turn."""
    servers = DepServer.objects.order_by("name")
    if due_only:
        due = timezone.now() - timedelta(minutes=max(1, settings.MDM_DEP_SYNC_MINUTES))
        servers = servers.filter(token_imported_at__isnull=False).filter(
            Q(last_sync_at__isnull=True) | Q(last_sync_at__lte=due)
        )
    outcomes = []
    for server in servers:
        try:
            outcomes.append(sync_server(server, actor="system"))
        except Exception as exc:  # a bug or a database error: this server only
            log.exception("DEP sync of %s failed", server.name)
            run = _Run(server, "system")
            run.failed(f"unexpected error: {type(exc).__name__}: {exc}"[:500])
            outcomes.append(run.outcome)
    return outcomes


def sync_server(server: DepServer, *, actor: Any) -> SyncOutcome:
    """One sync run for `server`: fetch or sync until Apple has no more to follow, within
    MDM_DEP_SYNC_MAX_PAGES pages; then auto-assign the devices it added."""
    run = _Run(server, actor)
    if server.token_imported_at is None or not server.consumer_key:
        run.outcome.skipped, run.outcome.ok = True, False
        run.outcome.message = "no server token imported yet (mdm_dep import-token)"
        DepServer.objects.filter(pk=server.pk).update(last_sync_result=run.outcome.message)
        server.last_sync_result = run.outcome.message
        return run.outcome
    with DepClient(server) as client:
        try:
            run.pages(client)
        except DepError as exc:
            run.failed(str(exc))
        except _CursorMoved:
            run.note("another sync of this server ran at the same time: this one stopped")
        run.auto_assign()
    if run.outcome.ok:
        run.succeeded()
    return run.outcome


class _Run:
    def __init__(self, server: DepServer, actor: Any) -> None:
        self.server, self.actor = server, actor
        self.outcome = SyncOutcome(server=server.name, ok=True)
        self.notes: list[str] = []
        self.added_serials: list[str] = []
        self.fetched = False  # a page of a fetch (not a sync) was read

    def note(self, text: str) -> None:
        self.notes.append(text)

    # --- the pages --------------------------------------------------------------------------

    def pages(self, client: DepClient) -> None:
        server = self.server
        fetching = not server.cursor or server.fetch_more
        cursor, reset, seen = server.cursor, False, set()
        for _ in range(max(1, settings.MDM_DEP_SYNC_MAX_PAGES)):
            try:
                if fetching:
                    page = client.fetch_devices(cursor or None)
                else:
                    page = client.sync_devices(cursor)
            except DepError as exc:
                if exc.status == 400 and exc.code in CURSOR_REFUSED and cursor and not reset:
                    self.note(f"Apple refused the cursor ({exc.code}): every device fetched again")
                    self._commit([], given=cursor, cursor="", fetch_more=False)
                    cursor, fetching, reset = "", True, True
                    continue
                if exc.status == 400 and exc.code == "EXHAUSTED_CURSOR" and fetching and cursor:
                    self._commit([], given=cursor, cursor=cursor, fetch_more=False)
                    fetching = False
                    continue
                raise
            self.outcome.pages += 1
            self.fetched = self.fetched or fetching
            more = page["more_to_follow"]
            new = page["cursor"] or cursor  # no cursor in the answer: keep the one we have
            self._commit(page["devices"], given=cursor, cursor=new, fetch_more=fetching and more)
            if more and (new == cursor or new in seen):
                self.note(
                    "Apple answered the cursor it was given, with more to follow: stopped here "
                    "so as not to loop; the next run asks again"
                )
                return
            if not more:
                return  # a finished fetch: the next run syncs from its cursor
            seen.add(cursor)
            cursor = new
        self.note(
            f"stopped after {self.outcome.pages} pages (MDM_DEP_SYNC_MAX_PAGES); "
            "the next run goes on from there"
        )

    def _commit(self, devices: list[dict], *, given: str, cursor: str, fetch_more: bool) -> None:
        """Apply one page and store the cursor after it, in one transaction; only if no other
        run moved the cursor meanwhile (the row is locked while it is checked)."""
        server = self.server
        now = timezone.now()
        with transaction.atomic():
            stored = (
                DepServer.objects.select_for_update()
                .filter(pk=server.pk)
                .values_list("cursor", flat=True)
                .first()
            )
            if stored is None or stored != given:
                raise _CursorMoved
            self._apply(devices, now)
            DepServer.objects.filter(pk=server.pk).update(
                cursor=cursor, cursor_at=now, fetch_more=fetch_more
            )
        server.cursor, server.cursor_at, server.fetch_more = cursor, now, fetch_more

    def _apply(self, devices: list[dict], now) -> None:
        serials = [d.get("serial_number") for d in devices]
        serials = [s for s in serials if isinstance(s, str) and s.strip()]
        known = {d.serial_number: d for d in DepDevice.objects.filter(serial_number__in=serials)}
        new: dict[str, DepDevice] = {}
        changed: dict[str, DepDevice] = {}
        for data in devices:
            serial = data.get("serial_number")
            if not isinstance(serial, str) or not serial.strip():
                continue  # nothing to file it under
            device = new.get(serial) or known.get(serial)
            op_type = str(data.get("op_type") or "")
            if op_type == "deleted":
                # Only our own record: the device may have moved to another server already.
                if device is not None and device.server_id == self.server.pk and not device.removed:
                    device.removed = True
                    _set_event(device, op_type, data)
                    changed[serial] = device
                    self.outcome.deleted += 1
                continue
            if device is None:
                device = DepDevice(server=self.server, serial_number=serial)
                new[serial] = device
                _fill(device, data)
                self.outcome.added += 1
                self.added_serials.append(serial)
            elif device.removed or device.server_id != self.server.pk:
                device.removed, device.server = False, self.server  # back, or moved to us
                _fill(device, data)
                changed[serial] = device
                self.outcome.added += 1
                self.added_serials.append(serial)
            elif _fill(device, data):
                changed[serial] = device
                self.outcome.modified += 1
            if op_type:
                _set_event(device, op_type, data)
                changed[serial] = device
        DepDevice.objects.bulk_create(new.values())
        # Records created above are saved whole; the others, only what Apple told us.
        stored = [device for serial, device in changed.items() if serial not in new]
        for device in stored:
            device.updated_at = now
        fields = [*TEXT_FIELDS, *DATE_FIELDS, "op_type", "op_date", "removed", "server"]
        DepDevice.objects.bulk_update(stored, [*fields, "updated_at"], batch_size=500)

    # --- the end of a run ----------------------------------------------------------------

    def auto_assign(self) -> None:
        """The server's auto-assign profile for the devices this run added, and for those
        whose earlier assignment request failed (ERROR)."""
        server = DepServer.objects.select_related("auto_assign_profile").get(pk=self.server.pk)
        profile = server.auto_assign_profile
        if profile is None or not profile.profile_uuid:
            return
        candidates = DepDevice.objects.filter(server=server, removed=False).exclude(
            profile_uuid=profile.profile_uuid
        )
        retry = Q(assign_result=ERROR, assigned_profile=None)
        serials = list(
            candidates.filter(Q(serial_number__in=self.added_serials) | retry)
            .order_by("serial_number")
            .values_list("serial_number", flat=True)
        )
        if not serials:
            return
        try:
            self.outcome.assigned = assign_profile(profile, serials, actor=self.actor)
        except DepError as exc:
            self.note(
                f"auto-assign of {profile.name!r} to {len(serials)} device(s) failed ({exc}); "
                "tried again at the next sync"
            )
            return
        took = sum(1 for result in self.outcome.assigned.values() if result == "SUCCESS")
        self.note(f"auto-assigned {profile.name!r}: {took} of {len(serials)} took")

    def _summary(self) -> str:
        o = self.outcome
        what = "fetch" if self.fetched else "sync"
        counts = f"{o.added} added, {o.modified} modified, {o.deleted} deleted"
        return "; ".join([f"{what}: {counts} ({o.pages} page(s))", *self.notes])

    def succeeded(self) -> None:
        message = self._summary()
        self.outcome.message = message
        self._record(ok=True, message=message)
        resolve_alerts(f"dep:sync:{self.server.pk}")

    def failed(self, why: str) -> None:
        self.outcome.ok = False
        message = f"failed: {why}; the next run tries again. Before that: {self._summary()}"
        self.outcome.message = message
        failures = self._record(ok=False, message=message)
        if failures >= ALERT_AFTER_FAILURES:
            raise_alert(
                f"dep:sync:{self.server.pk}",
                f"DEP device sync of {self.server.name!r} failed {failures} times in a row: {why}",
                server=self.server.name,
            )

    def _record(self, *, ok: bool, message: str) -> int:
        now = timezone.now()
        failures = 0 if ok else F("failed_syncs") + 1
        DepServer.objects.filter(pk=self.server.pk).update(
            last_sync_at=now, last_sync_ok=ok, last_sync_result=message, failed_syncs=failures
        )
        self.server.refresh_from_db(
            fields=["last_sync_at", "last_sync_ok", "last_sync_result", "failed_syncs"]
        )
        o = self.outcome
        # Runs that changed nothing are on the server record only: every 30 minutes for
        # years, they would bury the audit log's real entries.
        if not ok or o.added or o.modified or o.deleted or self.notes:
            audit(
                "dep.sync",
                actor=self.actor,
                target=self.server.name,
                ok=ok,
                added=o.added,
                modified=o.modified,
                deleted=o.deleted,
                pages=o.pages,
                message=message[:500],
            )
        return self.server.failed_syncs


def refresh_account(server: DepServer, *, actor: Any) -> dict:
    """GET /account: Apple's names for the server and the organization, kept on the server
    record (shown in the UI and in token expiry warnings); answers the whole account."""
    with DepClient(server) as client:
        account = client.account()
    fields = {"server_uuid": 64, "server_name": 200, "org_name": 200, "org_email": 200}
    values = {name: str(account.get(name) or "")[:longest] for name, longest in fields.items()}
    DepServer.objects.filter(pk=server.pk).update(**values)
    for name, value in values.items():
        setattr(server, name, value)
    return account


def device_details(server: DepServer, serials: list[str], *, actor: Any) -> dict[str, dict]:
    """POST /devices: Apple's details of these serials now, between syncs (response_status
    SUCCESS, or NOT_FOUND for a device that is not this server's). The records of those
    found are brought up to date."""
    serials = list(dict.fromkeys(s.strip() for s in serials if s and s.strip()))
    if not serials:
        return {}
    with DepClient(server) as client:
        details = client.device_details(serials)
    found = {s: d for s, d in details.items() if isinstance(d, dict) and s in serials}
    with transaction.atomic():
        for device in DepDevice.objects.select_for_update().filter(
            server=server, serial_number__in=list(found)
        ):
            data = found[device.serial_number]
            if data.get("response_status", "SUCCESS") == "SUCCESS" and _fill(device, data):
                device.save()
    return {serial: found.get(serial, {"response_status": "NOT_FOUND"}) for serial in serials}


def disown_devices(server: DepServer, serials: list[str], *, actor: Any) -> dict[str, str]:
    """POST /devices/disown: the organization gives these devices up for good (they leave
    ABM; it cannot be undone). Apple answers per serial; those disowned are marked removed."""
    serials = list(dict.fromkeys(s.strip() for s in serials if s and s.strip()))
    if not serials:
        return {}
    with DepClient(server) as client:
        answers = client.disown(serials)
    results = {serial: str(answers.get(serial) or "FAILED") for serial in serials}
    gone = [serial for serial, result in results.items() if result == "SUCCESS"]
    DepDevice.objects.filter(server=server, serial_number__in=gone).update(
        removed=True, op_type="disowned", op_date=timezone.now(), updated_at=timezone.now()
    )
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result] = counts.get(result, 0) + 1
    audit("dep.disown", actor=actor, target=server.name, results=counts, serials=serials[:50])
    return results


def _fill(device: DepDevice, data: dict) -> bool:
    """Copy Apple's fields onto the record; whether anything changed."""
    changed = False
    for name in TEXT_FIELDS:
        if name not in data:
            continue
        value = str(data.get(name) or "")[: DepDevice._meta.get_field(name).max_length]
        if getattr(device, name) != value:
            setattr(device, name, value)
            changed = True
    for name in DATE_FIELDS:
        if name not in data:
            continue
        value = _date(data.get(name))
        if getattr(device, name) != value:
            setattr(device, name, value)
            changed = True
    return changed


def _set_event(device: DepDevice, op_type: str, data: dict) -> None:
    device.op_type = op_type[:20]
    device.op_date = _date(data.get("op_date")) or timezone.now()


def _date(value: Any):
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None
