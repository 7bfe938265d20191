"""API tokens: created for a user, shown once, stored as a SHA-256, revoked by an admin.

A key is `mdm_` and 36 random URL-safe characters (40 in all); its first 12 characters are kept
in clear as its prefix, to find the token in one indexed lookup and to name it in lists. The
hash of the presented key is compared with the stored one in constant time. A token carries its
user's role (`mdm_portal.roles`): nothing is granted to the token itself. A revoked token or an
inactive user authenticates nobody (401).
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions

from .audit import audit, client_address, note_in_scope
from .models import ApiToken

KEY_PREFIX = "mdm_"
PREFIX_LENGTH = 12
# last_used_at is written at most this often per token: not one UPDATE per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token that cannot be created or revoked; the message says why."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(27)  # 36 characters


def create_token(user, name: str, *, actor, address: str | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it and its key, which is never shown again."""
    name = (name or "").strip() or "api"
    if not user.is_active:
        raise TokenError(f"user {user.get_username()} is inactive")
    key = new_key()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name[:100],
            prefix=key[:PREFIX_LENGTH],
            key_sha256=hash_key(key),
            created_by=_name(actor)[:150],
        )
        audit(
            "api_token.created",
            actor=actor,
            target=token.name,
            address=address,
            owner=user.get_username(),
            prefix=token.prefix,
        )
    return token, key


def revoke_token(token: ApiToken, *, actor, address: str | None = None) -> ApiToken:
    """Revoke `token` (kept for the record); refuses one already revoked."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            raise TokenError(f"token {token.name} ({token.prefix}) is already revoked")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit(
            "api_token.revoked",
            actor=actor,
            target=token.name,
            address=address,
            owner=token.user.get_username(),
            prefix=token.prefix,
        )
    return token


def find_token(key: str) -> ApiToken | None:
    """The live token whose key this is, or None (unknown, revoked, or an inactive user)."""
    if not key.startswith(KEY_PREFIX) or len(key) < PREFIX_LENGTH:
        return None
    digest = hash_key(key)
    for token in ApiToken.objects.select_related("user").filter(prefix=key[:PREFIX_LENGTH]):
        if hmac.compare_digest(token.key_sha256, digest):
            if token.revoked_at is not None or not token.user.is_active:
                return None
            return token
    return None


def touch(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def _name(actor) -> str:
    return actor.get_username() if hasattr(actor, "get_username") else str(actor)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>`. Without the header the next authenticator (the browser's
    session) is tried; a bad, revoked or inactive user's key is a 401 with
    `WWW-Authenticate: Token`. Audit entries of the request name the token."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be: Token <key>")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        token = find_token(key)
        if token is None:
            raise exceptions.AuthenticationFailed("invalid, revoked or inactive user's token")
        touch(token)
        note_in_scope(address=client_address(request), token=token.name)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiSessionAuthentication(authentication.SessionAuthentication):
    """The browser's session (the docs page, the UI's scripts), with CSRF on writes; its
    audit entries carry the client's address like the token's."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            note_in_scope(address=client_address(request))
        return result
