"""The periodic sweeps over the fleet, each a few bulk SQL statements (no per-device loop).

Inactivity follows the seed's "Detecting Inactive Devices": a keep-alive push to devices not
seen for a while, and devices silent for longer are marked inactive until they poll again.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from .models import Device
from .reachability import pushable

log = logging.getLogger("mdm.sweeps")


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
