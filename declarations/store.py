"""Adding, changing and deleting declarations: validated against Apple's schema, with the
ServerToken recomputed, audited, and the devices whose manifest changes told (sync.resync),
all in one transaction. The UI, the API and `mdm_declaration` all come here."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from devices.models import Device
from mdm_portal.audit import actor_name, audit

from .manifest import manifest_of_sets, references
from .models import Declaration, DeclarationRevision, DeclarationSet, ServedAsset
from .schema import DeclarationError, validate_declaration
from .sync import resync
from .tokens import server_token

# Revisions kept per declaration: what devices in the middle of a sync may still fetch.
KEPT_REVISIONS = 5


class DeclarationInUse(DeclarationError):
    """The declaration is referenced by others, so it cannot be deleted (the API's 409)."""


def actor_label(by) -> str:
    return actor_name(by) if by is not None else "system"


def sets_including(identifier: str) -> list[int]:
    """The sets whose manifest holds `identifier` (in the set, or referenced from it)."""
    return [
        pk
        for pk in DeclarationSet.objects.values_list("pk", flat=True)
        if identifier in manifest_of_sets([pk])
    ]


def devices_of_sets(set_ids: Iterable[int]) -> set[int]:
    """The devices the sets are assigned to, directly or through their group."""
    set_ids = list(set_ids)
    if not set_ids:
        return set()
    through = DeclarationSet.groups.through.objects.filter(declarationset_id__in=set_ids)
    direct = DeclarationSet.devices.through.objects.filter(declarationset_id__in=set_ids)
    return set(
        Device.objects.filter(
            Q(pk__in=direct.values("device_id")) | Q(group__in=through.values("devicegroup_id"))
        ).values_list("pk", flat=True)
    )


def affected_devices(identifier: str) -> set[int]:
    return devices_of_sets(sets_including(identifier))


@dataclass(frozen=True)
class Saved:
    """What store_declaration did: `changed` is False when the content was the same (the
    ServerToken too); `devices` are those whose manifest it changed, and `queued` counts the
    DeclarativeManagement commands it queued for them."""

    declaration: Declaration
    created: bool
    changed: bool
    queued: int
    devices: frozenset[int]


def save_declaration(data: dict, **options) -> tuple[Declaration, bool]:
    """store_declaration, returning what most callers need: (declaration, created)."""
    saved = store_declaration(data, **options)
    return saved.declaration, saved.created


def store_declaration(
    data: dict,
    *,
    by=None,
    address: str | None = None,
    description: str | None = None,
    create_only: bool = False,
    served: ServedAsset | None = None,
    tell_devices: bool = True,
) -> Saved:
    """Store a declaration given as JSON (Type, Identifier, Payload; a ServerToken given is
    ignored): a new one, or a new revision of the one with its Identifier. Raises
    DeclarationError naming the problem; then nothing changed.

    A declaration's Type cannot change (devices hold it by Identifier). The Reference of an
    asset whose data the portal serves is the portal's to write (`served` is how it does).
    Saved says whether the content changed and which devices it concerns (`mdm_declaration
    add` prints both). With tell_devices False the caller resyncs
    those devices itself, once for many declarations, so each gets one DeclarativeManagement."""
    declaration_type = validate_declaration(data)
    identifier = data["Identifier"]
    with transaction.atomic():
        existing = Declaration.objects.select_for_update().filter(identifier=identifier).first()
        if existing is not None and create_only:
            raise DeclarationError(
                f"a declaration with Identifier {identifier} exists", key="Identifier"
            )
        if existing is not None and existing.type != declaration_type.name:
            raise DeclarationError(
                f"{identifier} is a {existing.type} declaration; a Type cannot change "
                "(give the new one another Identifier)",
                key="Type",
            )
        portal_served = existing is not None and served is None and hasattr(existing, "served")
        if portal_served and data["Payload"].get("Reference") != existing.payload.get("Reference"):
            raise DeclarationError(
                f"{identifier}'s data is served by the portal: its Reference is the "
                "portal's to write (upload new data instead)",
                key="Reference",
            )
        declaration = existing or Declaration(identifier=identifier)
        token = server_token(declaration_type.name, identifier, data["Payload"])
        changed = existing is None or token != existing.server_token
        # A new note alone is no new revision (devices never see it), but it is a change.
        noted = existing is not None and description not in (None, existing.description)
        declaration.type = declaration_type.name
        declaration.kind = declaration_type.kind
        declaration.payload = data["Payload"]
        declaration.server_token = token
        if description is not None:
            declaration.description = description
        label = actor_label(by)
        if existing is None:
            declaration.created_by = label
        declaration.updated_by = label
        declaration.save()
        if changed:
            keep_revision(declaration)
        if changed or noted:
            audit(
                "declaration.created" if existing is None else "declaration.updated",
                actor=by or "system",
                target=identifier,
                address=address,
                type=declaration_type.name,
                server_token=token,
                # The payload's key names only: values may be secrets (account details).
                keys=sorted(data["Payload"]),
                **({"description_changed": True} if noted else {}),
            )
        devices = frozenset(affected_devices(identifier)) if changed else frozenset()
        queued = resync(devices, by=label) if tell_devices else 0
    return Saved(declaration, existing is None, changed, queued, devices)


def keep_revision(declaration: Declaration) -> None:
    """Record the declaration's content at its ServerToken, keeping the last few revisions."""
    DeclarationRevision.objects.get_or_create(
        identifier=declaration.identifier,
        server_token=declaration.server_token,
        defaults={
            "type": declaration.type,
            "kind": declaration.kind,
            "payload": declaration.payload,
        },
    )
    older = DeclarationRevision.objects.filter(identifier=declaration.identifier).order_by(
        "-created_at", "-pk"
    )[KEPT_REVISIONS:]
    DeclarationRevision.objects.filter(pk__in=list(older.values_list("pk", flat=True))).delete()


def referrers(declaration: Declaration) -> list[str]:
    """The identifiers of the declarations that refer to this one."""
    return sorted(
        other.identifier
        for other in Declaration.objects.exclude(pk=declaration.pk)
        if declaration.identifier in references(other)
    )


def delete_declaration(declaration: Declaration, *, by=None, address: str | None = None) -> int:
    """Delete a declaration nothing refers to; devices that had it are told (they then
    remove it). Returns how many DeclarativeManagement commands were queued."""
    with transaction.atomic():
        using = referrers(declaration)
        if using:
            raise DeclarationInUse(
                f"{declaration.identifier} is referenced by {', '.join(using)}: "
                "change or delete those first"
            )
        devices = affected_devices(declaration.identifier)
        identifier = declaration.identifier
        declaration.delete()
        DeclarationRevision.objects.filter(identifier=identifier).delete()
        audit(
            "declaration.deleted",
            actor=by or "system",
            target=identifier,
            address=address,
            type=declaration.type,
        )
        return resync(devices, by=actor_label(by))
