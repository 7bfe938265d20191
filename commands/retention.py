"""Queue retention: answered rows leave the live queue for the archive after
MDM_QUEUE_RETENTION_DAYS (hourly Celery task), so the queue stays small at fleet scale."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import FINAL_STATUSES, ArchivedCommand, QueuedCommand, Status

BULK_BATCH = 5000  # rows per statement when archiving


def archive_answered(older_than: timedelta) -> int:
    """Move answered rows older than `older_than` out of the live queue. Returns how many.

    Batched INSERT ... SELECT and DELETE keep it a few statements however large the queue.
    """
    cutoff = timezone.now() - older_than
    answered = QueuedCommand.objects.filter(
        status__in=[*FINAL_STATUSES, Status.CANCELED, Status.EXPIRED], answered_at__lt=cutoff
    )
    moved = 0
    while True:
        with transaction.atomic():
            batch = list(answered.defer("result").order_by("id")[:BULK_BATCH])
            if not batch:
                return moved
            now = timezone.now()
            ArchivedCommand.objects.bulk_create(
                ArchivedCommand(
                    device_id=row.device_id,
                    command_id=row.command_id,
                    request_type=row.request_type,
                    status=row.status,
                    created_at=row.created_at,
                    sent_at=row.sent_at,
                    answered_at=row.answered_at,
                    error_chain=row.error_chain,
                    archived_at=now,
                )
                for row in batch
            )
            QueuedCommand.objects.filter(pk__in=[row.pk for row in batch]).delete()
            moved += len(batch)
