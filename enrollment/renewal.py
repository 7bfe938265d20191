"""Renewing device identities before they lapse: a fresh enrollment profile via InstallProfile.

The renewal profile has the enrollment profile's PayloadIdentifier, so it replaces the
installed one, and the enrollment's identity delivery: its ACME ClientIdentifier or SCEP
challenge (or PKCS#12 identity) is bound to the device, and its content is encrypted to the
device's current identity when that key is RSA (an ACME identity's key is EC: not encrypted).
"""

import logging
import plistlib

from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import transaction

from commands.models import PENDING_STATUSES, Command, QueuedCommand
from commands.queue import EnqueueError, enqueue
from devices.identities import identities_due_for_renewal
from devices.models import Device

from .links import device_enrollment
from .mobileconfig import EnrollmentUnavailable, build_enrollment_profile
from .models import IdentityRenewal
from .profiles import ProfileError, device_identity

log = logging.getLogger("mdm.renewal")


class RenewalError(Exception):
    """The device's identity cannot be renewed by the portal; the message says why."""


def _can_encrypt_to(device: Device) -> bool:
    try:
        return isinstance(device_identity(device).public_key(), rsa.RSAPublicKey)
    except ProfileError:
        return False


def renew_identity(device: Device, *, by: str = "renewal") -> Command:
    """Queue a renewal profile for `device`."""
    enrollment = device_enrollment(device)
    if enrollment is None:
        raise RenewalError(f"{device.udid} has no enrollment to build a renewal profile from")
    try:
        with transaction.atomic():
            profile = build_enrollment_profile(enrollment, actor=by, for_device=device)
            command = enqueue(
                device,
                "InstallProfile",
                {"Payload": plistlib.dumps(profile)},
                queued_by=by,
                options={"encrypt": _can_encrypt_to(device)},
            )
            IdentityRenewal.objects.create(command=command)
        return command
    except (EnrollmentUnavailable, EnqueueError) as exc:
        raise RenewalError(f"{device.udid}: {exc}") from None


def renewal_pending(device_ids=None) -> set[int]:
    """The devices (pks) with a renewal profile still queued or in flight; among `device_ids`
    when given (one page of a table), else every such device."""
    rows = QueuedCommand.objects.filter(
        status__in=PENDING_STATUSES, command__identity_renewal__isnull=False
    )
    if device_ids is not None:
        rows = rows.filter(device_id__in=list(device_ids))
    return set(rows.values_list("device_id", flat=True))


def renew_expiring_identities(days: int = 30) -> dict:
    """Queue renewals for enrolled devices whose identity expires within `days`."""
    due = identities_due_for_renewal(days)
    already = renewal_pending()
    renewed, failed = 0, 0
    for binding in due:
        if binding.device_id in already:
            continue
        try:
            renew_identity(binding.device)
            renewed += 1
        except RenewalError as exc:
            failed += 1
            log.warning("identity renewal not queued: %s", exc)
    log.info("identity renewal: %s queued, %s could not be", renewed, failed)
    return {"renewed": renewed, "failed": failed}
