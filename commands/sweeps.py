"""The queue's periodic sweeps, each a few bulk SQL statements (no per-device loop): devices
whose commands a NotNow holds back, and commands that never got an answer."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from devices.reachability import pushable

from .models import PENDING_STATUSES, QueuedCommand, Status

log = logging.getLogger("mdm.sweeps")


def not_now_due(now: datetime | None = None) -> list[int]:
    """Devices with commands held back by a NotNow, not pushed for MDM_NOTNOW_REPUSH_HOURS.

    The device polls by itself when it can; this gentle reminder covers the case where it
    never does, without flooding it.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.MDM_NOTNOW_REPUSH_HOURS)
    waiting = QueuedCommand.objects.filter(status=Status.NOT_NOW).values("device_id")
    return list(
        pushable()
        .filter(pk__in=waiting)
        .filter(Q(last_push_at__isnull=True) | Q(last_push_at__lt=cutoff))
        .values_list("id", flat=True)
    )


def expire_commands(now: datetime | None = None) -> int:
    """Unanswered rows older than MDM_COMMAND_EXPIRY_DAYS become expired (kept, not deleted)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MDM_COMMAND_EXPIRY_DAYS)
    count = QueuedCommand.objects.filter(status__in=PENDING_STATUSES, created_at__lt=cutoff).update(
        status=Status.EXPIRED, answered_at=now
    )
    log.info("command expiry sweep: %s command(s) expired", count)
    return count
