"""Sending the outbox: each pending delivery is POSTed to its webhook, signed, retried with
exponential backoff, and given up (with an alert) after MDM_WEBHOOK_MAX_ATTEMPTS.

Order: a webhook's deliveries about one device form a sequence (about no device: one
sequence too), and only the head of a sequence, its oldest pending delivery, is sent. A
delivery that fails keeps its sequence waiting until it succeeds or is given up, so a
receiver sees a device's events in the order they happened, and one that is down loses
nothing: everything waits in the outbox and goes out, in order, once it answers again.

Each pass claims the due heads (a lease on `next_attempt_at`, so two workers never send the
same one), sends them concurrently over plain data (no database access in the threads), then
records each attempt. `deliver_due` runs passes until nothing is due or its time is up.
"""

import base64
import hashlib
import hmac
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from mdm_portal.alerts import raise_alert

from .models import Delivery, DeliveryAttempt, Webhook, WebhookEvent

log = logging.getLogger("mdm.webhooks")

SIGNATURE_HEADER = "X-Hmac-Signature"
CONTENT_TYPE = "application/json; charset=utf-8"
USER_AGENT = "mdm-portal-webhooks/1"
PASS_SIZE = 200  # heads claimed per pass
LEASE_EXTRA_SECONDS = 30  # a claimed delivery is due again after timeout + this (worker died)


def signature(secret: bytes, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)): the X-Hmac-Signature header, as NanoMDM sends it."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling from
    MDM_WEBHOOK_RETRY_SECONDS up to MDM_WEBHOOK_RETRY_MAX_SECONDS, the upper half jittered so
    that deliveries that failed together do not come back together."""
    base = settings.MDM_WEBHOOK_RETRY_SECONDS
    delay = min(base * 2 ** max(attempts - 1, 0), settings.MDM_WEBHOOK_RETRY_MAX_SECONDS)
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    url: str
    secret: bytes
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status: int | None  # HTTP status, None when the receiver gave no answer
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def due_heads(now: datetime, limit: int = PASS_SIZE) -> list[int]:
    """The ids of the sequence heads that are due, oldest first (one query)."""
    heads = (
        Delivery.objects.filter(state=Delivery.State.PENDING, webhook__active=True)
        .values("webhook_id", "sequence")
        .annotate(head=Min("id"))
        .values("head")
    )
    return list(
        Delivery.objects.filter(pk__in=heads, next_attempt_at__lte=now)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def claim(ids: list[int], now: datetime) -> list[int]:
    """Lease each due head; a head another worker leased first is left to it."""
    lease = now + timedelta(seconds=settings.MDM_WEBHOOK_TIMEOUT_SECONDS + LEASE_EXTRA_SECONDS)
    claimed = []
    for pk in ids:
        won = Delivery.objects.filter(
            pk=pk, state=Delivery.State.PENDING, next_attempt_at__lte=now
        ).update(next_attempt_at=lease)
        if won:
            claimed.append(pk)
    return claimed


def _outgoing(ids: list[int]) -> list[Outgoing]:
    rows = Delivery.objects.filter(pk__in=ids).select_related("event").order_by("id")
    webhooks = {w.pk: w for w in Webhook.objects.filter(pk__in={r.webhook_id for r in rows})}
    return [
        Outgoing(
            row.pk,
            webhooks[row.webhook_id].url,
            webhooks[row.webhook_id].secret,
            bytes(row.event.body),
        )
        for row in rows
    ]


def send(client: httpx.Client, item: Outgoing) -> Outcome:
    """POST one delivery (in a worker thread: plain data only)."""
    headers = {
        "Content-Type": CONTENT_TYPE,
        SIGNATURE_HEADER: signature(item.secret, item.body),
        "User-Agent": USER_AGENT,
    }
    started = time.monotonic()
    try:
        response = client.post(item.url, content=item.body, headers=headers)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
        return Outcome(None, error[:500], int((time.monotonic() - started) * 1000))
    elapsed = int((time.monotonic() - started) * 1000)
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, "", elapsed)
    excerpt = response.text[:200].strip()
    return Outcome(response.status_code, f"HTTP {response.status_code} {excerpt}"[:500], elapsed)


def record(delivery_id: int, outcome: Outcome, now: datetime) -> str:
    """Write one attempt's outcome; returns the delivery's new state."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update()
            .select_related("event", "webhook")
            .get(pk=delivery_id)
        )
        delivery.attempts += 1
        delivery.last_status = outcome.status
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.state = Delivery.State.DELIVERED
            delivery.delivered_at = now
        elif delivery.attempts >= settings.MDM_WEBHOOK_MAX_ATTEMPTS:
            delivery.state = Delivery.State.FAILED
            _alert_given_up(delivery)
        else:
            delivery.next_attempt_at = now + timedelta(seconds=backoff(delivery.attempts))
        delivery.save()
        DeliveryAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            status=outcome.status,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    return delivery.state


