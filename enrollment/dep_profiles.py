"""ADE (DEP) profiles: what Setup Assistant does with a device, and where it enrolls.

A DepProfile is defined with Apple (POST /profile) and then assigned to devices by serial
(PUT /profile/devices); Apple answers per serial (SUCCESS, NOT_ACCESSIBLE, FAILED), and each
answer is kept on the DepDevice so the UI shows whether the assignment took. Apple's profiles
cannot be changed: editing one defines a new profile and assigns it again to the devices that
had the old one. The profile's `url` is the portal's /dep/enroll, which answers the device's
MachineInfo with the enrollment's profile; its `anchor_certs` are the server's TLS CA
certificates when that chain is private, so that Setup Assistant trusts the portal.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from mdm_portal.audit import actor_name, audit

from .dep_client import DepClient, DepError
from .dep_models import DepDevice, DepProfile, DepServer
from .dep_skip_keys import SKIP_KEYS
from .mobileconfig import EnrollmentUnavailable, tls_trust_certificates, unavailable_reason
from .models import Enrollment

ASSIGN_BATCH = 1000  # serials per PUT /profile/devices
SUCCESS = "SUCCESS"
# Our own word for "the request to Apple failed" (network, 5xx, refusal): no answer per serial.
# Auto-assign tries such devices again at the next sync.
ERROR = "ERROR"

# The profile keys the portal sets (Apple's Profile object), with their types and defaults.
FLAGS = {
    "is_supervised": True,
    "is_mandatory": False,
    "is_mdm_removable": True,
    "await_device_configured": False,
    "auto_advance_setup": False,  # tvOS
}
TEXTS = {  # with a bound on their length, against pasted garbage (not Apple's limits)
    "department": 250,
    "support_phone_number": 50,
    "support_email_address": 250,
    "language": 10,  # e.g. "en"
    "region": 10,  # e.g. "US"
    "org_magic": 250,
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class DepProfileError(Exception):
    """The profile cannot be defined as asked; the message says why, for people."""


def profile_url() -> str:
    """The profile's url: where Setup Assistant sends the device's MachineInfo."""
    return django_settings.MDM_PUBLIC_URL.rstrip("/") + "/dep/enroll"


def clean_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """The settings with defaults filled in and types checked; DepProfileError says what is
    wrong (every problem at once)."""
    problems: list[str] = []
    unknown = sorted(set(raw) - set(FLAGS) - set(TEXTS) - {"skip_setup_items"})
    if unknown:
        problems.append(f"unknown settings: {', '.join(unknown)}")
    clean: dict[str, Any] = {}
    for key, default in FLAGS.items():
        value = raw.get(key, default)
        if not isinstance(value, bool):
            problems.append(f"{key} must be true or false")
        clean[key] = value
    for key, longest in TEXTS.items():
        value = raw.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value.strip()) > longest:
            problems.append(f"{key} must be text of at most {longest} characters")
        elif value.strip():
            clean[key] = value.strip()
    email = clean.get("support_email_address")
    if isinstance(email, str) and not EMAIL.match(email):
        problems.append(f"support_email_address {email!r} is not an email address")
    skip = raw.get("skip_setup_items") or []
    if not isinstance(skip, list | tuple) or not all(isinstance(item, str) for item in skip):
        problems.append("skip_setup_items must be a list of Setup Assistant pane names")
    else:
        wrong = sorted({item for item in skip if item not in SKIP_KEYS})
        if wrong:
            problems.append(
                f"unknown Setup Assistant panes in skip_setup_items: {', '.join(wrong)} "
                f"(Apple's names are case-sensitive, e.g. {', '.join(sorted(SKIP_KEYS)[:4])})"
            )
        clean["skip_setup_items"] = sorted(set(skip), key=list(skip).index)
    if problems:
        raise DepProfileError("; ".join(problems))
    return clean


def anchor_certs() -> list[str]:
    """Base64 DER of the server's TLS CA certificates when its chain is private, else []."""
    try:
        certificates = tls_trust_certificates()
    except EnrollmentUnavailable as exc:
        raise DepProfileError(str(exc)) from None
    return [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certificates
    ]


def apple_profile(name: str, clean: dict[str, Any]) -> dict[str, Any]:
    """The JSON for POST /profile."""
    url = profile_url()
    if not url.startswith("https://"):
        raise DepProfileError(
            f"MDM_PUBLIC_URL must be an https URL for Automated Device Enrollment: devices "
            f"fetch {url} from Setup Assistant, and only over TLS"
        )
    profile = {"profile_name": name, "url": url, **clean}
    anchors = anchor_certs()
    if anchors:
        profile["anchor_certs"] = anchors
    return profile


