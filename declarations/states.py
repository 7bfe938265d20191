"""Where each declaration stands on each device, for the pages, the API and the CLI alike.

A device's row for a declaration joins what it should have (its manifest) with what it last
reported (DeclarationState):

- failed: the device reported it invalid or with an Error.* reason;
- active: reported active and valid, at the ServerToken the portal holds;
- inactive: reported, not active and not failed (an activation's predicate is false, a
  configuration no activation references);
- pending: in the manifest, but not yet reported at its current ServerToken;
- removing: reported by the device but no longer in its manifest (its next sync removes it).
"""

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count

from devices.models import Device

from .manifest import manifest
from .models import Declaration, DeclarationState, DeviceDeclarations
from .store import affected_devices

FAILED, ACTIVE, INACTIVE, PENDING, REMOVING = "failed", "active", "inactive", "pending", "removing"
STATES = (FAILED, PENDING, ACTIVE, INACTIVE, REMOVING)


@dataclass(frozen=True)
class Row:
    """One declaration on one device."""

    device: Device
    identifier: str
    kind: str
    type: str
    state: str
    server_token: str  # the portal's current one ("" when the portal no longer has it)
    reported: DeclarationState | None

    @property
    def reasons(self) -> list:
        return self.reported.reasons if self.reported is not None else []


def state_of(expected_token: str | None, reported: DeclarationState | None) -> str:
    if expected_token is None:
        return REMOVING
    if reported is None or reported.server_token != expected_token:
        return PENDING
    if reported.failed:
        return FAILED
    return ACTIVE if reported.active else INACTIVE


def device_rows(device: Device) -> list[Row]:
    """Every declaration the device should have or still reports, failed ones first."""
    expected = manifest(device)
    reported = {s.identifier: s for s in DeclarationState.objects.filter(device=device)}
    rows = []
    for identifier in sorted(set(expected) | set(reported)):
        declaration = expected.get(identifier)
        state = reported.get(identifier)
        rows.append(
            Row(
                device=device,
                identifier=identifier,
                kind=declaration.kind if declaration else state.kind,
                type=declaration.type if declaration else "",
                state=state_of(declaration.server_token if declaration else None, state),
                server_token=declaration.server_token if declaration else "",
                reported=state,
            )
        )
    return sorted(rows, key=lambda row: (STATES.index(row.state), row.identifier))


def declaration_rows(declaration: Declaration) -> list[Row]:
    """The declaration on every device that should have it or reports it."""
    device_ids = affected_devices(declaration.identifier)
    reported = {
        s.device_id: s for s in DeclarationState.objects.filter(identifier=declaration.identifier)
    }
    devices = Device.objects.filter(pk__in=device_ids | set(reported)).order_by(
        "device_name", "udid"
    )
    rows = []
    for device in devices:
        expected = declaration.server_token if device.pk in device_ids else None
        state = reported.get(device.pk)
        rows.append(
            Row(
                device=device,
                identifier=declaration.identifier,
                kind=declaration.kind,
                type=declaration.type,
                state=state_of(expected, state),
                server_token=declaration.server_token,
                reported=state,
            )
        )
    return sorted(rows, key=lambda row: (STATES.index(row.state), row.device.udid))


def fleet_rows() -> list[Row]:
    """Every declaration on every device: each declaration's rows, and what devices still
    report of declarations the portal no longer holds (removing). Failed ones first."""
    rows = [row for d in Declaration.objects.order_by("identifier") for row in declaration_rows(d)]
    gone = DeclarationState.objects.exclude(
        identifier__in=Declaration.objects.values("identifier")
    ).select_related("device")
    rows += [
        Row(
            device=state.device,
            identifier=state.identifier,
            kind=state.kind,
            type="",
            state=REMOVING,
            server_token="",
            reported=state,
        )
        for state in gone
    ]
    return sorted(rows, key=lambda row: (STATES.index(row.state), row.identifier, row.device.udid))


def counts(rows: list[Row]) -> dict[str, int]:
    """How many rows are in each state (every state present, zero or not)."""
    found = Counter(row.state for row in rows)
    return {state: found.get(state, 0) for state in STATES}


def failing_summary() -> dict[str, int]:
    """For the dashboard: declarations failing on at least one device, and those devices."""
    failed = DeclarationState.objects.filter(failed=True)
    return {
        "declarations": failed.values("identifier").distinct().count(),
        "devices": failed.values("device").distinct().count(),
    }


def failing_by_declaration() -> dict[str, int]:
    """Failed devices per declaration identifier (for lists)."""
    rows = (
        DeclarationState.objects.filter(failed=True)
        .values("identifier")
        .annotate(devices=Count("device", distinct=True))
    )
    return {row["identifier"]: row["devices"] for row in rows}


def last_report(device: Device) -> DeviceDeclarations | None:
    return DeviceDeclarations.objects.filter(device=device).first()
