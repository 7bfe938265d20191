"""The configuration-profile library: upload, validate, assign to devices and groups.

What a device should have is its assignments (direct or through its group); what it has is
its latest ProfileList (devices.InstalledProfile). Assigning queues InstallProfile to the
devices that lack the profile; unassigning queues RemoveProfile; each ProfileList answer
queues what is still missing. Devices that cannot take the command now (enrolled without the
right to install profiles, or whose push token APNs declared invalid) are skipped and counted,
never a reason to refuse the whole assignment.

`by` is who acts: a staff User (recorded as the command's user) or a tool's name; `address`
is the client address a person acted from, for the audit log.
"""

import hashlib
import plistlib

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from commands.catalog import INSTALL_PROFILES
from commands.models import PENDING_STATUSES, Command, QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, DeviceGroup, InstalledProfile
from mdm_portal.audit import actor_name, actor_user, audit

from .models import Profile, ProfileAssignment, ProfileCommand
from .profiles import ProfileError, load_profile

# The largest .mobileconfig the library accepts: it travels whole in every InstallProfile.


class LibraryError(ValueError):
    """The profile or the assignment is refused; the message says what is wrong."""


def max_profile_bytes() -> int:
    """The largest profile the library takes (MDM_PROFILE_MAX_BYTES; nginx allows as much)."""
    return settings.MDM_PROFILE_MAX_BYTES


class LibraryConflict(LibraryError):
    """The library's state refuses it: already assigned there, or still assigned (409)."""


def size_problem(size: int) -> str | None:
    """Why a file of `size` bytes is too large for the library, or None."""
    limit = max_profile_bytes()
    if size <= limit:
        return None
    return (
        f"the file has {size:,} bytes; a profile may have at most {limit:,} bytes "
        f"({limit / (1024 * 1024):g} MiB)"
    )


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


