"""A device as plain data: what `mdm_device` prints and the API will serve. Its command
history comes from commands.history (a higher layer), which the caller adds."""

from .models import Device


def iso(value) -> str | None:
    return value.isoformat() if value else None


def device_summary(device: Device) -> dict:
    reports = {
        report.kind: {"reported_at": iso(report.reported_at), "data": report.data}
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
        "authenticated_at": iso(device.authenticated_at),
        "enrolled_at": iso(device.enrolled_at),
        "token_updated_at": iso(device.token_updated_at),
        "checked_out_at": iso(device.checked_out_at),
        "last_seen_at": iso(device.last_seen_at),
        "inventory": reports,
    }
