"""Counts of the queue and the pushes for the dashboard: a few aggregate queries, whatever the
fleet size."""

import datetime as dt

from django.db.models import Count, Q
from django.utils import timezone

from .models import PENDING_STATUSES, PushAttempt, QueuedCommand, Status

FAILED = (Status.ERROR, Status.COMMAND_FORMAT_ERROR)


def queue_counts(*, since_days: int = 7, now: dt.datetime | None = None) -> dict[str, int]:
    """Commands waiting (queued, sent, not now) and failed in the last `since_days` days."""
    since = (now or timezone.now()) - dt.timedelta(days=since_days)
    return QueuedCommand.objects.aggregate(
        queued=Count("id", filter=Q(status=Status.QUEUED)),
        sent=Count("id", filter=Q(status=Status.SENT)),
        not_now=Count("id", filter=Q(status=Status.NOT_NOW)),
        waiting=Count("id", filter=Q(status__in=PENDING_STATUSES)),
        failed=Count("id", filter=Q(status__in=FAILED, answered_at__gte=since)),
    )


def failed_pushes(*, since_hours: int = 24, limit: int = 8, now: dt.datetime | None = None):
    """Push attempts APNs refused (or that were not attempted) lately: (count, latest rows)."""
    since = (now or timezone.now()) - dt.timedelta(hours=since_hours)
    failed = PushAttempt.objects.filter(created_at__gte=since).exclude(status=200)
    latest = failed.select_related("device").order_by("-created_at")[:limit]
    return failed.count(), list(latest)
