"""Which identity certificate belongs to which device: binding, the current identity, expiry.

Certificates know no device: the binding lives here (CertificateBinding). A certificate binds
on the device's first Authenticate with it, or at issuance when it renews a bound certificate.
A device's current identity is its newest bound certificate that is not revoked; whether it is
still in date is a separate question each caller asks (an expired identity is still the one the
expiry inventory must report).
"""

import datetime as dt

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from certs.expiry import ExpiryEntry, expiry_entry, register_inventory_source
from certs.models import IssuedCertificate

from .models import CertificateBinding, Device


def bind(certificate: IssuedCertificate, device: Device) -> CertificateBinding:
    """Bind `certificate` to `device` (once: a certificate never moves to another device)."""
    binding, _ = CertificateBinding.objects.get_or_create(
        certificate=certificate, defaults={"device": device, "bound_at": timezone.now()}
    )
    return binding


def bound_device_id(certificate: IssuedCertificate) -> int | None:
    """The pk of the device `certificate` is bound to, or None."""
    return (
        CertificateBinding.objects.filter(certificate=certificate)
        .values_list("device_id", flat=True)
        .first()
    )


def current_identities() -> QuerySet[CertificateBinding]:
    """Each device's current identity: its newest bound certificate that is not revoked."""
    newer = CertificateBinding.objects.filter(
        device=OuterRef("device"),
        certificate__revoked_at__isnull=True,
        certificate_id__gt=OuterRef("certificate_id"),
    )
    return CertificateBinding.objects.filter(certificate__revoked_at__isnull=True).exclude(
        Exists(newer)
    )


def current_identity(device: Device) -> IssuedCertificate | None:
    """The device's current identity certificate (in date or not), or None."""
    binding = current_identities().filter(device=device).select_related("certificate").first()
    return binding.certificate if binding is not None else None


def identities_due_for_renewal(days: int = 30, *, now=None) -> QuerySet[CertificateBinding]:
    """Current identities of enrolled devices that expire within `days` (not expired yet)."""
    now = now or timezone.now()
    return (
        current_identities()
        .filter(
            device__state=Device.State.ENROLLED,
            certificate__not_after__gt=now,
            certificate__not_after__lte=now + dt.timedelta(days=days),
        )
        .select_related("device", "certificate")
        .defer("device__unlock_token", "device__bootstrap_token")  # secrets: never needed here
        .order_by("certificate__not_after", "certificate_id")
    )


def identity_expiry(now: dt.datetime, thresholds: list[int]) -> list[ExpiryEntry]:
    """The expiry inventory's device identities: one query, whatever the fleet size."""
    rows = current_identities().values_list(
        "certificate__serial",
        "certificate__subject",
        "certificate__not_after",
        "device__udid",
        "device__state",
    )
    return [
        expiry_entry(
            "device-identity",
            udid,
            subject,
            not_after,
            now,
            thresholds,
            serial=serial,
            device_state=state,
        )
        for serial, subject, not_after, udid, state in rows
    ]


def register() -> None:
    """Called by DevicesConfig.ready: device identities join the certificate inventory."""
    register_inventory_source(identity_expiry, per_device=True)
