"""The webhooks in the admin: read-only like every protocol model (mdm_portal.admin), and
never the secret (an encrypted field is never shown)."""

from django.contrib import admin

from mdm_portal.admin import ReadOnlyAdmin

from .models import Delivery, DeliveryAttempt, Webhook, WebhookEvent


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    list_display = ("url", "active", "events", "created_at")
    exclude = ("secret",)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "topic", "udid", "event_id")
    list_filter = ("topic",)
    exclude = ("body",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "webhook", "event", "state", "attempts", "last_status", "next_attempt_at")
    list_filter = ("state",)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ("attempted_at", "delivery", "status", "error", "duration_ms")
