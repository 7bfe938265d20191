"""Raising and resolving alerts: one open alert per key, updated rather than repeated."""

from django.db import transaction
from django.utils import timezone

from .models import Alert


def raise_alert(key: str, message: str, severity: str = Alert.Severity.WARNING, **details) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(key=key, resolved_at=None).first()
        if alert is None:
            return Alert.objects.create(
                key=key, severity=severity, message=message, details=details
            )
        alert.severity, alert.message, alert.details = severity, message, details
        alert.save(update_fields=["severity", "message", "details"])
        return alert


def resolve_alerts(prefix: str) -> int:
    """Close the open alerts whose key starts with `prefix` (the cause went away)."""
    return Alert.objects.filter(key__startswith=prefix, resolved_at=None).update(
        resolved_at=timezone.now()
    )


def open_alerts():
    return Alert.objects.filter(resolved_at=None).order_by("-created_at")
