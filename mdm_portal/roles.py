"""The three staff roles, as Django groups: `viewer` reads everything except secrets,
`operator` also sends ordinary commands and manages profiles, enrollments and groups, `admin`
also handles certificates, EraseDevice, ClearPasscode, raw commands, users and API tokens.

Roles are ranked: each includes the ones below it. A superuser is an admin. A user in no role
group may log in but sees nothing. Every view and action checks the role on the server
(`role_required`); templates hide what the role may not use (`role_context`).
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)  # lowest first
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}


def role_of(user) -> str | None:
    """The highest role of `user`, or None (anonymous, inactive, or in no role group)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_mdm_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    role = max(names, key=_RANK.__getitem__, default=None)
    user._mdm_role = role
    return role


def has_role(user, role: str) -> bool:
    """Whether `user` has `role` or a higher one."""
    current = role_of(user)
    return current is not None and _RANK[current] >= _RANK[role]


def set_role(user, role: str) -> None:
    """Make `role` the user's only role group."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.__dict__.pop("_mdm_role", None)


def role_required(role: str):
    """View decorator: log in first, then `role` or higher, else 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"this needs the {role} role")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def role_context(request) -> dict:
    """Template context: the user's role and what it allows, to show only usable buttons."""
    user = getattr(request, "user", None)
    return {
        "role": role_of(user),
        "can_view": has_role(user, VIEWER),
        "can_operate": has_role(user, OPERATOR),
        "can_admin": has_role(user, ADMIN),
    }
