"""Webhooks: the URLs admins registered, the events waiting to go out (the outbox) and the
delivery log. An event is written once, in the transaction of what caused it, with one
Delivery per webhook that wants it; a Celery task sends the deliveries, in order per device."""

from django.db import models

from mdm_portal.encryption import EncryptedBinaryField

# MicroMDM's check-in and command-result topics (the ones NanoMDM emits too), and the
# portal's own events for what they lack.
MDM_TOPICS = (
    "mdm.Authenticate",
    "mdm.TokenUpdate",
    "mdm.CheckOut",
    "mdm.SetBootstrapToken",
    "mdm.GetBootstrapToken",
    "mdm.UserAuthenticate",
    "mdm.Connect",
)
PORTAL_TOPICS = (
    "portal.enrollment.created",
    "portal.push.failed",
    "portal.certificate.expiring",
    "portal.ping",
)
TOPICS = MDM_TOPICS + PORTAL_TOPICS


class Webhook(models.Model):
    url = models.URLField(max_length=500)
    # The topics it receives; empty: every topic.
    events = models.JSONField(default=list, blank=True)
    # HMAC-SHA256 key of the X-Hmac-Signature header: shown once at creation, never again.
    secret = EncryptedBinaryField()
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url

    def wants(self, topic: str) -> bool:
        return not self.events or topic in self.events


class WebhookEvent(models.Model):
    """One event, as the exact JSON body every webhook that wants it receives."""

    event_id = models.CharField(max_length=36, unique=True)
    topic = models.CharField(max_length=60, db_index=True)
    udid = models.CharField(max_length=128, blank=True)  # the device it is about, if any
    body = models.BinaryField()
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id}"


class Delivery(models.Model):
    """One event for one webhook: pending until the receiver answers 2xx or the attempts run
    out. A webhook's deliveries about one device go out in order (`sequence`: the UDID)."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after MDM_WEBHOOK_MAX_ATTEMPTS

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    sequence = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)  # HTTP status
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            # The head of each (webhook, device) sequence: the oldest pending delivery.
            models.Index(fields=["state", "webhook", "sequence", "id"], name="delivery_heads"),
            models.Index(fields=["webhook", "-id"], name="delivery_log"),
        ]

    def __str__(self) -> str:
        return f"event {self.event_id} to webhook {self.webhook_id}: {self.state}"


class DeliveryAttempt(models.Model):
    """One POST of a delivery and what came of it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # None: no answer
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"attempt on delivery {self.delivery_id}: {self.status or self.error}"
