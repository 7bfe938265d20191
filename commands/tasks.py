"""Periodic and triggered work of the command queue, run by Celery workers.

The schedule (celery beat, kept in the database by django-celery-beat) is in settings.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices import sweeps as device_sweeps
from devices.models import Device

from . import sweeps
from .models import ArchivedCommand
from .retention import archive_answered

log = logging.getLogger("mdm.tasks")

CLAIM_BATCH = 20_000


def _push(device_ids: list[int], kind: str) -> dict:
    from .apns import push_devices

    if not device_ids:
        return {"sent": 0}
    summary = push_devices(device_ids, kind)
    return {"sent": summary.sent, "ok": summary.ok, "failed": summary.failed}


@dataclass(frozen=True)
class Claim:
    """The devices one run took the push of, until `until` (the end of its lease)."""

    ids: list[int]
    until: datetime


def claim_due_pushes(limit: int = CLAIM_BATCH) -> Claim:
    """Take the devices whose push is due, for one push that serves all their commands.

    The claim is a lease, not a deletion: push_due_at moves to the end of the lease, so other
    runs leave the device alone, and only `release` clears it, once the batch was handed to
    APNs. A worker killed in between leaves the marks, which fall due again when the lease
    ends, and the next run pushes them: a duplicate push is harmless, a lost one would leave
    the device's commands waiting for its next keep-alive. Two workers never claim the same
    device: rows are locked (skipped if another holds them) and moved in one transaction.
    """
    now = timezone.now()
    until = now + timedelta(seconds=settings.MDM_PUSH_CLAIM_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Device.objects.select_for_update(skip_locked=True)
            .filter(push_due_at__lte=now)
            .order_by("push_due_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Device.objects.filter(pk__in=ids).update(push_due_at=until)
    return Claim(ids, until)


def release(claim: Claim) -> None:
    """Clear the marks of a claim whose pushes went to APNs. A mark that moved since (a command
    queued meanwhile: commands.queue.request_push) stays, for a push of its own."""
    Device.objects.filter(pk__in=claim.ids, push_due_at=claim.until).update(push_due_at=None)


@shared_task
def push_due_devices() -> dict:
    """Push every device with commands waiting since the last push (coalesced)."""
    total = {"sent": 0, "ok": 0, "failed": 0}
    while (claim := claim_due_pushes()).ids:
        for key, value in _push(claim.ids, "command").items():
            total[key] = total.get(key, 0) + value
        release(claim)
    return total


@shared_task
def archive_answered_commands() -> dict:
    """Keep the live queue small: archive answered rows, drop archived rows past retention."""
    moved = archive_answered(timedelta(days=settings.MDM_QUEUE_RETENTION_DAYS))
    dropped = 0
    if settings.MDM_ARCHIVE_RETENTION_DAYS:
        cutoff = timezone.now() - timedelta(days=settings.MDM_ARCHIVE_RETENTION_DAYS)
        dropped, _ = ArchivedCommand.objects.filter(answered_at__lt=cutoff).delete()
    log.info("archived %s answered command(s), dropped %s old archived one(s)", moved, dropped)
    return {"archived": moved, "dropped": dropped}


@shared_task
def expire_commands() -> dict:
    return {"expired": sweeps.expire_commands()}


@shared_task
def inactivity_sweep() -> dict:
    """Keep-alive pushes to quiet devices, then mark the long-silent ones inactive."""
    keepalive = _push(device_sweeps.keepalive_due(), "keepalive")
    return {"keepalive": keepalive, "inactive": device_sweeps.mark_inactive()}


@shared_task
def not_now_sweep() -> dict:
    return _push(sweeps.not_now_due(), "notnow")


def _expiry_message(entry: dict) -> str:
    """What an expiry alert says: which certificate (or token), when, and what to do if the
    entry says (an ADE server token is renewed in Apple Business Manager)."""
    what = f"{entry.get('label') or entry['kind']} {entry.get('subject') or entry.get('name', '')}"
    days = entry["days_left"]
    when = f"expired {-days} day(s) ago" if days < 0 else f"expires in {days} day(s)"
    hint = f": {entry['hint']}" if entry.get("hint") else ""
    return f"{what.strip()} {when}{hint}"


@shared_task
def certificate_expiry_sweep() -> dict:
    """Alerts for certificates past a warning threshold (renewals are enrollment's task)."""
    from certs.expiry import certificate_inventory
    from certs.signals import certificate_expiring
    from mdm_portal.alerts import open_alerts, raise_alert, resolve_alerts

    raised = 0
    for entry in certificate_inventory():
        if entry["kind"] == "device-identity":
            continue  # renewed by enrollment.tasks.renew_device_identities
        key = f"expiry:{entry['kind']}:{entry.get('name') or entry.get('subject')}"[:200]
        if entry["severity"] in ("ok", "error"):
            resolve_alerts(key)
            continue
        stage = [entry["severity"], entry["threshold"]]
        previous = open_alerts().filter(key=key).first()
        with transaction.atomic():
            raise_alert(
                key,
                _expiry_message(entry),
                severity="critical" if entry["severity"] in ("critical", "expired") else "warning",
                days_left=entry["days_left"],
                stage=stage,
            )
            if previous is None or previous.details.get("stage") != stage:
                certificate_expiring.send(certificate_inventory, entry=entry)  # once a stage
        raised += 1
    log.info("certificate expiry sweep: %s alert(s) raised or kept", raised)
    return {"alerts": raised}
