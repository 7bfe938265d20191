"""Device groups as such: names, and finding the devices a person lists by UDID or serial.

A device is in at most one group (Device.group). What a group's membership means for the
profile library (its profiles installed on joining, removed on leaving) is enrollment's
business: `enrollment.membership` moves devices between groups; this module knows no profile.
"""

import re

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from mdm_portal.audit import audit

from .models import Device, DeviceGroup

NAME_MAX = DeviceGroup._meta.get_field("name").max_length
# How many UDIDs or serial numbers one request may list.
MAX_REFERENCES = 2000
_SEPARATORS = re.compile(r"[\s,;]+")


class GroupError(ValueError):
    """The group change is refused; the message says why and nothing was changed."""


class GroupExists(GroupError):
    """The name is another group's (the API answers 409)."""


def clean_group_name(name: str) -> str:
    """The name stripped, or GroupError when it is empty or too long."""
    name = (name or "").strip()
    if not name:
        raise GroupError("a group needs a name")
    if len(name) > NAME_MAX:
        raise GroupError(f"a group name has at most {NAME_MAX} characters")
    return name


def _name_taken(name: str, exclude: int | None = None) -> bool:
    others = DeviceGroup.objects.filter(name__iexact=name)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    return others.exists()


def create_group(name: str, *, description: str = "", by, address: str | None = None):
    """A new group, audited; GroupError if the name is empty, too long or taken."""
    name = clean_group_name(name)
    if _name_taken(name):
        raise GroupExists(f"a group named {name!r} already exists")
    try:
        with transaction.atomic():
            group = DeviceGroup.objects.create(name=name, description=description.strip())
            audit("group.created", actor=by, target=group.name, address=address)
    except IntegrityError:  # created meanwhile by someone else
        raise GroupExists(f"a group named {name!r} already exists") from None
    return group


def get_or_create_group(name: str, *, by, address: str | None = None) -> tuple[DeviceGroup, bool]:
    """The group named `name` (any case), created and audited if there is none."""
    name = clean_group_name(name)
    existing = DeviceGroup.objects.filter(name__iexact=name).first()
    if existing is not None:
        return existing, False
    return create_group(name, by=by, address=address), True


def rename_group(
    group: DeviceGroup, name: str, *, description: str | None = None, by, address=None
) -> None:
    """Rename the group (and change its description when given), audited."""
    name = clean_group_name(name)
    if _name_taken(name, exclude=group.pk):
        raise GroupExists(f"a group named {name!r} already exists")
    old = group.name
    group.name = name
    fields = ["name"]
    if description is not None:
        group.description = description.strip()
        fields.append("description")
    try:
        with transaction.atomic():
            group.save(update_fields=fields)
            audit("group.renamed", actor=by, target=group.name, address=address, old_name=old)
    except IntegrityError:
        group.name = old
        raise GroupExists(f"a group named {name!r} already exists") from None


def parse_references(text: str) -> list[str]:
    """The UDIDs or serial numbers in `text` (one per line, or separated by spaces, commas or
    semicolons), in order, without repeats."""
    references = list(dict.fromkeys(part for part in _SEPARATORS.split(text or "") if part))
    if len(references) > MAX_REFERENCES:
        raise GroupError(f"list at most {MAX_REFERENCES} devices at once")
    return references


def find_devices(text: str) -> QuerySet:
    """The devices `text` names by UDID or serial number (serials in any case).

    Every name must match a device: GroupError lists those that match none, so a typo never
    goes unnoticed. A serial number shared by several device records matches them all.
    """
    references = parse_references(text)
    if not references:
        raise GroupError("list at least one UDID or serial number")
    serials = {reference.upper() for reference in references}
    matched = Device.objects.filter(udid__in=references) | Device.objects.filter(
        serial_number__in=serials
    )
    found_udids, found_serials = set(), set()
    for udid, serial in matched.values_list("udid", "serial_number"):
        found_udids.add(udid)
        found_serials.add(serial.upper())
    unknown = [r for r in references if r not in found_udids and r.upper() not in found_serials]
    if unknown:
        shown = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        raise GroupError(f"no device has this UDID or serial number: {shown}")
    return Device.objects.filter(pk__in=matched.values("pk"))


def set_group(devices: QuerySet, group: DeviceGroup | None) -> int:
    """Put `devices` in `group` (None: in no group), one UPDATE. Returns how many moved.

    Plain membership: callers that must keep the profile library consistent go through
    enrollment.membership.
    """
    moving = devices.exclude(group=group) if group is not None else devices.exclude(group=None)
    return moving.update(group=group)
