"""Device groups: create, rename, delete, and which group a device is in (one at most).
Every change is audited. What a group means to the profile library (its assignments) is
enrollment's; deleting a group that still has assignments is refused there."""

from django.db import IntegrityError, transaction

from mdm_portal.audit import audit

from .models import Device, DeviceGroup


class GroupError(ValueError):
    """A group change that cannot be made; the message says why."""


class GroupExists(GroupError):
    """The name is taken."""


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise GroupError("name: a group needs a name")
    if len(name) > 150:
        raise GroupError("name: at most 150 characters")
    return name


def create_group(name: str, description: str = "", *, actor) -> DeviceGroup:
    name = _clean_name(name)
    try:
        with transaction.atomic():
            group = DeviceGroup.objects.create(name=name, description=description or "")
            audit("group.created", actor=actor, target=group.name)
    except IntegrityError:
        raise GroupExists(f"name: a group named {name!r} exists") from None
    return group


def update_group(
    group: DeviceGroup, *, name: str | None = None, description: str | None = None, actor
) -> DeviceGroup:
    changes = {}
    if name is not None and name.strip() != group.name:
        changes["name"] = _clean_name(name)
    if description is not None and description != group.description:
        changes["description"] = description
    if not changes:
        return group
    old = group.name
    try:
        with transaction.atomic():
            for field, value in changes.items():
                setattr(group, field, value)
            group.save(update_fields=list(changes))
            audit("group.changed", actor=actor, target=old, **changes)
    except IntegrityError:
        raise GroupExists(f"name: a group named {changes['name']!r} exists") from None
    return group


def delete_group(group: DeviceGroup, *, actor) -> None:
    """Delete the group; its devices stay, in no group."""
    with transaction.atomic():
        members = group.devices.count()
        name = group.name
        group.delete()
        audit("group.deleted", actor=actor, target=name, devices=members)


def set_device_group(device: Device, group: DeviceGroup | None, *, actor) -> Device:
    """Put the device in `group` (None: in no group)."""
    if device.group_id == (group.pk if group else None):
        return device
    with transaction.atomic():
        previous = device.group.name if device.group_id else None
        device.group = group
        device.save(update_fields=["group"])
        audit(
            "device.group_set",
            actor=actor,
            target=device.udid,
            group=group.name if group else None,
            previous=previous,
        )
    return device
