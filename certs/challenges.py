"""One-time enrollment secrets: SCEP challenge passwords (plus an optional static one) and ACME
ClientIdentifiers; expiring, stored hashed, each accepted only by the protocol it was made for."""

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


def issue_challenge(ttl: timedelta | None = None) -> str:
    """A fresh one-time challenge for nothing in particular (see create_challenge)."""
    return create_challenge(ttl)[0]


def create_challenge(
    ttl: timedelta | None = None,
    *,
    purpose: str = ScepChallenge.Purpose.SCEP,
    attestation_required: bool = True,
) -> tuple[str, ScepChallenge]:
    """A fresh one-time secret: the text (returned once, in clear) and its record, which
    stores only its hash. `purpose` says which protocol takes it (a SCEP challenge, an ACME
    ClientIdentifier; `attestation_required` for the latter). What it is for (an enrollment, a
    device's renewal) the caller records against the record; the certificate issued for it is
    announced with it."""
    challenge = secrets.token_urlsafe(24)
    ttl = ttl or timedelta(hours=settings.MDM_SCEP_CHALLENGE_TTL_HOURS)
    record = ScepChallenge.objects.create(
        challenge_sha256=_hash(challenge),
        expires_at=timezone.now() + ttl,
        purpose=purpose,
        attestation_required=attestation_required,
    )
    return challenge, record


def consume_challenge(
    challenge: str, *, purpose: str = ScepChallenge.Purpose.SCEP
) -> tuple[bool, ScepChallenge | None]:
    """Check a challenge and use it up. Returns (accepted, the one-time challenge or None).

    The static challenge (MDM_SCEP_STATIC_CHALLENGE) is accepted, for SCEP only, without being
    used up. A one-time challenge is accepted once, before it expires, and only by the protocol
    it was made for; the update is conditional, so two requests racing with the same challenge
    cannot both succeed.
    """
    if not challenge:
        return False, None
    static = settings.MDM_SCEP_STATIC_CHALLENGE
    scep = purpose == ScepChallenge.Purpose.SCEP
    if scep and static and hmac.compare_digest(static.encode(), challenge.encode()):
        return True, None
    now = timezone.now()
    with transaction.atomic():
        record = ScepChallenge.objects.filter(
            challenge_sha256=_hash(challenge), purpose=purpose
        ).first()
        if record is None:
            return False, None
        used = ScepChallenge.objects.filter(
            pk=record.pk, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        return bool(used), record
