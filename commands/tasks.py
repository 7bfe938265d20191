"""Periodic work of the command queue, run by Celery workers (scheduled by celery beat)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import ArchivedCommand
from .queue import archive_answered

log = logging.getLogger("mdm.tasks")


@shared_task
def archive_answered_commands() -> dict:
    """Keep the live queue small: archive answered rows, drop archived rows past retention."""
    moved = archive_answered(timedelta(days=settings.MDM_QUEUE_RETENTION_DAYS))
    dropped = 0
    if settings.MDM_ARCHIVE_RETENTION_DAYS:
        cutoff = timezone.now() - timedelta(days=settings.MDM_ARCHIVE_RETENTION_DAYS)
        dropped, _ = ArchivedCommand.objects.filter(answered_at__lt=cutoff).delete()
    log.info("archived %s answered command(s), dropped %s old archived one(s)", moved, dropped)
    return {"archived": moved, "dropped": dropped}
