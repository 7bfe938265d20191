"""The command queue: the only way commands are enqueued, and the server-URL loop.

A command is stored once (Command) and fanned out as one row per device (QueuedCommand).
The loop follows the protocol's dequeuing rules: a command stays at the head of its device's
queue until a status with its CommandUUID arrives; NotNow holds back everything that could
answer NotNow until the device's next Idle; EraseDevice is done once delivered.
"""

import logging
import plistlib
import uuid as uuid_lib
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from devices.activity import mark_seen
from devices.inventory import InventoryError, apply_result, json_safe
from devices.models import Device
from mdm_portal.audit import audit
from mdm_portal.broker import run_soon
from mdm_portal.roles import ADMIN, has_role

from .catalog import (
    DEFINITIONS,
    DELIVERED_WHEN_SENT,
    NEVER_NOT_NOW,
    AdminOnly,
    CatalogError,
    Draft,
    Recipient,
    before_send,
    on_acknowledged,
    prepare,
)
from .catalog.definitions import from_json
from .models import (
    ANSWER_STATUSES,
    FINAL_STATUSES,
    PENDING_STATUSES,
    Command,
    QueuedCommand,
    Status,
)
from .signals import report_received

log = logging.getLogger("mdm.queue")


class EnqueueError(ValueError):
    """A command that cannot be queued; the message says why. Nothing was queued.

    `key` is the path of the payload key the message names (from the catalog), or None.
    """

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


# The devices enqueue accepts: managed, with a push token APNs has not declared invalid.
QUEUEABLE = Q(state=Device.State.ENROLLED, token_invalid_at__isnull=True)
# How many UDIDs an enqueue's audit entry names (the command's page lists every device).
AUDITED_UDIDS = 20


class EnqueueForbidden(EnqueueError):
    """The user's role does not allow this command (raw, EraseDevice, ClearPasscode)."""


class EnqueueConflict(EnqueueError):
    """A device's state refuses the command: not managed, or its push token is invalid."""


def _as_queryset(devices) -> QuerySet:
    """One shape for every way of naming devices: a Device, an iterable of them, a queryset."""
    if isinstance(devices, Device):
        return Device.objects.filter(pk=devices.pk)
    if isinstance(devices, QuerySet):
        return devices
    return Device.objects.filter(pk__in=[device.pk for device in devices])


def _recipients(selection: QuerySet, request_type: str) -> list[Recipient]:
    fields = ("id", "udid", "state", "access_rights", "platform", "os_version", "lost_mode")
    rows = list(selection.values_list(*fields))
    if not rows:
        raise EnqueueError("no devices selected")
    unmanaged = [udid for _id, udid, state, *_rest in rows if state != Device.State.ENROLLED]
    if unmanaged:
        raise EnqueueConflict(
            f"{len(unmanaged)} device(s) are not managed (no TokenUpdate, or checked out): "
            + ", ".join(unmanaged[:5])
        )
    unreachable = list(
        selection.filter(token_invalid_at__isnull=False).values_list("udid", flat=True)[:5]
    )
    if unreachable:
        raise EnqueueConflict(
            "APNs reported the push token of these devices invalid; they get commands again "
            "after their next TokenUpdate: " + ", ".join(unreachable)
        )
    # Only ClearPasscode cares, and decrypting every UnlockToken of a fleet is not free.
    with_token: set[int] = set()
    if request_type == "ClearPasscode":
        with_token = set(selection.filter(unlock_token__isnull=False).values_list("id", flat=True))
    return [
        Recipient(
            id=pk,
            udid=udid,
            access_rights=rights,
            platform=platform,
            os_version=os_version,
            lost_mode=lost,
            has_unlock_token=pk in with_token,
        )
        for pk, udid, _state, rights, platform, os_version, lost in rows
    ]


def build_command(request_type: str, payload: dict | None) -> dict:
    if not isinstance(request_type, str) or not request_type.strip():
        raise EnqueueError("RequestType must be a non-empty string")
    payload = dict(payload or {})
    if payload.get("RequestType", request_type) != request_type:
        raise EnqueueError("the payload's RequestType differs from the one given")
    return {**payload, "RequestType": request_type}


