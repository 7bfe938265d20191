"""Group membership that keeps the profile library consistent.

A group's profile assignments apply to its members, so changing who is in a group changes
what they should have: a device that joins gets the group's profiles it lacks (InstallProfile,
as `reconcile_device` would after its next ProfileList), a device that leaves loses the group's
profiles that nothing else keeps on it (RemoveProfile, as `unassign` does). A device is in one
group at most, so joining a group leaves the previous one, with the same consequences.

Membership itself is `devices.groups.set_group`; this module adds what the library needs.
"""

from dataclasses import asdict, dataclass

from django.db import transaction
from django.db.models import QuerySet

from devices.groups import set_group
from devices.models import Device, DeviceGroup
from mdm_portal.audit import audit

from .library import install_where_missing, withdraw
from .models import Enrollment, Profile, ProfileAssignment
from .signals import membership_changed


@dataclass(frozen=True)
class MembershipChange:
    """What a membership change did: devices moved, and the library commands it queued."""

    moved: int = 0
    from_other_groups: int = 0  # of `moved`, devices that left another group to join
    installs: int = 0
    removals: int = 0
    skipped: int = 0  # devices that could not take a command now (rights, push token)


def _group_profiles(group_ids) -> QuerySet:
    return Profile.objects.filter(
        pk__in=ProfileAssignment.objects.filter(group_id__in=group_ids).values("profile")
    )


def _regroup(devices: QuerySet, group: DeviceGroup | None, *, by, address) -> MembershipChange:
    """Move `devices` to `group` (None: out of any group) and reconcile the library."""
    moving = devices.exclude(group=group) if group is not None else devices.exclude(group=None)
    pks = list(moving.values_list("pk", flat=True))
    if not pks:
        return MembershipChange()
    moved = Device.objects.filter(pk__in=pks)
    left = set(moved.exclude(group=None).values_list("group_id", flat=True))
    from_other = moved.exclude(group=None).count() if group is not None else 0
    set_group(moved, group)
    membership_changed.send(DeviceGroup, device_ids=pks)
    installs = removals = skipped = 0
    # What the groups they left gave them goes, unless something else keeps it.
    for profile in _group_profiles(left):
        queued, skipped_here = withdraw(profile, moved, by=by, address=address)
        removals += queued
        skipped += skipped_here
    if group is not None:
        enrolled = moved.filter(state=Device.State.ENROLLED)
        for profile in _group_profiles([group.pk]):
            queued, skipped_here = install_where_missing(profile, enrolled, by=by, address=address)
            installs += queued
            skipped += skipped_here
    return MembershipChange(len(pks), from_other, installs, removals, skipped)


def add_to_group(
    group: DeviceGroup, devices: QuerySet, *, by, address: str | None = None
) -> MembershipChange:
    """Put `devices` in `group` (leaving the group they were in), queueing the group's
    profiles where missing and removing those of their old group that nothing else keeps."""
    with transaction.atomic():
        change = _regroup(devices, group, by=by, address=address)
        _audit_change("group.devices_added", group, _udids(devices), change, by, address)
    return change


def remove_from_group(
    group: DeviceGroup, devices: QuerySet, *, by, address: str | None = None
) -> MembershipChange:
    """Take the devices of `devices` that are in `group` out of it (into no group), removing
    the group's profiles that nothing else keeps on them."""
    members = devices.filter(group=group)
    with transaction.atomic():
        udids = _udids(members)
        change = _regroup(members, None, by=by, address=address)
        _audit_change("group.devices_removed", group, udids, change, by, address)
    return change


def deletion_impact(group: DeviceGroup) -> dict:
    """What deleting `group` would do, for the confirmation page."""
    return {
        "devices": group.devices.count(),
        "profiles": list(_group_profiles([group.pk]).order_by("name")),
        "enrollments": list(Enrollment.objects.filter(group=group).order_by("name")),
    }


def delete_group(group: DeviceGroup, *, by, address: str | None = None) -> MembershipChange:
    """Delete the group: its devices end up in no group and lose the group's profiles that
    nothing else keeps (RemoveProfile), its assignments go, and the enrollments that put
    devices in it put them in none from now on."""
    with transaction.atomic():
        profiles = [profile.identifier for profile in _group_profiles([group.pk])]
        enrollments = list(Enrollment.objects.filter(group=group).values_list("name", flat=True))
        change = _regroup(Device.objects.filter(group=group), None, by=by, address=address)
        name = group.name
        group.delete()  # cascades to its assignments; enrollments' group becomes NULL
        audit(
            "group.deleted",
            actor=by,
            target=name,
            address=address,
            devices=change.moved,
            profiles=profiles,
            enrollments=enrollments,
            removals=change.removals,
            skipped=change.skipped,
        )
    return change


def _audit_change(action: str, group, udids: list[str], change: MembershipChange, by, address):
    """The membership change, with what it queued (the counts of MembershipChange)."""
    audit(action, actor=by, target=group.name, address=address, devices=udids, **asdict(change))


def _udids(devices: QuerySet, limit: int = 100) -> list[str]:
    """The UDIDs for the audit entry (the first `limit`: the counts say how many in all)."""
    return list(devices.order_by("udid").values_list("udid", flat=True)[:limit])
