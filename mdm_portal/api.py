"""What every endpoint of the REST API (`/api/v1/`) shares: the role rule, errors as JSON,
cursor pagination, the body-size limit; and the base's own endpoints (audit log, alerts).

Errors are always `{"error": "<message>", "detail": <more or null>}` with the status that
says what went wrong: 400 bad input (the message names the key), 401 no or bad token
(`WWW-Authenticate: Token`), 403 the role does not allow it, 404, 409 the state conflicts
(a device APNs declared unreachable, a profile already assigned ...), 413 a body too large.
The apps' own refusals (EnqueueError, LibraryError ...) keep their message; each app's api.py
tells `refusal_status` which status each of its exception classes means.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, viewsets
from rest_framework.views import exception_handler as drf_exception_handler

from .api_base import Conflict, Cursor, PayloadTooLarge, RolePermission, required_role
from .models import Alert, AuditEntry
from .serializers import AlertSerializer, AuditEntrySerializer
from .ui import AuditFilter

# -- errors --------------------------------------------------------------------------------------


_REFUSALS: dict[type, int] = {}


def refusal_status(statuses: dict[type[Exception], int]) -> None:
    """Declare the HTTP status of an app's own exception classes (subclasses inherit it)."""
    _REFUSALS.update(statuses)


def _as_api_exception(exc: Exception) -> Exception:
    for cls in type(exc).__mro__:
        code = _REFUSALS.get(cls)
        if code is not None:
            error = exceptions.APIException(str(exc))
            error.status_code = code
            return error
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(str(exc) or PayloadTooLarge.default_detail)
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or "not found")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    return exc


def first_message(detail, path: str = "") -> str:
    """The first message of a DRF error detail, prefixed by the key it is about."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value:
                name = path if key == "non_field_errors" else f"{path}.{key}" if path else str(key)
                return first_message(value, name)
        return path or "invalid input"
    if isinstance(detail, list):
        for item in detail:
            if item:
                return first_message(item, path)
        return path or "invalid input"
    return f"{path}: {detail}" if path else str(detail)


def exception_handler(exc, context):
    """DRF's handler, with the apps' refusals mapped and every error in one JSON shape."""
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        body = {"error": first_message(data), "detail": data}
    elif isinstance(data, dict) and set(data) == {"detail"}:
        body = {"error": str(data["detail"]), "detail": None}
    else:
        body = {"error": first_message(data), "detail": data}
    response.data = body
    return response


__all__ = [
    "Conflict",
    "Cursor",
    "PayloadTooLarge",
    "RolePermission",
    "exception_handler",
    "refusal_status",
    "required_role",
]


# -- the base's endpoints ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="The audit log, newest first", tags=["audit"]),
    retrieve=extend_schema(summary="One audit entry", tags=["audit"]),
)
class AuditViewSet(viewsets.ReadOnlyModelViewSet):
    """Every sensitive action: who (and with which API token), from where, on what."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditFilter
    pagination_class = Cursor
    cursor_ordering = "-id"


@extend_schema_view(list=extend_schema(summary="Open alerts, newest first", tags=["alerts"]))
class AlertViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """What an admin must see: a push certificate APNs refuses, a webhook that gave up ..."""

    queryset = Alert.objects.filter(resolved_at=None)
    serializer_class = AlertSerializer
    pagination_class = Cursor
