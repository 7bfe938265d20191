"""Declaration sets: which declarations go together, and to which devices and groups.

Every change here is one transaction that ends with sync.resync for the devices concerned, so
exactly the devices whose manifest changed get one DeclarativeManagement command. A set is
not given to a device (directly, through a group, or by adding a declaration to a set it
has) whose platform or OS version cannot take one of its declarations: that is refused with
the device and the reason named.
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet

from devices.models import Device, DeviceGroup
from mdm_portal.audit import audit

from .manifest import with_references
from .models import Declaration, DeclarationSet
from .schema import TYPES, DeclarationError, unsupported_reason
from .store import actor_label, devices_of_sets
from .sync import resync

SHOWN_REFUSALS = 5


def clean_set_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise DeclarationError("a set needs a name")
    if len(name) > 150:
        raise DeclarationError("a set's name is at most 150 characters")
    return name


def create_set(
    name: str, *, description: str = "", by=None, address: str | None = None
) -> DeclarationSet:
    name = clean_set_name(name)
    with transaction.atomic():
        if DeclarationSet.objects.filter(name=name).exists():
            raise DeclarationError(f"a declaration set named {name!r} exists")
        created = DeclarationSet.objects.create(
            name=name, description=description, created_by=actor_label(by)
        )
        audit("declaration_set.created", actor=by or "system", target=name, address=address)
    return created


def update_set(
    declaration_set: DeclarationSet,
    *,
    name: str | None = None,
    description: str | None = None,
    by=None,
    address: str | None = None,
) -> DeclarationSet:
    """Rename the set or change its description (devices see neither: no sync)."""
    old_name, old_description = declaration_set.name, declaration_set.description
    name = old_name if name is None else clean_set_name(name)
    description = old_description if description is None else description
    if (name, description) == (old_name, old_description):
        return declaration_set
    with transaction.atomic():
        if DeclarationSet.objects.filter(name=name).exclude(pk=declaration_set.pk).exists():
            raise DeclarationError(f"a declaration set named {name!r} exists")
        declaration_set.name, declaration_set.description = name, description
        declaration_set.save(update_fields=["name", "description"])
        changes = {"renamed_from": old_name} if name != old_name else {}
        if description != old_description:
            changes["description_changed"] = True
        audit(
            "declaration_set.updated",
            actor=by or "system",
            target=name,
            address=address,
            **changes,
        )
    return declaration_set


def delete_set(declaration_set: DeclarationSet, *, by=None, address: str | None = None) -> int:
    """Delete the set; its devices lose what nothing else gives them. Returns commands queued."""
    with transaction.atomic():
        devices = devices_of_sets([declaration_set.pk])
        name = declaration_set.name
        declaration_set.delete()
        audit("declaration_set.deleted", actor=by or "system", target=name, address=address)
        return resync(devices, by=actor_label(by))


def check_support(declarations: Iterable[Declaration], devices: QuerySet) -> None:
    """DeclarationError naming the first devices (and why) that cannot take a declaration.

    Devices are compared by (platform, OS version, supervised): a fleet has few of those.
    """
    chosen = list(with_references(declarations).values())
    if not chosen:
        return
    refusals: list[str] = []
    profiles = devices.values_list("platform", "os_version", "is_supervised").distinct()
    for platform, os_version, supervised in profiles:
        for declaration in chosen:
            reason = unsupported_reason(
                TYPES[declaration.type],
                declaration.payload,
                platform=platform,
                os_version=os_version,
                supervised=supervised,
            )
            if reason is None:
                continue
            named = devices.filter(
                platform=platform, os_version=os_version, is_supervised=supervised
            ).values_list("udid", flat=True)[:SHOWN_REFUSALS]
            refusals.append(f"{declaration.identifier} on {', '.join(named)}: {reason}")
            break
        if len(refusals) >= SHOWN_REFUSALS:
            break
    if refusals:
        raise DeclarationError("not supported by these devices: " + "; ".join(refusals))


def _targets(devices: QuerySet | None, groups: Iterable[DeviceGroup]) -> QuerySet:
    groups = list(groups)
    condition = Q(pk__in=devices.values("pk")) if devices is not None else Q(pk__in=[])
    if groups:
        condition |= Q(group__in=groups)
    return Device.objects.filter(condition)


def add_declarations(
    declaration_set: DeclarationSet,
    declarations: Iterable[Declaration],
    *,
    by=None,
    address: str | None = None,
) -> int:
    """Put declarations in the set (checked for its devices' support first); its devices are
    told. Returns commands queued."""
    return _change_contents(declaration_set, declarations, adding=True, by=by, address=address)


def remove_declarations(
    declaration_set: DeclarationSet,
    declarations: Iterable[Declaration],
    *,
    by=None,
    address: str | None = None,
) -> int:
    """Take declarations out of the set; its devices are told. Returns commands queued."""
    return _change_contents(declaration_set, declarations, adding=False, by=by, address=address)


def _change_contents(declaration_set, declarations, *, adding: bool, by, address) -> int:
    declarations = list(declarations)
    with transaction.atomic():
        members = Device.objects.filter(pk__in=devices_of_sets([declaration_set.pk]))
        if adding:
            check_support(declarations, members)
        member_ids = list(members.values_list("pk", flat=True))
        if adding:
            declaration_set.declarations.add(*declarations)
        else:
            declaration_set.declarations.remove(*declarations)
        audit(
            "declaration_set.declarations_added"
            if adding
            else "declaration_set.declarations_removed",
            actor=by or "system",
            target=declaration_set.name,
            address=address,
            declarations=sorted(d.identifier for d in declarations),
        )
        return resync(member_ids, by=actor_label(by))


def assign(
    declaration_set: DeclarationSet,
    *,
    devices: QuerySet | None = None,
    groups: Iterable[DeviceGroup] = (),
    by=None,
    address: str | None = None,
) -> int:
    """Give the set to devices and groups (checked for support first). Returns commands queued."""
    return _reassign(declaration_set, devices, groups, adding=True, by=by, address=address)


def unassign(
    declaration_set: DeclarationSet,
    *,
    devices: QuerySet | None = None,
    groups: Iterable[DeviceGroup] = (),
    by=None,
    address: str | None = None,
) -> int:
    """Take the set from devices and groups; they are told. Returns commands queued."""
    return _reassign(declaration_set, devices, groups, adding=False, by=by, address=address)


def _reassign(declaration_set, devices, groups, *, adding: bool, by, address) -> int:
    groups = list(groups)
    with transaction.atomic():
        targets = _targets(devices, groups)
        if adding:
            check_support(declaration_set.declarations.all(), targets)
        target_ids = list(targets.values_list("pk", flat=True))
        udids = []
        if devices is not None:
            udids = sorted(devices.values_list("udid", flat=True)[:100])
        chosen = list(devices) if devices is not None else []
        if adding:
            declaration_set.devices.add(*chosen)
            declaration_set.groups.add(*groups)
        else:
            declaration_set.devices.remove(*chosen)
            declaration_set.groups.remove(*groups)
        audit(
            "declaration_set.assigned" if adding else "declaration_set.unassigned",
            actor=by or "system",
            target=declaration_set.name,
            address=address,
            devices=udids,
            groups=sorted(group.name for group in groups),
        )
        return resync(target_ids, by=actor_label(by))
