"""ACME anti-replay nonces (RFC 8555 section 6.5): issued with every response, each accepted
once, by whichever web process receives it.

A nonce is a database row: using it deletes the row, and the DELETE's row count says whether
this request was the one that used it, so two processes (or two replays at once) cannot both
accept it. Nonces expire after NONCE_LIFETIME; issuing one prunes the expired ones (an indexed
DELETE), so the table holds only what clients may still send.
"""

import secrets
from datetime import timedelta

from django.utils import timezone

from .acme_models import AcmeNonce

NONCE_LIFETIME = timedelta(minutes=30)


def new_nonce() -> str:
    """A fresh nonce (128 random bits, base64url), stored until it is used or expires."""
    now = timezone.now()
    AcmeNonce.objects.filter(created_at__lt=now - NONCE_LIFETIME).delete()
    value = secrets.token_urlsafe(16)
    AcmeNonce.objects.create(value=value, created_at=now)
    return value


def use_nonce(value: str) -> bool:
    """True when `value` is a nonce we issued, not yet used and not expired; it is used now.

    Call it outside the request's transaction: a refused request has used its nonce too (a
    rolled-back DELETE would let the same request be replayed)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return False
    cutoff = timezone.now() - NONCE_LIFETIME
    deleted, _ = AcmeNonce.objects.filter(value=value, created_at__gte=cutoff).delete()
    return deleted == 1
