"""Writing audit entries. One function, so every sensitive action is recorded the same way."""

from typing import Any

from .models import AuditEntry


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
    user = actor if hasattr(actor, "get_username") else None
    name = user.get_username() if user is not None else str(actor)
    return AuditEntry.objects.create(
        user=user,
        actor=name,
        action=action,
        target=str(target)[:255],
        address=address or None,
        details=details,
    )


def client_address(request) -> str | None:
    """The address a staff request came from (REMOTE_ADDR: the proxy sets it to the client)."""
    return request.META.get("REMOTE_ADDR") or None