def enqueue(
    devices: Device | Iterable[Device] | QuerySet,
    request_type: str,
    payload: dict | None = None,
    *,
    queued_by: str = "system",
    user=None,
    raw: bool = False,
    reason: str = "",
    drop_disallowed_queries: bool = False,
    options: dict | None = None,
    address: str | None = None,
) -> Command:
    """Queue one command for one or many devices, in one transaction and a few bulk statements.

    The command is checked against the catalog (keys, types, values, platforms, OS versions,
    AccessRights, the command's own rules) unless `raw`, which only an administrator may use
    and which still enforces AccessRights and safety rules. Raises EnqueueError naming the
    problem; then nothing is queued. `user` is the staff member queuing it (None for an operator
    at the server's shell, or the system), `address` the client address they acted from.
    `options` carries per-command choices (hooks.py).
    Call it inside the caller's transaction to record more about the command atomically.
    """
    command = build_command(request_type, payload)
    # The server's shell (a management command, a sweep) acts with an administrator's rights.
    is_admin = has_role(user, ADMIN) if user is not None else True
    if raw and not is_admin:
        raise EnqueueForbidden("only an administrator may queue a raw command")
    with transaction.atomic():
        selection = _as_queryset(devices)
        recipients = _recipients(selection, request_type)
        draft = Draft(
            request_type=request_type,
            command=command,
            recipients=recipients,
            is_admin=is_admin,
            reason=reason,
            drop_disallowed_queries=drop_disallowed_queries,
            options=options or {},
        )
        try:
            command = prepare(draft, raw=raw)
        except AdminOnly as exc:  # EraseDevice, ClearPasscode: their hooks say who may
            raise EnqueueForbidden(str(exc), key=exc.key) from None
        except CatalogError as exc:
            raise EnqueueError(str(exc), key=exc.key) from None
        try:
            # XML, as the device will receive it (binary plists accept values XML cannot carry).
            encoded = plistlib.dumps(command)
        except (TypeError, ValueError, OverflowError) as exc:  # ValueError: control characters
            raise EnqueueError(f"the command cannot be encoded as a plist: {exc}") from None
        stored = Command.objects.create(
            uuid=str(uuid_lib.uuid4()).upper(),
            request_type=request_type,
            payload=encoded,
            raw=raw,
            queued_by=(user.get_username() if user is not None else queued_by)[:150],
            user=user,
            device_count=len(recipients),
        )
        managed = selection.filter(state=Device.State.ENROLLED)
        fanned_out = _fan_out(stored, managed)
        if fanned_out != len(recipients):  # a device changed between the check and the insert
            raise EnqueueError("the device selection changed while queuing; nothing queued")
        request_push(managed)
        details = {
            "request_type": request_type,
            "devices": len(recipients),
            "udids": [recipient.udid for recipient in recipients[:AUDITED_UDIDS]],
            "raw": raw,
        }
        if reason:
            details["reason"] = reason
        audit(
            "command.enqueued",
            actor=user or queued_by,
            target=stored.uuid,
            address=address,
            **details,
        )
    return stored


def enqueue_json(devices, request_type: str, payload: dict | None = None, **options) -> Command:
    """`enqueue` for a payload given as JSON (the API, `mdm_enqueue --json`): the values of
    the catalog's `data` keys arrive as base64 and become bytes first."""
    definition = DEFINITIONS.get(request_type)
    if definition is not None:
        try:
            payload = from_json(definition, payload or {})
        except CatalogError as exc:
            raise EnqueueError(str(exc), key=exc.key) from None
    return enqueue(devices, request_type, payload, **options)


def _fan_out(command: Command, devices: QuerySet) -> int:
    """One queue row per device in a single INSERT ... SELECT, however large the fleet."""
    select_sql, select_params = devices.values("id").query.sql_with_params()
    created_at = connection.ops.adapt_datetimefield_value(timezone.now())
    table = QueuedCommand._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "  # noqa: S608 - table name is ours, values are parameters
            "(device_id, command_id, request_type, status, created_at, sent_count) "
            f"SELECT selected.id, %s, %s, %s, %s, 0 FROM ({select_sql}) selected",
            [command.pk, command.request_type, Status.QUEUED, created_at, *select_params],
        )
        return cursor.rowcount


def request_push(devices: QuerySet) -> None:
    """Mark `devices` as wanting a push, and have the push task run once the window closes.

    Many commands in the window make one push per device: the task claims the marks.
    If the broker cannot be reached the marks stay, and the every-minute run sends them: the
    request never waits for the broker (mdm_portal.broker).
    """
    now = timezone.now()
    # A mark in the future is a push run's claim (commands.tasks.claim_due_pushes): due again
    # now, so that a command queued while that push goes out gets a push of its own.
    devices.filter(Q(push_due_at__isnull=True) | Q(push_due_at__gt=now)).update(push_due_at=now)

    def trigger() -> None:
        from .tasks import push_due_devices

        run_soon(push_due_devices, "push", countdown=settings.MDM_PUSH_COALESCE_SECONDS)

    transaction.on_commit(trigger)


def queueable(devices: QuerySet) -> QuerySet:
    """The devices of `devices` that enqueue accepts (a bulk selection leaves the others out)."""
    return devices.filter(QUEUEABLE)


# What "cancel what is still queued" cancels: rows the device does not have. A SENT row stays,
# since the device has the command (it answers it, or the expiry sweep ends it); a NOT_NOW row
# is cancelable because after NotNow the device keeps no copy.
CANCELABLE_STATUSES = (Status.QUEUED, Status.NOT_NOW)


