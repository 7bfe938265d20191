"""Group membership: a device belongs to one group at most (Device.group).

Adding devices to a group moves them out of the group they were in. Each change is one UPDATE
whatever the number of devices, audited with who, from where and which devices, and announced
(`devices.signals.group_membership_changed`) so the profile library can install the new
group's profiles and remove those of the old one that nothing else keeps.
"""

from django.db import transaction
from django.db.models import QuerySet

from mdm_portal.audit import audit

from .models import Device, DeviceGroup
from .signals import group_membership_changed

AUDITED_UDIDS = 50  # the audit entry names this many devices, and counts them all
_BATCH = 1000


def add_to_group(
    group: DeviceGroup, devices: QuerySet, *, actor, address: str | None = None
) -> int:
    """Put `devices` in `group`; returns how many were moved (those already in it are not)."""
    return _move(devices.exclude(group=group), group, actor=actor, address=address)


def remove_from_group(
    group: DeviceGroup, devices: QuerySet, *, actor, address: str | None = None
) -> int:
    """Take those of `devices` that are in `group` out of it; returns how many."""
    return _move(devices.filter(group=group), None, actor=actor, address=address)


def _move(devices: QuerySet, group: DeviceGroup | None, *, actor, address: str | None) -> int:
    with transaction.atomic():
        rows = list(
            Device.objects.select_for_update()
            .filter(pk__in=devices.values("pk"))
            .order_by("pk")
            .values_list("pk", "udid", "group_id")
        )
        if not rows:
            return 0
        moved = {pk: previous for pk, _udid, previous in rows}
        ids = list(moved)
        for start in range(0, len(ids), _BATCH):  # SQLite limits the parameters of a query
            Device.objects.filter(pk__in=ids[start : start + _BATCH]).update(group=group)
        group_membership_changed.send(Device, group=group, moved=moved, by=_name(actor))
        udids = [udid for _pk, udid, _previous in rows]
        audit(
            "group.devices_added" if group is not None else "group.devices_removed",
            actor=actor,
            target=group.name if group is not None else _names(set(moved.values())),
            address=address,
            count=len(rows),
            devices=udids[:AUDITED_UDIDS],
        )
    return len(rows)


def _name(actor) -> str:
    return actor.get_username() if hasattr(actor, "get_username") else str(actor)


def _names(group_ids: set[int | None]) -> str:
    return ", ".join(
        DeviceGroup.objects.filter(pk__in=group_ids).order_by("name").values_list("name", flat=True)
    )
