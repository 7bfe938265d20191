"""SCEP challenge passwords: one-time, expiring, stored hashed; plus an optional static one."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ScepChallenge


def _hash(challenge: str) -> str:
    return hashlib.sha256(challenge.encode()).hexdigest()


def issue_challenge(enrollment=None, ttl: timedelta | None = None, device=None) -> str:
    """A fresh one-time challenge (returned once, in clear); only its hash is stored.

    With `device` (a renewal profile sent to that device, encrypted to its identity), the
    certificate issued for the challenge binds to that device.
    """
    challenge = secrets.token_urlsafe(24)
    ttl = ttl or timedelta(hours=settings.MDM_SCEP_CHALLENGE_TTL_HOURS)
    ScepChallenge.objects.create(
        challenge_sha256=_hash(challenge),
        enrollment=enrollment,
        device=device,
        expires_at=timezone.now() + ttl,
    )
    return challenge


def consume_challenge(challenge: str) -> tuple[bool, ScepChallenge | None]:
    """Check a challenge and use it up. Returns (accepted, the one-time challenge or None).

    The static challenge (MDM_SCEP_STATIC_CHALLENGE) is accepted without being used up.
    A one-time challenge is accepted once, before it expires; the update is conditional, so
    two requests racing with the same challenge cannot both succeed.
    """
    if not challenge:
        return False, None
    static = settings.MDM_SCEP_STATIC_CHALLENGE
    if static and hmac.compare_digest(static.encode(), challenge.encode()):
        return True, None
    now = timezone.now()
    with transaction.atomic():
        record = ScepChallenge.objects.filter(challenge_sha256=_hash(challenge)).first()
        if record is None:
            return False, None
        used = ScepChallenge.objects.filter(
            pk=record.pk, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        return bool(used), record
