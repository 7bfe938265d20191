"""The "Declarations" section of a device's page (/devices/<udid>/): where each declaration
stands on the device (declarations.states.device_rows) and its last status report, the status
items as dotted names and values (management.declarations, the table above, left out)."""

from devices.models import Device
from mdm_portal.masking import masked

from ..states import counts, device_rows, last_report
from ..status import DECLARATIONS_ITEM
from .tables import StateCounts, StateTable


def dotted(items: dict, prefix: str = ""):
    """Nested status items as (dotted name, value) pairs: device.operating-system.version."""
    for key, value in items.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from dotted(value, name)
        else:
            yield name, value


def declarations_section(device: Device) -> dict:
    """The section's context; `empty` when the device has no declaration and never reported."""
    rows = device_rows(device)
    report = last_report(device)
    reported = report is not None and report.last_report_at is not None
    if not rows and not reported:
        return {"empty": True, "synced": report is not None and report.last_sync_at}
    items = [
        (name, value)
        for name, value in dotted(masked(report.status_items or {}) if reported else {})
        if not name.startswith(DECLARATIONS_ITEM)
    ]
    errors = (report.last_report or {}).get("Errors") if reported else None
    return {
        "empty": False,
        "table": StateTable(rows, exclude=("device",), orderable=False),
        "state_counts": StateCounts(counts(rows)),
        "sync": report,
        "reported": reported,
        "status_items": items,
        "errors": errors or [],
    }
