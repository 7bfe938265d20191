"""The command queue: the only way commands are enqueued (the server-URL loop is loop.py).

A command is stored once (Command) and fanned out as one row per device (QueuedCommand).
"""

import logging
import plistlib
import uuid as uuid_lib
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from devices.models import Device
from mdm_portal.audit import audit
from mdm_portal.broker import run_soon
from mdm_portal.roles import ADMIN, has_role

from .catalog import (
    DEFINITIONS,
    AdminOnly,
    CatalogError,
    Draft,
    Recipient,
    prepare,
)
from .catalog.definitions import from_json
from .models import (
    PENDING_STATUSES,
    Command,
    QueuedCommand,
    Status,
)

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
    # One broker call per transaction, however many commands it queued (a first TokenUpdate
    # queues five): the task claims every mark. Django forgets the callbacks of a savepoint
    # that rolls back, so one still in its list will run.
    if not any(call is _trigger_push for _ids, call, _robust in connection.run_on_commit):
        transaction.on_commit(_trigger_push)


def _trigger_push() -> None:
    from .tasks import push_due_devices

    run_soon(push_due_devices, "push", countdown=settings.MDM_PUSH_COALESCE_SECONDS)


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


def supersede_undelivered(devices: Iterable[Device], request_type: str) -> int:
    """Cancel the devices' rows of `request_type` not yet delivered (kept in history), before
    a newer command of that type replaces them: a command that only says "sync now"
    (DeclarativeManagement) then waits once per device however often it was superseded."""
    return QueuedCommand.objects.filter(
        device__in=[device.pk for device in devices],
        request_type=request_type,
        status__in=CANCELABLE_STATUSES,
    ).update(status=Status.CANCELED, answered_at=timezone.now())


def cancel_pending(device: Device, reason: str) -> int:
    """Cancel every unanswered command of `device` (kept in history). Returns how many."""
    count = QueuedCommand.objects.filter(device=device, status__in=PENDING_STATUSES).update(
        status=Status.CANCELED, answered_at=timezone.now()
    )
    if count:
        log.info("canceled %s pending command(s) of %s: %s", count, device.udid, reason)
    return count
