"""The server-URL loop: record what a device reports, hand it its next command.

It follows the protocol's dequeuing rules: a command stays at the head of its device's queue
until a status with its CommandUUID arrives; NotNow holds back everything that could answer
NotNow until the device's next Idle; EraseDevice is done once delivered.

This runs for every request of every device, so each step is one fixed statement
(mdm_portal.hot_sql: prepared once per connection on PostgreSQL): lock the device and check its
certificate (devices.polling), record the status, take the next command, and write the device
row only when something on it changed. The whole device row is read only for the command
types whose hooks or inventory need it.
"""

import logging
import plistlib
from datetime import datetime
from functools import cache

from django.db import connection, transaction
from django.utils import timezone

from certs.identity import DeviceIdentity
from devices.activity import mark_seen
from devices.inventory import INVENTORY_REQUEST_TYPES, InventoryError, apply_result, json_safe
from devices.models import Device
from devices.polling import polling_device
from mdm_portal import hot_sql

from .catalog import DELIVERED_WHEN_SENT, NEVER_NOT_NOW, before_send, on_acknowledged, uses_device
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


def _quoted(values) -> str:
    # Our own constants (statuses, RequestTypes), never input: literals keep one plan per text.
    return ", ".join("'" + str(value).replace("'", "''") + "'" for value in sorted(values))


@cache
def _record_sql(not_now: bool) -> str:
    queue, commands = QueuedCommand._meta.db_table, Command._meta.db_table
    assignments = (
        "status = %s"
        if not_now  # the device keeps no copy: the row waits for the next Idle
        else "status = %s, answered_at = %s, result = %s, error_chain = %s"
    )
    return (
        f"UPDATE {queue} SET {assignments} "  # noqa: S608 - our table names and constants
        f"WHERE device_id = %s AND status NOT IN ({_quoted(FINAL_STATUSES)}) "
        f"AND command_id = (SELECT id FROM {commands} WHERE uuid = %s) "
        "RETURNING id, request_type, command_id"
    )


@cache
def _take_sql(awaiting_idle: bool, vendor: str) -> str:
    """Mark the head of the device's queue sent and return it, unless it is in flight: sent
    to a poll that ran while this one waited for the device's lock (this poll never saw it,
    so it is not lost, and sending it here would deliver it twice)."""
    queue, commands = QueuedCommand._meta.db_table, Command._meta.db_table
    held_back = ""
    if awaiting_idle:  # after NotNow only what can never be answered NotNow, and not the held
        held_back = (
            f"AND h.request_type IN ({_quoted(NEVER_NOT_NOW)}) AND h.status <> '{Status.NOT_NOW}' "
        )
    head = (
        f"SELECT h.id FROM {queue} h WHERE h.device_id = %s "  # noqa: S608
        f"AND h.status IN ({_quoted(PENDING_STATUSES)}) "
        f"AND NOT (h.status = '{Status.SENT}' AND h.request_type IN "
        f"({_quoted(DELIVERED_WHEN_SENT)})) {held_back}ORDER BY h.id LIMIT 1"
    )
    update = (
        f"UPDATE {queue} SET status = '{Status.SENT}', sent_at = %s, "  # noqa: S608
        "sent_count = sent_count + 1 "
    )
    in_flight = (
        f"NOT ({queue}.status = '{Status.SENT}' AND {queue}.sent_at IS NOT NULL "
        f"AND {queue}.sent_at >= %s)"
    )
    if vendor == "postgresql":  # the command comes back in the same statement
        return (
            f"{update}FROM {commands} c WHERE c.id = {queue}.command_id "
            f"AND {queue}.id = ({head}) AND {in_flight} "
            f"RETURNING {queue}.id, {queue}.request_type, c.uuid, c.payload"
        )
    # SQLite's RETURNING cannot name a FROM table: the command is read next.
    return (
        f"{update}WHERE {queue}.id = ({head}) AND {in_flight} "
        f"RETURNING id, request_type, command_id"
    )


def _command_sql() -> str:
    return f"SELECT uuid, payload FROM {Command._meta.db_table} WHERE id = %s"  # noqa: S608


def _db_time(moment: datetime):
    return connection.ops.adapt_datetimefield_value(moment)