def cancel_queued(command: Command, *, by=None, address: str | None = None) -> int:
    """Cancel the rows of `command` not yet delivered (queued, or held after NotNow). Audited.

    Returns how many were canceled; the rows stay in the history as canceled. A row a device
    poll is delivering at this very moment is sent all the same, and then shows as sent.
    """
    with transaction.atomic():
        count = QueuedCommand.objects.filter(
            command=command, status__in=CANCELABLE_STATUSES
        ).update(status=Status.CANCELED, answered_at=timezone.now())
        audit(
            "command.canceled",
            actor=by or "system",
            target=command.uuid,
            address=address,
            request_type=command.request_type,
            canceled=count,
        )
    return count


def cancel_pending(device: Device, reason: str) -> int:
    """Cancel every unanswered command of `device` (kept in history). Returns how many."""
    count = QueuedCommand.objects.filter(device=device, status__in=PENDING_STATUSES).update(
        status=Status.CANCELED, answered_at=timezone.now()
    )
    if count:
        log.info("canceled %s pending command(s) of %s: %s", count, device.udid, reason)
    return count


# --- the server-URL loop ----------------------------------------------------------------------


def record_status(device: Device, report: dict) -> QueuedCommand | None:
    """Record the status a device reported for one command. Idempotent: a final status is kept.

    Returns the row, or None for a CommandUUID this device was never sent (logged, ignored).
    """
    command_uuid = report["CommandUUID"]
    row = (
        QueuedCommand.objects.select_for_update()
        .filter(device=device, command__uuid=command_uuid)
        .first()
    )
    if row is None:
        log.warning("%s reported on unknown CommandUUID %s: ignored", device.udid, command_uuid)
        return None
    if row.status in FINAL_STATUSES:
        log.info("%s repeated the status of %s: already recorded", device.udid, command_uuid)
        return row
    status = ANSWER_STATUSES[report["Status"]]
    now = timezone.now()
    if status == Status.NOT_NOW:
        # The device keeps no copy: the row waits for the next Idle to be sent again.
        row.status = Status.NOT_NOW
        row.save(update_fields=["status"])
        device.awaiting_idle_after_not_now = True
        return row
    row.status = status
    row.answered_at = now
    row.result = plistlib.dumps(report, fmt=plistlib.FMT_BINARY)
    row.error_chain = json_safe(report.get("ErrorChain")) if "ErrorChain" in report else None
    row.save(update_fields=["status", "answered_at", "result", "error_chain"])
    if status == Status.ACKNOWLEDGED:
        _update_inventory(device, row, report)
        changed = on_acknowledged(device, row.request_type, report)
        if changed:
            device.save(update_fields=changed)
    return row


def _update_inventory(device: Device, row: QueuedCommand, report: dict) -> None:
    # A result we cannot read must not lose the status: the inventory update has its own
    # savepoint, and its failure is logged.
    try:
        with transaction.atomic():
            apply_result(device, row.request_type, report)
    except InventoryError as exc:
        log.warning(
            "%s: %s result not applied to inventory: %s", device.udid, row.request_type, exc
        )


def next_row(device: Device, poll_started: datetime) -> QueuedCommand | None:
    """The command to send now, or None. Call with the device row locked."""
    pending = (
        QueuedCommand.objects.filter(device=device, status__in=PENDING_STATUSES)
        .exclude(status=Status.SENT, request_type__in=DELIVERED_WHEN_SENT)
        .select_related("command")
        .order_by("id")
    )
    if device.awaiting_idle_after_not_now:
        pending = pending.filter(request_type__in=NEVER_NOT_NOW).exclude(status=Status.NOT_NOW)
    head = pending.first()
    if head is None:
        return None
    if head.status == Status.SENT and head.sent_at and head.sent_at >= poll_started:
        # Delivered to a poll that ran while this one waited for the lock: this poll never
        # saw it, so it is in flight, not lost. Sending it here would deliver it twice.
        return None
    return head


def render_command(device: Device, row: QueuedCommand) -> bytes:
    """The plist the device receives: CommandUUID and the Command dictionary."""
    command = before_send(device, row.request_type, row.command.command_dict())
    return plistlib.dumps({"CommandUUID": row.command.uuid, "Command": command})


def process_report(
    device_id: int, report: dict, poll_started: datetime, request=None
) -> bytes | None:
    """Handle one server-URL request of a managed device: record its status, pick the next.

    Returns the plist to send, or None for an empty 200. The device row is locked for the
    whole exchange, so two polls of one device are handled one after the other. The report
    (Idle included) is announced inside the exchange's transaction, with the DeviceRequest
    (`request`: raw body, query parameters) it came in.
    """
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=device_id)
        answered = None
        if report["Status"] == "Idle":
            device.awaiting_idle_after_not_now = False
        else:
            answered = record_status(device, report)
        report_received.send(
            QueuedCommand, device=device, report=report, row=answered, request=request
        )
        row = next_row(device, poll_started)
        now = timezone.now()
        body = None
        if row is not None:
            body = render_command(device, row)
            QueuedCommand.objects.filter(pk=row.pk).update(
                status=Status.SENT, sent_at=now, sent_count=F("sent_count") + 1
            )
        seen = mark_seen(device, now)  # active again as soon as it polls
        device.save(update_fields=["awaiting_idle_after_not_now", *seen])
    return body
