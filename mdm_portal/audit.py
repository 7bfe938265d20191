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
