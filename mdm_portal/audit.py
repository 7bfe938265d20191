"""Writing audit entries. One function, so every sensitive action is recorded the same way.

An API request opens an audit scope (`AuditScopeMiddleware`, filled by the API's
authentication): every entry written while it is handled also carries the client's address and
the name of the API token that made the request, whichever service function writes it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .models import AuditEntry

# What the current request adds to each entry: {"address": ..., "details": {...}}.
_scope: ContextVar[dict | None] = ContextVar("mdm_audit_scope", default=None)


def audit(
    action: str,
    *,
    actor: Any = "system",
    target: str = "",
    address: str | None = None,
    **details: Any,
) -> AuditEntry:
    """Record `action` by `actor` (a User or a name) on `target` with JSON-serialisable details.

    `address` is the client's IP address when a person acted through the UI or the API.
    """
    scope = _scope.get()
    if scope:
        details = {**scope["details"], **details}
        address = address or scope["address"]
    return AuditEntry.objects.create(
        user=actor_user(actor),
        actor=actor_name(actor),
        action=action,
        target=str(target)[:255],
        address=address or None,
        details=details,
    )


def actor_user(actor: Any):
    """The User who acts, or None when `actor` is a name (a tool, the system)."""
    return actor if hasattr(actor, "get_username") else None


def actor_name(actor: Any) -> str:
    """The name recorded for `actor`: a User's username, or the name itself."""
    return actor.get_username() if hasattr(actor, "get_username") else str(actor)


def client_address(request) -> str | None:
    """The address a staff request came from (REMOTE_ADDR: the proxy sets it to the client)."""
    return request.META.get("REMOTE_ADDR") or None


@contextmanager
def audit_scope() -> Iterator[dict]:
    """A fresh scope for one request; nothing of it outlives the request."""
    token = _scope.set({"address": None, "details": {}})
    try:
        yield _scope.get()
    finally:
        _scope.reset(token)


def note_in_scope(*, address: str | None = None, **details: Any) -> None:
    """Add the request's address and details (e.g. token=<name>) to every entry it writes.

    Outside a scope (a management command, a Celery task) it does nothing.
    """
    scope = _scope.get()
    if scope is None:
        return
    if address:
        scope["address"] = address
    scope["details"].update(details)


class AuditScopeMiddleware:
    """Opens an audit scope around every request (the API's authentication fills it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with audit_scope():
            return self.get_response(request)
