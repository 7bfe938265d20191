"""Command history as plain data: a device's commands (the live queue, then the archive), and
one device's side of a command. Results are JSON (data as base64)."""

from devices.inventory import json_safe
from devices.models import Device
from devices.summary import iso
from mdm_portal.masking import masked

from .models import ArchivedCommand, QueuedCommand

# Keys of every answer: the rest is what the command returned.
ENVELOPE_KEYS = {"Status", "UDID", "CommandUUID", "ErrorChain", "EnrollmentID"}


def result_json(row) -> dict | None:
    """What the device returned, minus the envelope, as JSON (bytes as base64)."""
    result = row.result_dict() if getattr(row, "result", None) else None
    if not result:
        return None
    return json_safe({k: v for k, v in result.items() if k not in ENVELOPE_KEYS}) or None


def _history_entry(row, archived: bool) -> dict:
    entry = {
        "command_uuid": row.command.uuid,
        "request_type": row.request_type,
        "status": row.status,
        "queued_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "answered_at": iso(row.answered_at),
        "error_chain": row.error_chain,
    }
    if archived:
        entry["archived"] = True
    else:
        entry["result"] = result_json(row)
    return entry


def recent_commands(device: Device, limit: int, *, redact: bool = False) -> list[dict]:
    """The device's latest commands: the live queue first, then the archive. With `redact`,
    the secrets some answers carry are masked (mdm_portal.masking): for what people read."""
    live = (
        QueuedCommand.objects.filter(device=device)
        .select_related("command")
        .defer("command__payload")  # a profile can be megabytes; only its UUID is needed
        .order_by("-id")[:limit]
    )
    history = [_history_entry(row, archived=False) for row in live]
    if len(history) < limit:
        archived = (
            ArchivedCommand.objects.filter(device=device)
            .select_related("command")
            .defer("command__payload")
            .order_by("-answered_at")[: limit - len(history)]
        )
        history += [_history_entry(row, archived=True) for row in archived]
    if redact:
        for entry in history:
            if entry.get("result"):
                entry["result"] = masked(entry["result"])
    return history


def device_result(row: QueuedCommand, *, redact: bool = False) -> dict:
    """One device's side of a command: its status, times and result (with `redact`, the
    secrets an answer may carry masked, as recent_commands does)."""
    result = result_json(row)
    return {
        "udid": row.device.udid,
        "status": row.status,
        "queued_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "sent_count": row.sent_count,
        "answered_at": iso(row.answered_at),
        "error_chain": row.error_chain,
        "result": masked(result) if redact and result else result,
    }
