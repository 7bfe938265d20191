"""Creating and turning off enrollments, and their links: what `mdm_enrollment` and the staff
UI both call, so an enrollment made either way is checked, stored and audited the same way.

The checks are `enrollment_problems`, keyed by the field they are about, so a form can show
each next to its field and the command can print them.

The identity delivery is ACME, SCEP or PKCS#12. ACME requires a device attestation unless
`acme_attestation` is off; turning it off for another delivery is refused (it would mean
nothing, and whoever asked for it most likely meant ACME). ACME with attestation also needs the
right to read device information (16): without it a device's Authenticate carries no serial
number, and the portal must compare it with the attested one (devices/checkin.py).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from commands.catalog import ALL_RIGHTS, DEVICE_INFORMATION, access_rights_error
from devices.models import DeviceGroup
from mdm_portal.audit import actor_name, audit

from .mobileconfig import unavailable_reason
from .models import Enrollment
from .signals import enrollment_created

NAME_MAX = Enrollment._meta.get_field("name").max_length


class EnrollmentError(ValueError):
    """The enrollment is refused; `problems` maps each field to what is wrong with it."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class EnrollmentSpec:
    """What an enrollment is made of, as a person chose it."""

    name: str
    access_rights: int = ALL_RIGHTS
    identity: str = Enrollment.Identity.SCEP
    acme_attestation: bool = True  # ACME only: off for devices that cannot attest
    sign_message: bool = False
    check_out_when_removed: bool = True
    group: DeviceGroup | None = None
    expires_days: int | None = None
    max_uses: int | None = None


def enrollment_problems(spec: EnrollmentSpec) -> dict[str, str]:
    """Everything wrong with `spec`, by field ({} when it can be created)."""
    problems = {}
    name = spec.name.strip()
    if not name:
        problems["name"] = "the name must not be empty"
    elif len(name) > NAME_MAX:
        problems["name"] = f"the name is longer than {NAME_MAX} characters"
    error = access_rights_error(spec.access_rights)
    if error:
        problems["access_rights"] = error
    if spec.identity not in Enrollment.Identity.values:
        problems["identity"] = "the identity is acme, scep or pkcs12"
    elif spec.identity != Enrollment.Identity.ACME and not spec.acme_attestation:
        problems["acme_attestation"] = (
            "only an ACME identity can do without attestation: choose ACME, or leave attestation on"
        )
    elif _attested_without_serial(spec) and not error:
        problems["access_rights"] = (
            "ACME with attestation needs the right to read device information (16): "
            "without it the device's Authenticate carries no serial number to check "
            "against the attested one"
        )
    if spec.expires_days is not None and spec.expires_days < 1:
        problems["expires_days"] = "the link must work for at least one day"
    if spec.max_uses is not None and spec.max_uses < 1:
        problems["max_uses"] = "the link must be usable at least once"
    return problems


def _attested_without_serial(spec: EnrollmentSpec) -> bool:
    attested = spec.identity == Enrollment.Identity.ACME and spec.acme_attestation
    return attested and not spec.access_rights & DEVICE_INFORMATION


def create_enrollment(spec: EnrollmentSpec, *, by, address: str | None = None) -> Enrollment:
    """Store a new enrollment (its token is its link's secret) and audit it, or raise
    EnrollmentError. `by` is the staff member (a User) or the tool's name."""
    problems = enrollment_problems(spec)
    if problems:
        raise EnrollmentError(problems)
    expires_at = None
    if spec.expires_days:
        expires_at = timezone.now() + timedelta(days=spec.expires_days)
    with transaction.atomic():
        enrollment = Enrollment.objects.create(
            name=spec.name.strip(),
            access_rights=spec.access_rights,
            identity=spec.identity,
            acme_attestation=spec.acme_attestation,
            sign_message=spec.sign_message,
            check_out_when_removed=spec.check_out_when_removed,
            group=spec.group,
            expires_at=expires_at,
            max_uses=spec.max_uses,
            created_by=actor_name(by),
        )
        audit(
            "enrollment.created",
            actor=by,
            target=enrollment.name,
            address=address,
            enrollment=enrollment.pk,
            access_rights=enrollment.access_rights,
            identity=enrollment.identity,
            acme_attestation=enrollment.acme_attestation,
            sign_message=enrollment.sign_message,
            check_out_when_removed=enrollment.check_out_when_removed,
            group=spec.group.name if spec.group else None,
            expires_at=expires_at.isoformat() if expires_at else None,
            max_uses=enrollment.max_uses,
        )
        enrollment_created.send(Enrollment, enrollment=enrollment)  # webhooks answer
    return enrollment


def deactivate_enrollment(enrollment: Enrollment, *, by, address: str | None = None) -> bool:
    """Turn the enrollment's link off for good (devices it enrolled stay enrolled). Returns
    whether it was active."""
    changed = Enrollment.objects.filter(pk=enrollment.pk, active=True).update(active=False)
    enrollment.active = False
    if changed:
        audit(
            "enrollment.deactivated",
            actor=by,
            target=enrollment.name,
            address=address,
            enrollment=enrollment.pk,
        )
    return bool(changed)


def enrollment_link(enrollment: Enrollment) -> str:
    """The link a person opens on the device: MDM_PUBLIC_URL/enroll/<token>/."""
    return settings.MDM_PUBLIC_URL + reverse("enroll-page", args=[enrollment.token])


def identity_summary(enrollment: Enrollment) -> str:
    """The delivery in a few words: "ACME", "ACME without attestation", "SCEP", "PKCS#12"."""
    names = {"acme": "ACME", "scep": "SCEP", "pkcs12": "PKCS#12"}
    name = names.get(enrollment.identity, enrollment.identity)
    if enrollment.identity == Enrollment.Identity.ACME and not enrollment.acme_attestation:
        return f"{name} without attestation"
    return name


def enrollment_state(enrollment: Enrollment, now=None) -> str:
    """active, inactive, expired or used_up."""
    return unavailable_reason(enrollment, now) or "active"
