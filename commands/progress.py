"""How far commands have got: their devices counted per status, for a whole page of commands in
one GROUP BY over the live queue and one over the archive (answered rows move there after the
retention period and still count); and one command's devices, live and archived rows as one
list that pages and filters by status."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import BinaryField, Count, F, QuerySet, Value

from .catalog import DELIVERED_WHEN_SENT
from .models import ArchivedCommand, Command, QueuedCommand, Status

# The order statuses are shown in: waiting first, then answers, then what ended otherwise.
STATUS_ORDER = (
    Status.QUEUED,
    Status.SENT,
    Status.NOT_NOW,
    Status.ACKNOWLEDGED,
    Status.ERROR,
    Status.COMMAND_FORMAT_ERROR,
    Status.EXPIRED,
    Status.CANCELED,
)
LABELS = dict(Status.choices)
CANCELABLE = (Status.QUEUED, Status.NOT_NOW)  # as commands.queue.cancel_queued


@dataclass(frozen=True)
class Progress:
    """The devices of one command counted per status."""

    request_type: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def segments(self) -> list[tuple[str, str, int]]:
        """(status, label, count) for each status some device is in, in display order."""
        return [(s.value, LABELS[s], self.counts[s]) for s in STATUS_ORDER if self.counts.get(s)]

    @property
    def waiting(self) -> int:
        """Devices whose answer may still come (an EraseDevice sent is done: it may never)."""
        sent = 0 if self.request_type in DELIVERED_WHEN_SENT else self.counts.get(Status.SENT, 0)
        return self.counts.get(Status.QUEUED, 0) + self.counts.get(Status.NOT_NOW, 0) + sent

    @property
    def cancelable(self) -> int:
        return sum(self.counts.get(status, 0) for status in CANCELABLE)

    def describe(self) -> str:
        """In words, for screen readers and titles: "2 acknowledged, 1 queued"."""
        return ", ".join(f"{n} {label.lower()}" for _s, label, n in self.segments) or "no device"


def progress_of(commands: Iterable[Command]) -> dict[int, Progress]:
    """Progress of each command (by pk): two GROUP BY queries, however many commands."""
    commands = list(commands)
    counts: dict[int, dict[str, int]] = {command.pk: {} for command in commands}
    for model in (QueuedCommand, ArchivedCommand):
        rows = (
            model.objects.filter(command_id__in=counts)
            .order_by()
            .values_list("command_id", "status")
            .annotate(n=Count("id"))
        )
        for command_id, status, n in rows:
            counts[command_id][status] = counts[command_id].get(status, 0) + n
    return {c.pk: Progress(c.request_type, counts[c.pk]) for c in commands}


# A command's rows as the device table shows them (the same columns live and archived).
DEVICE_COLUMNS = {
    "udid": F("device__udid"),
    "name": F("device__device_name"),
    "row_status": F("status"),
    "sent": F("sent_at"),
    "answered": F("answered_at"),
    "errors": F("error_chain"),
}


def device_rows(command: Command, status: str = "") -> QuerySet:
    """The command's rows, live and archived, as dicts; of one status only if `status`.

    A union of two value querysets: it is ordered by its columns, sliced and paged like a
    queryset. Archived rows have no result (the archive keeps no payload).
    """
    live = QueuedCommand.objects.filter(command=command)
    archived = ArchivedCommand.objects.filter(command=command)
    if status:
        live, archived = live.filter(status=status), archived.filter(status=status)
    live = live.order_by().values("id", **DEVICE_COLUMNS, answer=F("result"))
    archived = archived.order_by().values(
        "id", **DEVICE_COLUMNS, answer=Value(None, output_field=BinaryField())
    )
    return live.union(archived, all=True).order_by("name", "udid")
