"""Writing audit entries. One function, so every sensitive action is recorded the same way."""

from typing import Any

from .models import AuditEntry


def audit(action: str, *, actor: Any = "system", target: str = "", **details: Any) -> AuditEntry:
    """Record `action` by `actor` (a User or a name) on `target` with JSON-serialisable details."""
    user = actor if hasattr(actor, "get_username") else None
    name = user.get_username() if user is not None else str(actor)
    return AuditEntry.objects.create(
        user=user, actor=name, action=action, target=str(target)[:255], details=details
    )
