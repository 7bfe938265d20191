"""Certificate expiry: every certificate the portal depends on, and how soon each one expires.

`certificate_inventory()` is what the expiry sweep and the UI read: the active push
certificate, the device-identity CA, the server's own identities (profile signing), the server
TLS chain (`MDM_TLS_CHAIN_FILE`) and each device's current identity. A fixed handful of
queries whatever the fleet size: device identities come from one query.

Severity comes from `MDM_EXPIRY_WARNING_DAYS` (default 30, 14, 7, 1 days): past the largest
threshold an entry is "notice", past the smallest "critical", in between "warning"; "expired"
once its date has passed, "ok" before any threshold. Each entry also names the threshold it
crossed, so a sweep can alert once per threshold.
"""

import datetime as dt
import logging
import math

from cryptography import x509
from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from .models import CertificateAuthority, IssuedCertificate, PushCertificate, ServerIdentity

log = logging.getLogger(__name__)

DEFAULT_WARNING_DAYS = (30, 14, 7, 1)


def warning_days() -> list[int]:
    """The thresholds, largest first (a list, a tuple or a "30,14,7,1" string in settings)."""
    value = getattr(settings, "MDM_EXPIRY_WARNING_DAYS", DEFAULT_WARNING_DAYS)
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    days = sorted({int(v) for v in value}, reverse=True)
    return days or list(DEFAULT_WARNING_DAYS)


def _severity(days_left: int, expired: bool, thresholds: list[int]) -> tuple[str, int | None]:
    if expired:
        return "expired", None
    crossed = [t for t in thresholds if days_left <= t]
    if not crossed:
        return "ok", None
    threshold = crossed[-1]  # the smallest threshold reached
    if len(thresholds) > 1 and threshold == thresholds[-1]:
        return "critical", threshold
    if len(thresholds) > 1 and threshold == thresholds[0]:
        return "notice", threshold
    return "warning", threshold


def _entry(kind: str, name: str, subject: str, not_after: dt.datetime, now, thresholds, **extra):
    days_left = math.floor((not_after - now).total_seconds() / 86400)
    severity, threshold = _severity(days_left, not_after <= now, thresholds)
    return {
        "kind": kind,
        "name": name,
        "subject": subject,
        "not_after": not_after,
        "days_left": days_left,
        "severity": severity,
        "threshold": threshold,
        **extra,
    }


def _subject(pem: str) -> str:
    try:
        return x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()
    except ValueError:
        return ""


def current_device_identities() -> QuerySet[IssuedCertificate]:
    """Each device's identity: its newest certificate that is bound to it and not revoked."""
    newer = IssuedCertificate.objects.filter(
        device=OuterRef("device"), revoked_at__isnull=True, pk__gt=OuterRef("pk")
    )
    return IssuedCertificate.objects.filter(device__isnull=False, revoked_at__isnull=True).exclude(
        Exists(newer)
    )


def identities_due_for_renewal(days: int = 30, *, now=None) -> QuerySet[IssuedCertificate]:
    """Identities of enrolled devices that expire within `days` (and have not expired yet)."""
    from devices.models import Device

    now = now or timezone.now()
    return (
        current_device_identities()
        .filter(
            device__state=Device.State.ENROLLED,
            not_after__gt=now,
            not_after__lte=now + dt.timedelta(days=days),
        )
        .select_related("device")
        .defer("device__unlock_token", "device__bootstrap_token")  # secrets: never needed here
        .order_by("not_after", "pk")
    )


def _tls_chain(path: str, now, thresholds) -> list[dict]:
    try:
        with open(path, "rb") as handle:
            certificates = x509.load_pem_x509_certificates(handle.read())
    except (OSError, ValueError) as exc:
        log.warning("cannot read MDM_TLS_CHAIN_FILE %s: %s", path, exc)
        return [
            {
                "kind": "tls",
                "name": path,
                "subject": "",
                "not_after": None,
                "days_left": None,
                "severity": "error",
                "threshold": None,
                "error": f"cannot read MDM_TLS_CHAIN_FILE {path}: {exc}",
            }
        ]
    return [
        _entry(
            "tls",
            f"{path}#{index}",
            certificate.subject.rfc4514_string(),
            certificate.not_valid_after_utc,
            now,
            thresholds,
        )
        for index, certificate in enumerate(certificates)
    ]


def certificate_inventory(now: dt.datetime | None = None) -> list[dict]:
    """Every certificate the portal depends on, soonest expiry first.

    Each entry: kind ("push", "ca", "server-identity", "tls", "device-identity"), name (topic,
    CA name, purpose, file#index, UDID), subject, not_after, days_left (whole days, negative
    once expired), severity ("ok", "notice", "warning", "critical", "expired"; "error" for an
    unreadable TLS chain file) and threshold (the warning threshold crossed, in days).
    """
    now = now or timezone.now()
    thresholds = warning_days()
    entries: list[dict] = []

    # Private keys are deferred: listing dates never decrypts a secret.
    push = (
        PushCertificate.objects.filter(active=True)
        .defer("private_key_pem")
        .order_by("-created_at")
        .first()
    )
    if push is not None:
        entries.append(
            _entry(
                "push",
                push.topic,
                push.subject,
                push.not_after,
                now,
                thresholds,
                development=push.development,
            )
        )
    for ca in CertificateAuthority.objects.filter(active=True).defer("private_key_pem"):
        entries.append(
            _entry("ca", ca.name, _subject(ca.certificate_pem), ca.not_after, now, thresholds)
        )
    for identity in ServerIdentity.objects.defer("private_key_pem").order_by("purpose"):
        entries.append(
            _entry(
                "server-identity",
                identity.purpose,
                _subject(identity.certificate_pem),
                identity.not_after,
                now,
                thresholds,
            )
        )
    chain_file = getattr(settings, "MDM_TLS_CHAIN_FILE", None)
    if chain_file:
        entries += _tls_chain(chain_file, now, thresholds)

    rows = (
        current_device_identities()
        .order_by()  # sorted below with the rest
        .values_list("serial", "subject", "not_after", "device__udid", "device__state")
    )
    for serial, subject, not_after, udid, state in rows:
        entries.append(
            _entry(
                "device-identity",
                udid,
                subject,
                not_after,
                now,
                thresholds,
                serial=serial,
                device_state=state,
            )
        )

    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    entries.sort(key=lambda e: (e["not_after"] is not None, e["not_after"] or far))
    return entries