def alert_key(webhook: Webhook) -> str:
    return f"webhook:{webhook.pk}:gave-up"


def _alert_given_up(delivery: Delivery) -> None:
    webhook, event = delivery.webhook, delivery.event
    log.warning(
        "webhook %s gave up on %s %s: %s",
        webhook.url,
        event.topic,
        event.event_id,
        delivery.last_error,
    )
    raise_alert(
        alert_key(webhook),
        f"Webhook {webhook.url} did not accept {event.topic} (event {event.event_id}) after "
        f"{delivery.attempts} attempts: {delivery.last_error or 'no answer'}. Later events go "
        "on; `mdm_webhook retry` sends the given-up ones again.",
        severity="warning",
        webhook=webhook.pk,
        delivery=delivery.pk,
        event_id=event.event_id,
    )


def deliver_pass(now: datetime | None = None) -> dict[str, int]:
    """Send every due head once. Returns counts: delivered, retrying, failed (given up)."""
    now = now or timezone.now()
    claimed = claim(due_heads(now), now)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    if not claimed:
        return counts
    outgoing = _outgoing(claimed)
    timeout = httpx.Timeout(settings.MDM_WEBHOOK_TIMEOUT_SECONDS)
    workers = max(1, min(settings.MDM_WEBHOOK_CONCURRENCY, len(outgoing)))
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as client,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        outcomes = list(pool.map(lambda item: send(client, item), outgoing))
    for item, outcome in zip(outgoing, outcomes, strict=True):
        state = record(item.delivery_id, outcome, now)
        counts[{"delivered": "delivered", "failed": "failed"}.get(state, "retrying")] += 1
    return counts


def deliver_due(now: datetime | None = None, *, budget_seconds: float = 50.0) -> dict[str, int]:
    """Passes until nothing is due or `budget_seconds` are spent (a device's next event is due
    as soon as the one before it is delivered)."""
    deadline = time.monotonic() + budget_seconds
    total = {"delivered": 0, "retrying": 0, "failed": 0}
    while True:
        counts = deliver_pass(now)
        for key, value in counts.items():
            total[key] += value
        if not any(counts.values()) or time.monotonic() >= deadline:
            return total


def next_due_in(now: datetime | None = None) -> float | None:
    """Seconds until the next pending delivery is due (None: nothing pending)."""
    now = now or timezone.now()
    first = (
        Delivery.objects.filter(state=Delivery.State.PENDING, webhook__active=True)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return None if first is None else max((first - now).total_seconds(), 0.0)


def prune(now: datetime | None = None) -> int:
    """Drop delivered deliveries (and events nobody waits for) past the retention."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MDM_WEBHOOK_RETENTION_DAYS)
    dropped, _ = Delivery.objects.filter(
        state=Delivery.State.DELIVERED, delivered_at__lt=cutoff
    ).delete()
    WebhookEvent.objects.filter(created_at__lt=cutoff, deliveries__isnull=True).delete()
    return dropped
