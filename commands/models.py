"""The command queue: a command is stored once and fanned out as one row per device."""

import plistlib

from django.conf import settings
from django.db import models


class Command(models.Model):
    uuid = models.CharField(max_length=64, unique=True)  # CommandUUID
    request_type = models.CharField(max_length=100, db_index=True)
    payload = models.BinaryField()  # the Command dictionary as an XML plist
    raw = models.BooleanField(default=False)  # queued without catalog validation, by an admin
    queued_by = models.CharField(max_length=150)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    device_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.request_type} {self.uuid}"

    def command_dict(self) -> dict:
        return plistlib.loads(bytes(self.payload))


class Status(models.TextChoices):
    QUEUED = "queued"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    ERROR = "error"
    COMMAND_FORMAT_ERROR = "command_format_error"
    NOT_NOW = "not_now"
    EXPIRED = "expired"
    CANCELED = "canceled"


# Rows still waiting for an answer; the head of a device's queue is the oldest of these.
PENDING_STATUSES = (Status.QUEUED, Status.SENT, Status.NOT_NOW)
# Statuses a device reports, as they are stored.
ANSWER_STATUSES = {
    "Acknowledged": Status.ACKNOWLEDGED,
    "Error": Status.ERROR,
    "CommandFormatError": Status.COMMAND_FORMAT_ERROR,
    "NotNow": Status.NOT_NOW,
}
FINAL_STATUSES = (Status.ACKNOWLEDGED, Status.ERROR, Status.COMMAND_FORMAT_ERROR)


class QueuedCommand(models.Model):
    """One command for one device: the live queue."""

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="queue")
    command = models.ForeignKey(Command, on_delete=models.CASCADE, related_name="rows")
    request_type = models.CharField(max_length=100)  # copied so the head query needs no join
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_count = models.PositiveIntegerField(default=0)
    answered_at = models.DateTimeField(null=True, blank=True)
    result = models.BinaryField(null=True, blank=True)  # the device's answer, binary plist
    error_chain = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "commands_queue"
        constraints = [
            models.UniqueConstraint(fields=["device", "command"], name="one_row_per_device")
        ]
        indexes = [
            models.Index(fields=["device", "status", "id"], name="queue_head"),
            models.Index(fields=["status", "answered_at"], name="queue_answered"),
        ]

    def __str__(self) -> str:
        return f"{self.request_type} for device {self.device_id}: {self.status}"

    def result_dict(self) -> dict | None:
        return plistlib.loads(bytes(self.result)) if self.result else None


class ArchivedCommand(models.Model):
    """An answered queue row moved out of the live queue after the retention period.

    Keeps the history (status, times, ErrorChain) without the result payload.
    """

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="+")
    command = models.ForeignKey(Command, on_delete=models.CASCADE, related_name="+")
    request_type = models.CharField(max_length=100)
    status = models.CharField(max_length=24, choices=Status.choices)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True)
    answered_at = models.DateTimeField(null=True, db_index=True)
    error_chain = models.JSONField(null=True)
    archived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "commands_archive"

    def __str__(self) -> str:
        return f"{self.request_type} for device {self.device_id}: {self.status}"


class PushAttempt(models.Model):
    """One push to APNs (or one that was not attempted, and why), recorded in bulk."""

    class Kind(models.TextChoices):
        COMMAND = "command"  # commands were queued
        KEEPALIVE = "keepalive"  # the inactivity sweep
        NOTNOW = "notnow"  # commands waiting after a NotNow
        MANUAL = "manual"  # mdm_push

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    created_at = models.DateTimeField(db_index=True)
    status = models.PositiveSmallIntegerField()  # APNs HTTP status; 0 when not attempted
    apns_id = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["device", "-created_at"], name="push_by_device")]

    def __str__(self) -> str:
        return f"push to device {self.device_id}: {self.status} {self.reason}"