def upload_profile(
    data: bytes, *, name: str = "", uploaded_by="", address: str | None = None
) -> Profile:
    """Store a .mobileconfig (XML, binary or signed plist) in the library, validated.

    A profile whose PayloadIdentifier is already in the library replaces it (a new version);
    the devices assigned to it get the new one as they report their ProfileList. Nothing is
    stored when it is refused.
    """
    problem = size_problem(len(data))
    if problem:
        raise LibraryError(problem)
    if not data:
        raise LibraryError("the file is empty")
    try:
        profile = load_profile(data)
    except ProfileError as exc:
        raise LibraryError(str(exc)) from None
    problems = profile_problems(profile)
    if problems:
        raise LibraryError("invalid profile: " + "; ".join(problems))
    payload = plistlib.dumps(profile)
    fields = {
        "name": (name or profile.get("PayloadDisplayName") or profile["PayloadIdentifier"])[:255],
        "uuid": profile["PayloadUUID"],
        "version": profile["PayloadVersion"],
        "payload": payload,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "description": str(profile.get("PayloadDescription", "")),
        "uploaded_by": actor_name(uploaded_by),
    }
    stored, created = Profile.objects.update_or_create(
        identifier=profile["PayloadIdentifier"], defaults=fields
    )
    audit(
        "profile.uploaded" if created else "profile.replaced",
        actor=uploaded_by or "system",
        target=stored.identifier,
        address=address,
        sha256=stored.sha256,
        version=stored.version,
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


def installed_version(profile: Profile) -> QuerySet:
    """InstalledProfile rows that report this very version (identifier and PayloadUUID)."""
    return InstalledProfile.objects.filter(identifier=profile.identifier, uuid=profile.uuid)


def installed_devices(profile: Profile) -> QuerySet:
    """Devices whose latest ProfileList reports this version of the profile."""
    return Device.objects.filter(pk__in=installed_version(profile).values("device"))


def missing_devices(profile: Profile) -> QuerySet:
    """Managed devices the profile is assigned to whose ProfileList does not report this
    version (an InstallProfile may be on its way: see `pending_installs`)."""
    return assigned_devices(profile).exclude(pk__in=installed_version(profile).values("device"))


def pending_installs(profile: Profile) -> QuerySet:
    """InstallProfile queue rows for this profile still waiting for an answer."""
    return QueuedCommand.objects.filter(
        request_type="InstallProfile",
        status__in=PENDING_STATUSES,
        command__profile_link__identifier=profile.identifier,
    )


def _lacking(profile: Profile, devices: QuerySet) -> QuerySet:
    """Of `devices`, those that neither report this version installed nor have it pending."""
    return devices.exclude(pk__in=installed_version(profile).values("device")).exclude(
        pk__in=pending_installs(profile).values("device")
    )


def _can_receive(devices: QuerySet) -> QuerySet:
    """Of `devices`, those an InstallProfile or RemoveProfile can be queued for now."""
    return devices.annotate(install_right=F("access_rights").bitand(INSTALL_PROFILES)).filter(
        install_right=INSTALL_PROFILES, token_invalid_at__isnull=True
    )


def install_where_missing(
    profile: Profile, devices: QuerySet, *, by, address: str | None = None
) -> tuple[int, int]:
    """Queue one InstallProfile for the devices that lack the profile. Returns (queued, skipped).

    Devices enrolled without the right to install profiles, or whose push token is invalid,
    are skipped, not refused: the assignment stays and applies when they can take it (their
    next ProfileList reconciles them).
    """
    payload = {"Payload": bytes(profile.payload)}
    return _queue_where_possible(
        profile, _lacking(profile, devices), "InstallProfile", payload, by=by, address=address
    )


def withdraw(
    profile: Profile, members: QuerySet, *, by, address: str | None = None
) -> tuple[int, int]:
    """`members` may have lost the profile (an assignment or a group membership ended): for
    those nothing else keeps it on, cancel the install still waiting and queue RemoveProfile
    where it is installed. Returns (queued, skipped)."""
    still = assigned_devices(profile)
    has_it = InstalledProfile.objects.filter(identifier=profile.identifier).values("device")
    losing = members.filter(state=Device.State.ENROLLED).exclude(pk__in=still.values("pk"))
    # Whatever install is still waiting for them is no longer wanted.
    pending_installs(profile).filter(device__in=losing).update(
        status=Status.CANCELED, answered_at=timezone.now()
    )
    payload = {"Identifier": profile.identifier}
    return _queue_where_possible(
        profile, losing.filter(pk__in=has_it), "RemoveProfile", payload, by=by, address=address
    )


def _queue_where_possible(
    profile: Profile, devices: QuerySet, request_type: str, payload: dict, *, by, address
) -> tuple[int, int]:
    """Queue the command for the devices of `devices` that can take it now; count the others.
    Returns (queued, skipped)."""
    able = _can_receive(devices)
    count = able.count()
    skipped = devices.count() - count
    if count:
        _enqueue_for_profile(profile, able, request_type, payload, by=by, address=address)
    return count, skipped


def _enqueue_for_profile(
    profile: Profile,
    devices: QuerySet,
    request_type: str,
    payload: dict,
    *,
    by,
    address: str | None,
) -> Command:
    """Queue a command for `profile` and remember which profile it is for (one transaction)."""
    with transaction.atomic():
        command = enqueue(
            devices,
            request_type,
            payload,
            queued_by=actor_name(by),
            user=actor_user(by),
            address=address,
        )
        ProfileCommand.objects.create(command=command, identifier=profile.identifier)
    return command


def install_now(profile: Profile, devices, *, by, address: str | None = None) -> Command:
    """Queue the profile's InstallProfile for `devices` now, assigned or not (the command form).

    Recorded as the profile's command like an assignment's, so the library sees it pending.
    It does not assign: only an assigned profile comes back when it goes missing. Raises
    EnqueueError as enqueue does (the devices were named: none is skipped).
    """
    payload = {"Payload": bytes(profile.payload)}
    return _enqueue_for_profile(profile, devices, "InstallProfile", payload, by=by, address=address)


def _target(device: Device | None, group: DeviceGroup | None) -> dict:
    if (device is None) == (group is None):
        raise LibraryError("assign to a device or to a group (exactly one)")
    return {"device": device} if device is not None else {"group": group}


def _audit_assignment(action, profile, device, group, by, address, queued, skipped) -> None:
    audit(
        action,
        actor=by,
        target=profile.identifier,
        address=address,
        to=f"device {device.udid}" if device is not None else f"group {group.name}",
        queued=queued,
        skipped=skipped,
    )


def assign(
    profile: Profile,
    *,
    device: Device | None = None,
    group: DeviceGroup | None = None,
    by,
    address: str | None = None,
    refuse_existing: bool = False,
) -> tuple[int, int]:
    """Assign the profile and queue it where it is missing. Returns (queued, skipped).

    Assigning again queues it where it went missing since; with `refuse_existing` an existing
    assignment is a LibraryConflict instead (the API: the profile is already there)."""
    target = _target(device, group)
    with transaction.atomic():
        _assignment, created = ProfileAssignment.objects.get_or_create(
            profile=profile, **target, defaults={"created_by": actor_name(by)}
        )
        if not created and refuse_existing:
            raise LibraryConflict(f"{profile.identifier} is already assigned to {device or group}")
        members = (
            Device.objects.filter(pk=device.pk, state=Device.State.ENROLLED)
            if device is not None
            else Device.objects.filter(group=group, state=Device.State.ENROLLED)
        )
        queued, skipped = install_where_missing(profile, members, by=by, address=address)
        _audit_assignment("profile.assigned", profile, device, group, by, address, queued, skipped)
    return queued, skipped


def unassign(
    profile: Profile,
    *,
    device: Device | None = None,
    group: DeviceGroup | None = None,
    by,
    address: str | None = None,
) -> tuple[int, int]:
    """Remove an assignment; queue RemoveProfile where nothing else keeps the profile.
    Returns (queued, skipped)."""
    target = _target(device, group)
    with transaction.atomic():
        deleted, _ = ProfileAssignment.objects.filter(profile=profile, **target).delete()
        if not deleted:
            raise LibraryError(f"{profile.identifier} is not assigned to {device or group}")
        members = Device.objects.filter(pk=device.pk) if device is not None else group.devices.all()
        queued, skipped = withdraw(profile, members, by=by, address=address)
        _audit_assignment(
            "profile.unassigned", profile, device, group, by, address, queued, skipped
        )
    return queued, skipped


def delete_profile(profile: Profile, *, by, address: str | None = None) -> None:
    """Take the profile out of the library. Refused while it is assigned: unassigning first
    queues RemoveProfile where it is installed, whereas deleting leaves devices as they are
    (a profile the library no longer knows is neither installed nor removed by it)."""
    with transaction.atomic():
        groups = profile.assignments.exclude(group=None).count()
        devices = profile.assignments.exclude(device=None).count()
        if groups or devices:
            raise LibraryConflict(
                f"{profile.identifier} is still assigned to {groups} group(s) and "
                f"{devices} device(s): unassign it first (that removes it from the devices "
                "that have it), then delete it"
            )
        canceled = pending_installs(profile).update(
            status=Status.CANCELED, answered_at=timezone.now()
        )
        identifier, sha256 = profile.identifier, profile.sha256
        profile.delete()
        audit(
            "profile.deleted",
            actor=by,
            target=identifier,
            address=address,
            sha256=sha256,
            installs_canceled=canceled,
        )


def assigned_profiles(device: Device) -> QuerySet:
    """The library profiles assigned to `device`, directly or through its group."""
    wanted = Q(device=device)
    if device.group_id is not None:
        wanted |= Q(group_id=device.group_id)
    return Profile.objects.filter(
        pk__in=ProfileAssignment.objects.filter(wanted).values("profile")
    ).order_by("pk")


def install_assigned(device: Device, *, by) -> tuple[int, int]:
    """Queue every profile assigned to `device` that has no install waiting, whatever its
    last ProfileList said: for a device in Setup Assistant, which was just erased or is new,
    so an earlier inventory describes a device that no longer exists. Returns (queued,
    skipped), in the library's order (the order the profiles were added)."""
    queued = skipped = 0
    for profile in assigned_profiles(device):
        waiting = pending_installs(profile).values("device")
        candidates = Device.objects.filter(pk=device.pk).exclude(pk__in=waiting)
        payload = {"Payload": bytes(profile.payload)}
        count, left_out = _queue_where_possible(
            profile, candidates, "InstallProfile", payload, by=by, address=None
        )
        queued += count
        skipped += left_out
    return queued, skipped


def reconcile_device(device: Device) -> int:
    """After a ProfileList: queue every assigned profile the device still lacks."""
    queued = 0
    for profile in assigned_profiles(device):
        count, _ = install_where_missing(
            profile, Device.objects.filter(pk=device.pk), by="reconcile"
        )
        queued += count
    return queued
