"""What declarations a device should have: its manifest.

A device should have every declaration of the sets assigned to it and to its group, and, so
that an assignment works as a whole, what those declarations reference: the configurations an
activation lists (StandardConfigurations) and the assets a declaration names in its
…AssetReference(s) keys, followed until nothing new is found. A reference to a declaration the
portal does not hold is left for the device to report (Error.MissingConfigurations, …).
"""

from collections.abc import Iterable

from django.db.models import Q

from devices.models import Device

from .models import Declaration, DeclarationSet, Kind
from .tokens import declarations_token


def references(declaration: Declaration) -> set[str]:
    """The identifiers a declaration refers to."""
    found: set[str] = set()
    if declaration.kind == Kind.ACTIVATION:
        listed = declaration.payload.get("StandardConfigurations") or []
        found.update(item for item in listed if isinstance(item, str))
    _asset_references(declaration.payload, found)
    return found


def _asset_references(value, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if "AssetReference" in key:
                if isinstance(item, str):
                    found.add(item)
                elif isinstance(item, list):
                    found.update(entry for entry in item if isinstance(entry, str))
            else:
                _asset_references(item, found)
    elif isinstance(value, list):
        for item in value:
            _asset_references(item, found)


def with_references(declarations: Iterable[Declaration]) -> dict[str, Declaration]:
    """The declarations and all they reference (that the portal holds), by identifier."""
    chosen = {declaration.identifier: declaration for declaration in declarations}
    wanted = set().union(*(references(d) for d in chosen.values())) - set(chosen)
    while wanted:
        found = list(Declaration.objects.filter(identifier__in=wanted))
        chosen.update((d.identifier, d) for d in found)
        wanted = set().union(*(references(d) for d in found)) - set(chosen) if found else set()
    return chosen


def sets_of(device: Device) -> list[DeclarationSet]:
    condition = Q(devices=device)
    if device.group_id is not None:
        condition |= Q(groups=device.group_id)
    return list(DeclarationSet.objects.filter(condition).distinct().order_by("name"))


def set_ids_by_device(device_ids: Iterable[int]) -> dict[int, frozenset[int]]:
    """For many devices at once: the ids of the sets each has (directly or by its group)."""
    device_ids = list(device_ids)
    found: dict[int, set[int]] = {pk: set() for pk in device_ids}
    direct = DeclarationSet.devices.through.objects.filter(device_id__in=device_ids)
    for device_id, set_id in direct.values_list("device_id", "declarationset_id"):
        found[device_id].add(set_id)
    groups = dict(
        Device.objects.filter(pk__in=device_ids, group__isnull=False).values_list("pk", "group_id")
    )
    by_group: dict[int, set[int]] = {}
    through = DeclarationSet.groups.through.objects.filter(devicegroup_id__in=set(groups.values()))
    for group_id, set_id in through.values_list("devicegroup_id", "declarationset_id"):
        by_group.setdefault(group_id, set()).add(set_id)
    for device_id, group_id in groups.items():
        found[device_id] |= by_group.get(group_id, set())
    return {pk: frozenset(ids) for pk, ids in found.items()}


def manifest_of_sets(set_ids: Iterable[int]) -> dict[str, Declaration]:
    declarations = Declaration.objects.filter(sets__in=list(set_ids)).distinct()
    return with_references(declarations)


def manifest(device: Device) -> dict[str, Declaration]:
    """The declarations `device` should have, by identifier."""
    return manifest_of_sets(set_ids_by_device([device.pk])[device.pk])


def token_of(declarations: dict[str, Declaration]) -> str:
    return declarations_token((d.identifier, d.server_token) for d in declarations.values())


def items_of(declarations: dict[str, Declaration]) -> dict[str, str]:
    """The manifest as stored with a sync: {identifier: server_token}."""
    return {d.identifier: d.server_token for d in declarations.values()}
