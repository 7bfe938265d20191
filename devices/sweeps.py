"""The periodic sweeps over the fleet, each a few bulk SQL statements (no per-device loop).

Inactivity follows the seed's "Detecting Inactive Devices": a keep-alive push to devices not
seen for a while, and devices silent for longer are marked inactive until they poll again.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from commands.models import PENDING_STATUSES, QueuedCommand, Status

from . import reachability
from .models import Device

log = logging.getLogger("mdm.sweeps")


def pushable() -> QuerySet:
    """Managed devices APNs can reach: the rule of `devices.reachability`, which the pushes
    give their per-device reasons by."""
    return reachability.pushable()


def mark_inactive(now: datetime | None = None) -> int:
    """Mark managed devices silent for MDM_INACTIVE_DAYS as inactive (one UPDATE)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MDM_INACTIVE_DAYS)
    count = Device.objects.filter(
        state=Device.State.ENROLLED, inactive_since__isnull=True, last_seen_at__lt=cutoff
    ).update(inactive_since=now)
    log.info("inactivity sweep: %s device(s) marked inactive", count)
    return count


def keepalive_due(now: datetime | None = None) -> list[int]:
    """Devices not seen, and not pushed, for MDM_KEEPALIVE_HOURS: they get a keep-alive push."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.MDM_KEEPALIVE_HOURS)
    return list(
        pushable()
        .filter(last_seen_at__lt=cutoff)
        .filter(Q(last_push_at__isnull=True) | Q(last_push_at__lt=cutoff))
        .values_list("id", flat=True)
    )


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


def device_counts() -> dict[str, int]:
    """How many devices are in each state, for the UI and the API (one query)."""
    managed = Q(state=Device.State.ENROLLED)
    return Device.objects.aggregate(
        total=Count("id"),
        enrolled=Count("id", filter=managed),
        pending=Count("id", filter=Q(state=Device.State.PENDING)),
        checked_out=Count("id", filter=Q(state=Device.State.CHECKED_OUT)),
        inactive=Count("id", filter=managed & Q(inactive_since__isnull=False)),
        token_invalid=Count("id", filter=managed & Q(token_invalid_at__isnull=False)),
    )
