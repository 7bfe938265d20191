"""The webhooks' celery beat entries, installed once by webhooks/migrations/0002."""

SCHEDULE: dict[str, tuple[str, int]] = {
    "deliver webhooks": ("webhooks.tasks.deliver_webhooks", 60),
    "prune webhook deliveries": ("webhooks.tasks.prune_webhook_deliveries", 24 * 3600),
}
