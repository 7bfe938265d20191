"""The audit log: every sensitive action (enqueue, CA creation, certificate issuance ...)."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Who did it: a staff user, or a named system actor (a management command, a device, a task).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=80, db_index=True)
    target = models.CharField(max_length=255, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)  # a person's client address
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class Alert(models.Model):
    """Something an admin must see (the UI shows the open ones): a push certificate APNs
    refuses, a certificate close to expiry. One open alert per key."""

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    key = models.CharField(max_length=200, db_index=True)  # e.g. "apns:BadCertificate"
    severity = models.CharField(max_length=10, choices=Severity.choices)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(resolved_at=None), name="one_open_alert_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


class ApiToken(models.Model):
    """A key for scripts (`Authorization: Token <key>`), acting as its user with that user's
    role. Only the SHA-256 of the key is stored; its first characters (`prefix`) find it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    key_sha256 = models.CharField(max_length=64, unique=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
