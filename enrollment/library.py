"""The configuration-profile library: upload, validate, assign to devices and groups.

What a device should have is its assignments (direct or through its group); what it has is
its latest ProfileList (devices.InstalledProfile). Assigning queues InstallProfile to the
devices that lack the profile; unassigning queues RemoveProfile; each ProfileList answer
queues what is still missing.
"""

import hashlib
import plistlib

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from commands.catalog import INSTALL_PROFILES
from commands.models import PENDING_STATUSES, QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, DeviceGroup, InstalledProfile
from mdm_portal.audit import audit

from .models import Profile, ProfileAssignment, ProfileCommand
from .profiles import ProfileError, load_profile


class LibraryError(ValueError):
    """The profile or the assignment is refused; the message says what is wrong."""


class LibraryConflict(LibraryError):
    """The library's state refuses it: already assigned, or still assigned somewhere."""


def _by(by) -> tuple[str, object | None]:
    """Who acts, as (name, user): `by` is a staff User or the name of a system actor."""
    if hasattr(by, "get_username"):
        return by.get_username(), by
    return str(by), None


def profile_problems(profile: dict) -> list[str]:
    """Everything that keeps `profile` from being a valid configuration profile."""
    problems = []
    for key, kind in (("PayloadIdentifier", str), ("PayloadUUID", str), ("PayloadVersion", int)):
        value = profile.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            problems.append(f"{key} is missing or not a {kind.__name__}")
    content = profile.get("PayloadContent")
    if not isinstance(content, list):
        return [*problems, "PayloadContent must be an array of payloads"]
    for index, payload in enumerate(content):
        if not isinstance(payload, dict):
            problems.append(f"PayloadContent[{index}] is not a dictionary")
            continue
        for key in ("PayloadType", "PayloadIdentifier", "PayloadUUID"):
            if not isinstance(payload.get(key), str) or not payload.get(key):
                problems.append(f"PayloadContent[{index}] has no {key} string")
    return problems


def upload_profile(data: bytes, *, name: str = "", uploaded_by="") -> Profile:
    """Store a .mobileconfig (XML, binary or signed plist) in the library, validated.

    A profile whose PayloadIdentifier is already in the library replaces it (a new version);
    the devices assigned to it get the new one as they report their ProfileList.
    """
    try:
        profile = load_profile(data)
    except ProfileError as exc:
        raise LibraryError(str(exc)) from None
    problems = profile_problems(profile)
    if problems:
        raise LibraryError("invalid profile: " + "; ".join(problems))
    payload = plistlib.dumps(profile)
    uploader, _user = _by(uploaded_by)
    fields = {
        "name": (name or profile.get("PayloadDisplayName") or profile["PayloadIdentifier"])[:255],
        "uuid": profile["PayloadUUID"],
        "version": profile["PayloadVersion"],
        "payload": payload,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "description": str(profile.get("PayloadDescription", "")),
        "uploaded_by": uploader[:150],
    }
    stored, created = Profile.objects.update_or_create(
        identifier=profile["PayloadIdentifier"], defaults=fields
    )
    audit(
        "profile.uploaded" if created else "profile.replaced",
        actor=uploaded_by or "system",
        target=stored.identifier,
        sha256=stored.sha256,
    )
    return stored


def assigned_devices(profile: Profile) -> QuerySet:
    """Managed devices the profile is assigned to, directly or through their group."""
    assignments = ProfileAssignment.objects.filter(profile=profile)
    return Device.objects.filter(
        Q(pk__in=assignments.exclude(device=None).values("device"))
        | Q(group__in=assignments.exclude(group=None).values("group")),
        state=Device.State.ENROLLED,
    )


def _lacking(profile: Profile, devices: QuerySet) -> QuerySet:
    """Of `devices`, those that neither report this version installed nor have it pending."""
    installed = InstalledProfile.objects.filter(identifier=profile.identifier, uuid=profile.uuid)
    pending = QueuedCommand.objects.filter(
        request_type="InstallProfile",
        status__in=PENDING_STATUSES,
        command__profile_link__identifier=profile.identifier,
    )
    return devices.exclude(pk__in=installed.values("device")).exclude(
        pk__in=pending.values("device")
    )


def install_where_missing(profile: Profile, devices: QuerySet, *, by) -> tuple[int, int]:
    """Queue one InstallProfile for the devices that lack the profile. Returns (queued, skipped).

    Devices enrolled without the right to install profiles are skipped, not refused: the
    assignment stays and applies if they re-enroll with it. So are devices whose push token
    APNs declared invalid (the queue refuses them): their next ProfileList brings it.
    """
    lacking = _lacking(profile, devices)
    allowed = (
        lacking.annotate(install_right=F("access_rights").bitand(INSTALL_PROFILES))
        .filter(install_right=INSTALL_PROFILES)
        .filter(token_invalid_at__isnull=True)
    )
    count = allowed.count()
    skipped = lacking.count() - count
    if count:
        _enqueue_for_profile(
            profile, allowed, "InstallProfile", {"Payload": bytes(profile.payload)}, by=by
        )
    return count, skipped


