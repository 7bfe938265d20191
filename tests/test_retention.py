"""Answered rows leave the live queue after the retention period; history stays readable."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from commands.models import ArchivedCommand, QueuedCommand, Status
from commands.retention import archive_answered
from commands.tasks import archive_answered_commands

pytestmark = pytest.mark.django_db


def test_only_answered_rows_past_retention_are_archived(enrolled):
    rows = list(QueuedCommand.objects.filter(device__udid=enrolled.udid).order_by("id"))
    old = timezone.now() - timedelta(days=40)
    QueuedCommand.objects.filter(pk=rows[0].pk).update(
        status=Status.ACKNOWLEDGED, answered_at=old, result=b"x"
    )
    QueuedCommand.objects.filter(pk=rows[1].pk).update(status=Status.ERROR, answered_at=old)
    QueuedCommand.objects.filter(pk=rows[2].pk).update(
        status=Status.ACKNOWLEDGED, answered_at=timezone.now()
    )
    # rows[3] and rows[4] are still queued: never archived, however old.
    QueuedCommand.objects.filter(pk__in=[rows[3].pk, rows[4].pk]).update(created_at=old)

    assert archive_answered(timedelta(days=30)) == 2
    assert set(QueuedCommand.objects.values_list("pk", flat=True)) == {
        rows[2].pk,
        rows[3].pk,
        rows[4].pk,
    }
    archived = {a.command_id: a for a in ArchivedCommand.objects.all()}
    assert archived[rows[0].command_id].status == Status.ACKNOWLEDGED
    assert archived[rows[1].command_id].status == Status.ERROR
    assert archive_answered(timedelta(days=30)) == 0  # nothing twice

    out = StringIO()
    call_command("mdm_device", enrolled.udid, "--recent", "10", stdout=out)
    history = json.loads(out.getvalue())["recent_commands"]
    assert len(history) == 5
    assert sum(1 for entry in history if entry.get("archived")) == 2


def test_task_drops_archived_rows_past_archive_retention(settings, enrolled):
    settings.MDM_ARCHIVE_RETENTION_DAYS = 90
    past_queue_retention = timezone.now() - timedelta(days=40)
    QueuedCommand.objects.update(status=Status.ACKNOWLEDGED, answered_at=past_queue_retention)
    result = archive_answered_commands()
    assert result == {"archived": 5, "dropped": 0}
    ArchivedCommand.objects.update(answered_at=timezone.now() - timedelta(days=200))
    assert archive_answered_commands() == {"archived": 0, "dropped": 5}