def record_status(device: Device, report: dict, now: datetime) -> QueuedCommand | None:
    """Record the status a device reported for one command. Idempotent: a final status is kept.

    Returns the row (its id, type and command loaded), or None for a CommandUUID this device
    was never sent, or a repeated status (logged, ignored).
    """
    command_uuid = report["CommandUUID"]
    status = ANSWER_STATUSES[report["Status"]]
    if status == Status.NOT_NOW:
        params = [status]
    else:
        error_chain = json_safe(report.get("ErrorChain")) if "ErrorChain" in report else None
        params = [
            status,
            _db_time(now),
            plistlib.dumps(report, fmt=plistlib.FMT_BINARY),
            QueuedCommand._meta.get_field("error_chain").get_db_prep_save(error_chain, connection),
        ]
    rows = hot_sql.fetch(_record_sql(status == Status.NOT_NOW), [*params, device.pk, command_uuid])
    if not rows:
        known = QueuedCommand.objects.filter(device=device, command__uuid=command_uuid).exists()
        if known:
            log.info("%s repeated the status of %s: already recorded", device.udid, command_uuid)
        else:
            log.warning("%s reported on unknown CommandUUID %s: ignored", device.udid, command_uuid)
        return None
    row_id, request_type, command_id = rows[0]
    row = hot_sql.instance(
        QueuedCommand,
        ("id", "device_id", "command_id", "request_type", "status"),
        (row_id, device.pk, command_id, request_type, status),
    )
    if status == Status.NOT_NOW:
        device.awaiting_idle_after_not_now = True
    elif status == Status.ACKNOWLEDGED:
        _acknowledged(device, row, report)
    return row


def _acknowledged(device: Device, row: QueuedCommand, report: dict) -> None:
    hooked = uses_device(row.request_type)
    if hooked:  # the hook reads the device; the inventory itself reads nothing of the row
        _load_whole(device)
    if row.request_type in INVENTORY_REQUEST_TYPES:
        # A result we cannot read must not lose the status: the inventory update has its
        # own savepoint (apply_result adds none inside it), and its failure is logged.
        try:
            with transaction.atomic():
                apply_result(device, row.request_type, report, savepoint=False)
        except InventoryError as exc:
            log.warning(
                "%s: %s result not applied to inventory: %s", device.udid, row.request_type, exc
            )
    if hooked and (changed := on_acknowledged(device, row.request_type, report)):
        device.save(update_fields=changed)


# Secrets stay in the database until a hook asks for one (ClearPasscode's UnlockToken): each
# costs a decryption, and the inventory never reads them.
SECRET_FIELDS = frozenset({"unlock_token", "bootstrap_token"})


def _load_whole(device: Device) -> None:
    """Read the columns the loop did not (one statement), keeping what it already changed."""
    deferred = device.get_deferred_fields() - SECRET_FIELDS
    if deferred:
        device.refresh_from_db(fields=list(deferred))


def take_next(device: Device, poll_started: datetime, now: datetime) -> bytes | None:
    """Mark the command to send now as sent and return its plist, or None. Call with the
    device row locked."""
    sql = _take_sql(device.awaiting_idle_after_not_now, connection.vendor)
    rows = hot_sql.fetch(sql, [_db_time(now), device.pk, _db_time(poll_started)])
    if not rows:
        return None
    if connection.vendor == "postgresql":
        _row_id, request_type, command_uuid, payload = rows[0]
    else:
        _row_id, request_type, command_id = rows[0]
        command_uuid, payload = hot_sql.fetch(_command_sql(), [command_id])[0]
    command = plistlib.loads(bytes(payload))
    if uses_device(request_type):
        _load_whole(device)
        command = before_send(device, request_type, command)
    return plistlib.dumps({"CommandUUID": command_uuid, "Command": command})


def _exchange(device: Device, report: dict, poll_started: datetime, request) -> bytes | None:
    """One server-URL request of a managed device, its row locked: record its status, pick
    the next command. The report (Idle included) is announced inside the exchange's
    transaction, with the DeviceRequest (`request`: raw body, query parameters) it came in."""
    now = timezone.now()
    awaiting_before = device.awaiting_idle_after_not_now
    answered = None
    if report["Status"] == "Idle":
        device.awaiting_idle_after_not_now = False
    else:
        answered = record_status(device, report, now)
    report_received.send(QueuedCommand, device=device, report=report, row=answered, request=request)
    body = take_next(device, poll_started, now)
    changed = mark_seen(device, now)  # active again as soon as it polls
    if device.awaiting_idle_after_not_now != awaiting_before:
        changed.append("awaiting_idle_after_not_now")
    if changed:
        device.save(update_fields=changed)
    return body


def poll(
    identity: DeviceIdentity, udid: str, report: dict, poll_started: datetime, request=None
) -> bytes | None:
    """A report from `udid`, proven by `identity`: the plist to send back, or None for an
    empty 200. The device row stays locked for the whole exchange, so two polls of one
    device are handled one after the other. Raises ProtocolError / NotManaged."""
    with transaction.atomic():
        device = polling_device(identity, udid)
        return _exchange(device, report, poll_started, request)
