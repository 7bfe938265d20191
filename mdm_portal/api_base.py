"""The parts of the API that DRF's own settings name (the role permission, the pagination,
the JSON parser)
and the errors they raise: kept apart from mdm_portal.api, which imports rest_framework.views,
which reads those settings while it loads."""

from django.conf import settings
from rest_framework import exceptions, parsers, permissions, status
from rest_framework.pagination import CursorPagination

from .roles import OPERATOR, VIEWER, has_role


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the request conflicts with the current state"
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the request body is too large"
    default_code = "too_large"


# -- the role rule -------------------------------------------------------------------------------


def required_role(request, view) -> str:
    """The role an endpoint needs: `view.roles[action]`, else viewer to read, operator to
    write (the UI's rule: viewers read, operators act, admins handle what is dangerous)."""
    action = getattr(view, "action", None) or request.method.lower()
    roles = getattr(view, "roles", {})
    if action in roles:
        return roles[action]
    return VIEWER if request.method in permissions.SAFE_METHODS else OPERATOR


class RolePermission(permissions.BasePermission):
    """The user (the token's owner, or the session's) has the endpoint's role or a higher one."""

    def has_permission(self, request, view) -> bool:
        role = required_role(request, view)
        self.message = f"this needs the {role} role"
        return has_role(request.user, role)


# -- pagination (every list) -----------------------------------------------------------------------


class Cursor(CursorPagination):
    """Cursor pagination on an indexed, unique ordering (the view's `ordering`, default -id)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "cursor_ordering", self.ordering)
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)


# -- bodies --------------------------------------------------------------------------------------


class LimitedJSONParser(parsers.JSONParser):
    """JSON bodies up to MDM_API_MAX_BODY_BYTES; a larger one is a 413 before it is read."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        if request is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.MDM_API_MAX_BODY_BYTES
            if length > limit:
                raise PayloadTooLarge(f"the body is over the {limit}-byte limit")
        return super().parse(stream, media_type, parser_context)