def save_profile(
    server: DepServer,
    *,
    name: str,
    enrollment: Enrollment,
    settings: dict[str, Any],
    actor: Any,
    profile: DepProfile | None = None,
) -> DepProfile:
    """Create (or, with `profile`, edit) a DEP profile and define it with Apple. An edit
    defines a new profile and assigns it to the devices that had the old one. Raises
    DepProfileError for a profile that cannot be, DepError when Apple refuses it."""
    name = (name or "").strip()
    if not name or len(name) > 150:
        raise DepProfileError("the profile needs a name of at most 150 characters")
    if profile is not None and profile.server_id != server.pk:
        raise DepProfileError(f"profile {profile.name!r} belongs to another DEP server")
    taken = DepProfile.objects.filter(server=server, name=name)
    if profile is not None:
        taken = taken.exclude(pk=profile.pk)
    duplicate = f"DEP server {server.name!r} already has a profile {name!r}"
    if taken.exists():
        raise DepProfileError(duplicate)
    reason = unavailable_reason(enrollment)
    if reason is not None:
        raise DepProfileError(f"enrollment {enrollment.name!r} cannot be used: {reason}")
    clean = clean_settings(settings)
    body = apple_profile(name, clean)
    with DepClient(server) as client:
        answer = client.define_profile(body)
    old_uuid = profile.profile_uuid if profile is not None else ""
    profile = profile or DepProfile(server=server, created_by=actor_name(actor))
    profile.name, profile.enrollment, profile.settings = name, enrollment, clean
    profile.profile_uuid, profile.defined_at = answer["profile_uuid"], timezone.now()
    try:
        with transaction.atomic():
            profile.save()
    except IntegrityError:
        raise DepProfileError(duplicate) from None
    audit(
        "dep.profile.define",
        actor=actor,
        target=f"{server.name}: {name}",
        profile_uuid=profile.profile_uuid,
        replaces=old_uuid or None,
        enrollment=enrollment.name,
        settings=clean,
        anchor_certs=len(body.get("anchor_certs", [])),
    )
    if old_uuid and old_uuid != profile.profile_uuid:
        had_it = Q(assigned_profile=profile) | Q(profile_uuid=old_uuid)
        serials = list(
            DepDevice.objects.filter(had_it, server=server, removed=False)
            .order_by("serial_number")
            .values_list("serial_number", flat=True)
        )
        if serials:
            assign_profile(profile, serials, actor=actor)
    return profile


def assign_profile(profile: DepProfile, serials: list[str], *, actor: Any) -> dict[str, str]:
    """Assign `profile` to these serials; answers Apple's result per serial, which is kept on
    each DepDevice (assigned_profile only when SUCCESS). A failed request marks its serials
    ERROR and raises DepError."""
    if not profile.profile_uuid:
        raise DepProfileError(f"profile {profile.name!r} is not defined with Apple yet")
    serials = list(dict.fromkeys(s.strip() for s in serials if s and s.strip()))
    results: dict[str, str] = {}
    with DepClient(profile.server) as client:
        for start in range(0, len(serials), ASSIGN_BATCH):
            batch = serials[start : start + ASSIGN_BATCH]
            try:
                answer = client.assign_profile(profile.profile_uuid, batch)
            except DepError as exc:
                failed = dict.fromkeys(serials[start:], ERROR)
                _record(profile, failed)
                _audit_assign(profile, {**results, **failed}, actor, error=str(exc))
                raise
            # A serial Apple left out of its answer did not take.
            answers = answer.get("devices") or {}
            batch_results = {s: str(answers.get(s) or "FAILED") for s in batch}
            _record(profile, batch_results)
            results.update(batch_results)
    _audit_assign(profile, results, actor)
    return results


def _record(profile: DepProfile, results: dict[str, str]) -> None:
    """Keep each serial's answer on its DepDevice (devices of this server only)."""
    now = timezone.now()
    took = [s for s, result in results.items() if result == SUCCESS]
    devices = DepDevice.objects.filter(server=profile.server_id)
    with transaction.atomic():
        for result in set(results.values()) - {SUCCESS}:
            serials = [s for s, r in results.items() if r == result]
            devices.filter(serial_number__in=serials).update(
                assign_result=result, assign_result_at=now, updated_at=now
            )
        # What Apple now says of them too; the next sync confirms it.
        devices.filter(serial_number__in=took).update(
            assigned_profile=profile,
            assign_result=SUCCESS,
            assign_result_at=now,
            profile_uuid=profile.profile_uuid,
            profile_status="assigned",
            profile_assign_time=now,
            updated_at=now,
        )


def _audit_assign(profile: DepProfile, results: dict[str, str], actor: Any, **extra) -> None:
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result] = counts.get(result, 0) + 1
    audit(
        "dep.profile.assign",
        actor=actor,
        target=f"{profile.server.name}: {profile.name}",
        profile_uuid=profile.profile_uuid,
        results=counts,
        serials=sorted(results)[:50],  # enough to find them; counts say how many
        **extra,
    )


def set_auto_assign(server: DepServer, profile: DepProfile | None, *, actor: Any) -> None:
    """Devices the sync adds from now on get `profile` (None: no automatic assignment)."""
    if profile is not None:
        if profile.server_id != server.pk:
            raise DepProfileError(f"profile {profile.name!r} belongs to another DEP server")
        if not profile.profile_uuid:
            raise DepProfileError(f"profile {profile.name!r} is not defined with Apple yet")
    server.auto_assign_profile = profile
    server.save(update_fields=["auto_assign_profile"])
    audit(
        "dep.profile.auto_assign",
        actor=actor,
        target=server.name,
        profile=profile.name if profile else None,
        profile_uuid=profile.profile_uuid if profile else None,
    )
