"""When devices are seen: last_seen_at on the device, and one DailyActivity row per device and
day for the check-ins chart. Written by every device request (check-in and server URL), at most
one extra INSERT per device per day."""

import datetime as dt

from django.db.models import Count
from django.utils import timezone

from .models import DailyActivity, Device

ACTIVITY_RETENTION_DAYS = 90
# last_seen_at is kept to this precision: a device polling many times a minute (answering a
# burst of commands) writes its row once, not at every poll.
SEEN_PRECISION = dt.timedelta(seconds=60)


def mark_seen(device: Device, now: dt.datetime) -> list[str]:
    """Note a request of `device` at `now` (caller saves the returned fields, none when the
    row already says it was seen within SEEN_PRECISION). The first request of a UTC day
    records that day's activity."""
    previous = device.last_seen_at
    if (
        previous is not None
        and device.inactive_since is None
        and previous.date() == now.date()
        and dt.timedelta(0) <= now - previous < SEEN_PRECISION
    ):
        return []
    device.last_seen_at = now
    device.inactive_since = None  # a device that talks is not inactive
    if previous is None or previous.date() != now.date():
        record_activity(device.pk, now.date())
    return ["last_seen_at", "inactive_since"]


def record_activity(device_id: int, day: dt.date) -> None:
    """The device was seen on `day` (idempotent)."""
    DailyActivity.objects.bulk_create(
        [DailyActivity(device_id=device_id, day=day)], ignore_conflicts=True
    )


def daily_checkins(days: int = 30, *, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    """Devices that checked in on each of the last `days` days, oldest first (0 for none)."""
    today = today or timezone.now().date()
    first = today - dt.timedelta(days=days - 1)
    counts = dict(
        DailyActivity.objects.filter(day__gte=first, day__lte=today)
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [
        (first + dt.timedelta(days=i), counts.get(first + dt.timedelta(days=i), 0))
        for i in range(days)
    ]


def prune_activity(*, now: dt.datetime | None = None) -> int:
    """Drop activity older than ACTIVITY_RETENTION_DAYS (the chart shows 30)."""
    cutoff = (now or timezone.now()).date() - dt.timedelta(days=ACTIVITY_RETENTION_DAYS)
    deleted, _ = DailyActivity.objects.filter(day__lt=cutoff).delete()
    return deleted


def os_version_counts(limit: int = 12) -> list[tuple[str, int]]:
    """Managed devices by platform and OS version, most common first."""
    rows = (
        Device.objects.filter(state=Device.State.ENROLLED)
        .values_list("platform", "os_version")
        .annotate(n=Count("id"))
        .order_by("-n", "platform", "os_version")[:limit]
    )
    return [(f"{platform or '?'} {version or '?'}", n) for platform, version, n in rows]
