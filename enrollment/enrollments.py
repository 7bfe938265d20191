"""Enrollments (the links users open to enroll a device): create, deactivate, their link and
state. What `mdm_enrollment`, the UI and the API call; each change is audited, and a creation
is announced (enrollment.signals.enrollment_created) inside its transaction."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from commands.catalog import ALL_RIGHTS, access_rights_error
from devices.groups import create_group
from devices.models import DeviceGroup
from devices.selection import group_named
from mdm_portal.audit import audit

from .mobileconfig import unavailable_reason
from .models import Enrollment
from .signals import enrollment_created


class EnrollmentError(ValueError):
    """An enrollment that cannot be created or changed; the message names the key."""


class AlreadyInactive(EnrollmentError):
    """Deactivating an enrollment that is already off."""


def enrollment_link(enrollment: Enrollment) -> str:
    """The page a user opens to enroll: MDM_PUBLIC_URL/enroll/<token>/."""
    return settings.MDM_PUBLIC_URL + reverse("enroll-page", args=[enrollment.token])


def enrollment_state(enrollment: Enrollment, now: datetime | None = None) -> str:
    """active, inactive, expired or used_up."""
    return unavailable_reason(enrollment, now) or "active"


def _group(reference, actor) -> tuple[DeviceGroup | None, bool]:
    if reference is None or reference == "":
        return None, False
    if isinstance(reference, DeviceGroup):
        return reference, False
    found = group_named(reference)
    if found is not None:
        return found, False
    return create_group(str(reference), actor=actor), True


def create_enrollment(
    name: str,
    *,
    actor,
    access_rights: int = ALL_RIGHTS,
    identity: str = Enrollment.Identity.SCEP,
    sign_message: bool = False,
    check_out_when_removed: bool = True,
    group=None,
    expires_days: int | None = None,
    max_uses: int | None = None,
    address: str | None = None,
) -> Enrollment:
    """A new enrollment. `group` is a DeviceGroup, or a name (created when new) or an id."""
    name = (name or "").strip()
    if not name:
        raise EnrollmentError("name: must not be empty")
    if len(name) > 150:
        raise EnrollmentError("name: at most 150 characters")
    error = access_rights_error(access_rights)
    if error:
        raise EnrollmentError(f"access_rights: {error}")
    if identity not in Enrollment.Identity.values:
        raise EnrollmentError(f"identity: one of {', '.join(Enrollment.Identity.values)}")
    for key, value in (("expires_days", expires_days), ("max_uses", max_uses)):
        if value is not None and value < 1:
            raise EnrollmentError(f"{key}: must be at least 1")
    by = actor.get_username() if hasattr(actor, "get_username") else str(actor)
    with transaction.atomic():
        group, _created = _group(group, actor)
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        enrollment = Enrollment.objects.create(
            name=name,
            access_rights=access_rights,
            identity=identity,
            sign_message=sign_message,
            check_out_when_removed=check_out_when_removed,
            group=group,
            expires_at=expires_at,
            max_uses=max_uses,
            created_by=by[:150],
        )
        audit(
            "enrollment.created",
            actor=actor,
            target=enrollment.name,
            address=address,
            enrollment=enrollment.pk,
            access_rights=access_rights,
            identity=enrollment.identity,
            sign_message=enrollment.sign_message,
            check_out_when_removed=enrollment.check_out_when_removed,
            group=group.name if group else None,
            expires_at=expires_at.isoformat() if expires_at else None,
            max_uses=enrollment.max_uses,
        )
        enrollment_created.send(Enrollment, enrollment=enrollment)
    return enrollment


def deactivate_enrollment(
    enrollment: Enrollment, *, actor, address: str | None = None, strict: bool = False
) -> Enrollment:
    """Turn the link off (profiles already installed stay). With `strict`, an enrollment
    already off is refused (AlreadyInactive) instead of left as it is."""
    with transaction.atomic():
        enrollment = Enrollment.objects.select_for_update().get(pk=enrollment.pk)
        if not enrollment.active:
            if strict:
                raise AlreadyInactive(f"enrollment {enrollment.name!r} is already inactive")
            return enrollment
        enrollment.active = False
        enrollment.save(update_fields=["active"])
        audit(
            "enrollment.deactivated",
            actor=actor,
            target=enrollment.name,
            address=address,
            enrollment=enrollment.pk,
        )
    return enrollment
