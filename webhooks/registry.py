"""Registering webhooks: add (the secret is shown once), change, remove, ping. What
`mdm_webhook`, the UI page and the API call; every change is audited, never with the secret."""

import secrets
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from mdm_portal.alerts import resolve_alerts
from mdm_portal.audit import audit

from .delivery import alert_key
from .models import TOPICS, Delivery, Webhook
from .outbox import emit, trigger_delivery

MIN_SECRET = 16


def with_counts():
    """Every webhook, with how many deliveries wait (`pending`) and were given up (`failed`)."""
    return Webhook.objects.annotate(
        pending=Count("deliveries", filter=Q(deliveries__state=Delivery.State.PENDING)),
        failed=Count("deliveries", filter=Q(deliveries__state=Delivery.State.FAILED)),
    ).order_by("id")


class WebhookError(ValueError):
    """A webhook that cannot be registered or changed; the message names the key."""


def check_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("url: an http:// or https:// URL with a host")
    if len(url) > 500:
        raise WebhookError("url: at most 500 characters")
    return url


def check_events(topics) -> list[str]:
    topics = list(dict.fromkeys(topics or []))
    unknown = [topic for topic in topics if topic not in TOPICS]
    if unknown:
        raise WebhookError(f"events: unknown topic {unknown[0]!r} (known: {', '.join(TOPICS)})")
    return topics


def create_webhook(
    url: str,
    *,
    actor,
    events=None,
    secret: str = "",
    description: str = "",
    address: str | None = None,
) -> tuple[Webhook, str]:
    """Register a webhook; returns it and its secret (generated unless given), shown once."""
    url = check_url(url)
    topics = check_events(events)
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < MIN_SECRET:
        raise WebhookError(f"secret: at least {MIN_SECRET} characters")
    by = actor.get_username() if hasattr(actor, "get_username") else str(actor)
    with transaction.atomic():
        webhook = Webhook.objects.create(
            url=url,
            events=topics,
            secret=secret.encode(),
            description=(description or "")[:200],
            created_by=by[:150],
        )
        audit(
            "webhook.created",
            actor=actor,
            target=url,
            address=address,
            webhook=webhook.pk,
            events=topics or "all",
        )
    return webhook, secret


def update_webhook(webhook: Webhook, *, actor, address: str | None = None, **changes) -> Webhook:
    """Change url, events, description or active; the secret stays."""
    if "url" in changes:
        changes["url"] = check_url(changes["url"])
    if "events" in changes:
        changes["events"] = check_events(changes["events"])
    unknown = set(changes) - {"url", "events", "description", "active"}
    if unknown:
        raise WebhookError(f"{sorted(unknown)[0]}: cannot be changed")
    changed = {k: v for k, v in changes.items() if getattr(webhook, k) != v}
    if not changed:
        return webhook
    with transaction.atomic():
        for key, value in changed.items():
            setattr(webhook, key, value)
        webhook.save(update_fields=list(changed))
        audit(
            "webhook.changed",
            actor=actor,
            target=webhook.url,
            address=address,
            webhook=webhook.pk,
            **changed,
        )
    return webhook


def delete_webhook(webhook: Webhook, *, actor, address: str | None = None) -> None:
    """Remove the webhook and its delivery log (pending deliveries are dropped)."""
    with transaction.atomic():
        pk, url = webhook.pk, webhook.url
        webhook.delete()
        audit("webhook.deleted", actor=actor, target=url, address=address, webhook=pk)


def ping(webhook: Webhook, *, actor, address: str | None = None) -> int:
    """Queue a portal.ping event for this webhook alone (to check the receiver and the
    signature); delivered like any other event."""
    with transaction.atomic():
        queued = emit("portal.ping", {"webhook": webhook.pk}, only=webhook)
        audit(
            "webhook.pinged", actor=actor, target=webhook.url, address=address, webhook=webhook.pk
        )
    return queued


def retry_failed(webhook: Webhook, *, actor, address: str | None = None) -> int:
    """Send the given-up deliveries of `webhook` again (attempts start over); audited."""
    with transaction.atomic():
        count = Delivery.objects.filter(webhook=webhook, state=Delivery.State.FAILED).update(
            state=Delivery.State.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        resolve_alerts(alert_key(webhook))
        audit(
            "webhook.retried",
            actor=actor,
            target=webhook.url,
            address=address,
            webhook=webhook.pk,
            deliveries=count,
        )
    if count:
        transaction.on_commit(trigger_delivery)
    return count
