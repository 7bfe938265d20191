"""Certificate expiry: every certificate the portal depends on, and how soon each one expires.

`certificate_inventory()` is what the expiry sweep and the UI read: the active push
certificate, the device-identity CA, the server's own identities (profile signing), the server
TLS chain (`MDM_TLS_CERT_FILE`, or the portal's own: certs/server_tls.py), and what the layers
above register (devices adds each device's current identity, in one query; enrollment the
expiry of each ADE server token, which is no certificate but expires all the same and must be
renewed in time). A fixed handful of queries whatever the fleet size.

Severity comes from `MDM_EXPIRY_WARNING_DAYS` (default 30, 14, 7, 1 days): past the largest
threshold an entry is "notice", past the smallest "critical", in between "warning"; "expired"
once its date has passed, "ok" before any threshold. Each entry also names the threshold it
crossed, so a sweep can alert once per threshold.
"""

import datetime as dt
import logging
import math
from collections.abc import Callable

from cryptography import x509
from django.conf import settings
from django.utils import timezone

from .models import CertificateAuthority, PushCertificate, ServerIdentity
from .server_tls import SERVER_TLS, TLS_PURPOSES, ServerTLSError, chain_file, served_chain

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


ExpiryEntry = dict  # kind, name, subject, not_after, days_left, severity, threshold, ...


def expiry_entry(
    kind: str, name: str, subject: str, not_after: dt.datetime, now, thresholds, **extra
) -> ExpiryEntry:
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


# Sources of more entries, filled by the layers above (devices adds its device identities,
# enrollment the ADE server tokens): each is called with (now, thresholds) and returns entries
# made by expiry_entry(). A source that lists one entry per device (as many as the fleet) is
# marked per_device.
InventorySource = Callable[[dt.datetime, list[int]], list[ExpiryEntry]]
_SOURCES: list[tuple[InventorySource, bool]] = []

# What each kind is called in the UI and in alerts; a source registers the kinds it adds.
_LABELS: dict[str, str] = {
    "push": "Push certificate",
    "ca": "CA",
    "server-identity": "Server identity",
    "tls": "Server TLS",
    "device-identity": "Device identity",
}


def register_inventory_source(
    source: InventorySource, *, per_device: bool = False, kinds: dict[str, str] | None = None
) -> None:
    """Add a source of entries to certificate_inventory() (once, from an AppConfig), and the
    labels of the kinds it adds that certs does not know (kind -> label)."""
    if all(known is not source for known, _ in _SOURCES):
        _SOURCES.append((source, per_device))
    for kind, label in (kinds or {}).items():
        _LABELS.setdefault(kind, label)


def kind_labels() -> dict[str, str]:
    """Every kind the inventory lists, with its label (certs' own, then the registered)."""
    return dict(_LABELS)


def kind_label(kind: str) -> str:
    return _LABELS.get(kind, kind)


def _tls_chain(now, thresholds) -> list[dict]:
    """The served TLS chain, one entry per certificate (named file#index or server-tls#index)."""
    source = chain_file() or SERVER_TLS
    try:
        certificates = served_chain()
    except ServerTLSError as exc:
        log.warning("%s", exc)
        return [
            {
                "kind": "tls",
                "name": source,
                "subject": "",
                "not_after": None,
                "days_left": None,
                "severity": "error",
                "threshold": None,
                "error": str(exc),
            }
        ]
    return [
        expiry_entry(
            "tls",
            f"{source}#{index}",
            certificate.subject.rfc4514_string(),
            certificate.not_valid_after_utc,
            now,
            thresholds,
        )
        for index, certificate in enumerate(certificates)
    ]


def certificate_inventory(now: dt.datetime | None = None, *, per_device: bool = True) -> list[dict]:
    """Every certificate the portal depends on, soonest expiry first.

    With per_device=False, only the portal's own certificates (push, CAs, server identities,
    TLS chain, and what non-per-device sources add): a page that lists device identities on
    their own, paginated, need not build one entry per device.

    Each entry: kind ("push", "ca", "server-identity", "tls", "device-identity", and what the
    layers above register: "dep-token"), label (the kind in words), name (topic, CA name,
    purpose, file#index or server-tls#index, UDID, DEP server), subject, not_after, days_left
    (whole days, negative once expired), severity ("ok", "notice", "warning", "critical",
    "expired"; "error" for an unreadable TLS chain file) and threshold (the warning threshold
    crossed, in days).
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
            expiry_entry(
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
            expiry_entry("ca", ca.name, _subject(ca.certificate_pem), ca.not_after, now, thresholds)
        )
    # The server TLS chain is listed below, as served (the portal's own or the file's).
    identities = ServerIdentity.objects.exclude(purpose__in=TLS_PURPOSES)
    for identity in identities.defer("private_key_pem").order_by("purpose"):
        entries.append(
            expiry_entry(
                "server-identity",
                identity.purpose,
                _subject(identity.certificate_pem),
                identity.not_after,
                now,
                thresholds,
            )
        )
    entries += _tls_chain(now, thresholds)

    for source, fleet_sized in _SOURCES:
        if per_device or not fleet_sized:
            entries += source(now, thresholds)

    for entry in entries:
        entry.setdefault("label", kind_label(entry["kind"]))
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    entries.sort(key=lambda e: (e["not_after"] is not None, e["not_after"] or far))
    return entries