def _enqueue_for_profile(
    profile: Profile, devices: QuerySet, request_type: str, payload: dict, *, by
) -> None:
    """Queue a command for `profile` and remember which profile it is for (one transaction)."""
    name, user = _by(by)
    with transaction.atomic():
        command = enqueue(devices, request_type, payload, queued_by=name, user=user)
        ProfileCommand.objects.create(command=command, identifier=profile.identifier)


def _target(device: Device | None, group: DeviceGroup | None) -> dict:
    if (device is None) == (group is None):
        raise LibraryError("assign to a device or to a group (exactly one)")
    return {"device": device} if device is not None else {"group": group}


def assign(
    profile: Profile,
    *,
    device: Device | None = None,
    group: DeviceGroup | None = None,
    by,
    refuse_existing: bool = False,
) -> tuple[int, int]:
    """Assign the profile and queue it where it is missing. Returns (queued, skipped).

    Assigning again queues it where it went missing since; with `refuse_existing` an existing
    assignment is a LibraryConflict instead (the API: the profile is already there)."""
    target = _target(device, group)
    name, _user = _by(by)
    with transaction.atomic():
        _assignment, created = ProfileAssignment.objects.get_or_create(
            profile=profile, **target, defaults={"created_by": name[:150]}
        )
        if not created and refuse_existing:
            raise LibraryConflict(
                f"{profile.identifier} is already assigned to {device or group}"
                f" (installed on {installed_count(profile, device=device, group=group)})"
            )
        members = (
            Device.objects.filter(pk=device.pk, state=Device.State.ENROLLED)
            if device is not None
            else Device.objects.filter(group=group, state=Device.State.ENROLLED)
        )
        queued, skipped = install_where_missing(profile, members, by=by)
        audit("profile.assigned", actor=by, target=profile.identifier, to=str(device or group))
    return queued, skipped


def installed_count(
    profile: Profile, *, device: Device | None = None, group: DeviceGroup | None = None
) -> int:
    """On how many devices (of `device`, of `group`, or of the fleet) this version is."""
    installed = InstalledProfile.objects.filter(identifier=profile.identifier, uuid=profile.uuid)
    if device is not None:
        installed = installed.filter(device=device)
    elif group is not None:
        installed = installed.filter(device__group=group)
    return installed.values("device").distinct().count()


def delete_profile(profile: Profile, *, by) -> None:
    """Remove a profile from the library. Refused while it is assigned (unassign first, which
    removes it from the devices); devices that have it keep it."""
    with transaction.atomic():
        assignments = ProfileAssignment.objects.filter(profile=profile).count()
        if assignments:
            raise LibraryConflict(
                f"{profile.identifier} is assigned {assignments} time(s): unassign it first"
            )
        identifier = profile.identifier
        profile.delete()
        audit("profile.deleted", actor=by, target=identifier)


def group_assignments(group: DeviceGroup) -> int:
    """How many profiles are assigned to `group` (a group with some is not deleted)."""
    return ProfileAssignment.objects.filter(group=group).count()


def unassign(
    profile: Profile, *, device: Device | None = None, group: DeviceGroup | None = None, by
) -> int:
    """Remove an assignment; queue RemoveProfile where nothing else keeps the profile."""
    target = _target(device, group)
    with transaction.atomic():
        deleted, _ = ProfileAssignment.objects.filter(profile=profile, **target).delete()
        if not deleted:
            raise LibraryError(f"{profile.identifier} is not assigned to {device or group}")
        members = Device.objects.filter(pk=device.pk) if device is not None else group.devices.all()
        still = assigned_devices(profile)
        has_it = InstalledProfile.objects.filter(identifier=profile.identifier).values("device")
        pending = QueuedCommand.objects.filter(
            request_type="InstallProfile",
            status__in=PENDING_STATUSES,
            command__profile_link__identifier=profile.identifier,
        )
        losing = members.filter(state=Device.State.ENROLLED).exclude(pk__in=still.values("pk"))
        # Whatever install is still waiting for them is no longer wanted.
        pending.filter(device__in=losing).update(status=Status.CANCELED, answered_at=timezone.now())
        to_remove = losing.filter(pk__in=has_it)
        count = to_remove.count()
        if count:
            _enqueue_for_profile(
                profile, to_remove, "RemoveProfile", {"Identifier": profile.identifier}, by=by
            )
        audit("profile.unassigned", actor=by, target=profile.identifier, to=str(device or group))
    return count


def reconcile_device(device: Device) -> int:
    """After a ProfileList: queue every assigned profile the device still lacks."""
    wanted = Q(device=device)
    if device.group_id is not None:
        wanted |= Q(group_id=device.group_id)
    profiles = Profile.objects.filter(
        pk__in=ProfileAssignment.objects.filter(wanted).values("profile")
    )
    queued = 0
    for profile in profiles:
        count, _ = install_where_missing(
            profile, Device.objects.filter(pk=device.pk), by="reconcile"
        )
        queued += count
    return queued
