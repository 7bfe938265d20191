"""A device as plain data: what `mdm_device` prints and the API will serve."""

from commands.models import ArchivedCommand, QueuedCommand

from .inventory import json_safe
from .models import Device


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def device_summary(device: Device, recent: int = 20) -> dict:
    reports = {
        report.kind: {"reported_at": _iso(report.reported_at), "data": report.data}
        for report in device.reports.all()
    }
    return {
        "udid": device.udid,
        "state": device.state,
        "name": device.device_name,
        "serial_number": device.serial_number,
        "model": device.model,
        "model_name": device.model_name,
        "product_name": device.product_name,
        "os_version": device.os_version,
        "build_version": device.build_version,
        "group": device.group.name if device.group else None,
        "access_rights": device.access_rights,
        "topic": device.topic,
        "push_token_set": bool(device.push_token),
        "unlock_token_escrowed": device.unlock_token is not None,
        "bootstrap_token_escrowed": device.bootstrap_token is not None,
        "enrollment_count": device.enrollment_count,
        "authenticated_at": _iso(device.authenticated_at),
        "enrolled_at": _iso(device.enrolled_at),
        "token_updated_at": _iso(device.token_updated_at),
        "checked_out_at": _iso(device.checked_out_at),
        "last_seen_at": _iso(device.last_seen_at),
        "inventory": reports,
        "recent_commands": recent_commands(device, recent),
    }


# Keys of every answer: the rest is what the command returned.
_ENVELOPE = {"Status", "UDID", "CommandUUID", "ErrorChain", "EnrollmentID"}


def _answer(row) -> dict | None:
    """What the device returned, minus the envelope, as JSON (bytes as base64)."""
    result = row.result_dict() if getattr(row, "result", None) else None
    if not result:
        return None
    return json_safe({k: v for k, v in result.items() if k not in _ENVELOPE}) or None


def _history_entry(row, archived: bool) -> dict:
    entry = {
        "command_uuid": row.command.uuid,
        "request_type": row.request_type,
        "status": row.status,
        "queued_at": _iso(row.created_at),
        "sent_at": _iso(row.sent_at),
        "answered_at": _iso(row.answered_at),
        "error_chain": row.error_chain,
    }
    if archived:
        entry["archived"] = True
    else:
        entry["result"] = _answer(row)
    return entry


def recent_commands(device: Device, limit: int) -> list[dict]:
    """The device's latest commands: the live queue first, then the archive."""
    live = (
        QueuedCommand.objects.filter(device=device)
        .select_related("command")
        .order_by("-id")[:limit]
    )
    history = [_history_entry(row, archived=False) for row in live]
    if len(history) < limit:
        archived = (
            ArchivedCommand.objects.filter(device=device)
            .select_related("command")
            .order_by("-answered_at")[: limit - len(history)]
        )
        history += [_history_entry(row, archived=True) for row in archived]
    return history
