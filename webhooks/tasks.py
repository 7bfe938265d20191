"""The webhook deliveries, run by Celery: triggered after each event's commit and every minute
by celery beat (webhooks/migrations/0002), and the delivery log's retention."""

import logging

from celery import shared_task

from mdm_portal.broker import run_soon

from . import delivery

log = logging.getLogger("mdm.webhooks")

# A run that leaves retries due sooner than the periodic run schedules itself for them.
RESCHEDULE_BELOW_SECONDS = 60


@shared_task
def deliver_webhooks() -> dict:
    counts = delivery.deliver_due()
    wait = delivery.next_due_in()
    if wait is not None and wait < RESCHEDULE_BELOW_SECONDS:
        run_soon(deliver_webhooks, "webhook retry", countdown=max(wait, 1))
    return counts


@shared_task
def prune_webhook_deliveries() -> dict:
    return {"pruned": delivery.prune()}
