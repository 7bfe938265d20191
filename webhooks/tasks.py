"""The webhook deliveries, run by Celery: triggered after each event's commit and every minute
by celery beat (webhooks/migrations/0002), and the delivery log's retention."""

import logging

from celery import shared_task

from . import delivery

log = logging.getLogger("mdm.webhooks")

# A run that leaves retries due sooner than the periodic run schedules itself for them.
RESCHEDULE_BELOW_SECONDS = 60


@shared_task
def deliver_webhooks() -> dict:
    counts = delivery.deliver_due()
    wait = delivery.next_due_in()
    if wait is not None and wait < RESCHEDULE_BELOW_SECONDS:
        try:
            deliver_webhooks.apply_async(countdown=max(wait, 1))
        except Exception as exc:  # noqa: BLE001 - the periodic run retries
            log.warning("webhook retry not scheduled (the periodic run will send): %s", exc)
    return counts


@shared_task
def prune_webhook_deliveries() -> dict:
    return {"pruned": delivery.prune()}
