"""Writing events into the outbox: inside the caller's transaction (a device request, a push,
a sweep), so a rollback writes none and a device request never waits for a receiver. One
event row, one Delivery per active webhook that wants the topic; after the commit the delivery
task is asked to run (at most once a second per process; the every-minute run is the
backstop)."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from mdm_portal.broker import attempt

from . import events
from .models import Delivery, Webhook, WebhookEvent

log = logging.getLogger("mdm.webhooks")

TRIGGER_KEY = "webhooks:delivery-triggered"
TRIGGER_DELAY_SECONDS = 1
# Most portals have no webhook: then every check-in and poll would read the webhooks table
# for nothing. Each process remembers for this long that none is active. Only that answer is
# remembered (a webhook that exists is always read fresh), and saving or deleting one forgets
# it at once in this process: a webhook made in another process gets events within seconds.
NONE_ACTIVE_SECONDS = 5.0
_none_active_until = 0.0


def forget_none_active(**kwargs) -> None:
    """A webhook changed: read the table again at the next event (post_save / post_delete)."""
    global _none_active_until
    _none_active_until = 0.0


def _active_webhooks() -> list[Webhook]:
    global _none_active_until
    if time.monotonic() < _none_active_until:
        return []
    webhooks = list(Webhook.objects.filter(active=True).only("id", "events"))
    if not webhooks:
        _none_active_until = time.monotonic() + NONE_ACTIVE_SECONDS
    return webhooks


@dataclass(frozen=True)
class Event:
    topic: str
    # The checkin_event, acknowledge_event or portal_event object, or a function that makes
    # it: a device request builds its event (base64 of the body) only if a webhook wants it.
    content: dict | Callable[[], dict]
    udid: str = ""  # the device it is about: its deliveries keep their order

    def resolved(self) -> dict:
        return self.content() if callable(self.content) else self.content


def emit(
    topic: str,
    content: dict | Callable[[], dict],
    *,
    udid: str = "",
    only: Webhook | None = None,
) -> int:
    """Queue one event for the webhooks that want it; returns how many deliveries."""
    return emit_many([Event(topic, content, udid)], only=only)


def emit_many(batch: list[Event], *, only: Webhook | None = None) -> int:
    """Queue many events in three statements (webhooks, events, deliveries)."""
    if not batch:
        return 0
    if only is not None:  # a ping: to this webhook, whatever topics it asked for
        wanted = [(event, [only]) for event in batch]
    else:
        webhooks = _active_webhooks()
        wanted = [(event, [w for w in webhooks if w.wants(event.topic)]) for event in batch]
    wanted = [(event, targets) for event, targets in wanted if targets]
    if not wanted:
        return 0
    now = timezone.now()
    rows = []
    for event, _targets in wanted:
        event_id = events.new_event_id()
        section = events.section_of(event.topic)
        rows.append(
            WebhookEvent(
                event_id=event_id,
                topic=event.topic,
                udid=event.udid[:128],
                body=events.body(event.topic, event_id, now, section, event.resolved()),
                created_at=now,
            )
        )
    stored = WebhookEvent.objects.bulk_create(rows)
    deliveries = [
        Delivery(
            webhook=webhook,
            event=row,
            sequence=row.udid,
            next_attempt_at=now,
            created_at=now,
        )
        for row, (_event, targets) in zip(stored, wanted, strict=True)
        for webhook in targets
    ]
    Delivery.objects.bulk_create(deliveries)
    transaction.on_commit(trigger_delivery)
    return len(deliveries)


def trigger_delivery() -> None:
    """Ask the delivery task to run shortly; if the broker is away, the periodic run sends.

    The cache is on the broker's Redis in production, so it goes through the same breaker: a
    Redis that is down costs the request nothing (mdm_portal.broker).
    """
    from .tasks import deliver_webhooks

    def schedule() -> bool:
        if not cache.add(TRIGGER_KEY, 1, timeout=TRIGGER_DELAY_SECONDS):
            return False  # a run is already due within the second, and will see this event
        deliver_webhooks.apply_async(countdown=TRIGGER_DELAY_SECONDS, retry=False)
        return True

    attempt("webhook delivery", schedule)
