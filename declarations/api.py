"""Declarative Device Management's API: declarations (/api/v1/declarations/, by Identifier),
the data the portal serves for an asset, ACME / SCEP credentials, where each declaration stands
on each device, the sets (/api/v1/declaration-sets/, by id) with their declarations and
assignments, and one device's declarations (/api/v1/devices/<udid>/declarations/).

Views parse, call declarations.store, sets, assets and states (which validate, audit and queue
the DeclarativeManagement commands), and render. Roles as on the pages: every role reads; an
operator changes declarations, sets and assignments and serves plain data; an admin handles
credentials (assets.role_to_change). Served data is never in a response: its size and SHA-256.
"""

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from devices.groups import GroupError, find_devices
from devices.models import Device
from devices.selection import group_named
from mdm_portal.api import Conflict, PayloadTooLarge, refusal_status
from mdm_portal.api_base import LimitedJSONParser
from mdm_portal.roles import ADMIN, has_role

from .assets import DATA_TYPE, MAX_DATA_BYTES, role_to_change, serve_credential, serve_data
from .listing import DeclarationFilter, declarations_listed, sets_listed
from .manifest import sets_of
from .models import Declaration, DeclarationSet
from .schema import DeclarationError
from .serializers import (
    CredentialSerializer,
    DataJsonSerializer,
    DataUploadSerializer,
    DeclarationDetailSerializer,
    DeclarationDeviceStateSerializer,
    DeclarationSerializer,
    DeclarationSetDetailSerializer,
    DeclarationSetSerializer,
    DeclarationUpdateSerializer,
    DeclarationWriteSerializer,
    DeclarativeQueuedSerializer,
    DeviceDeclarationsSerializer,
    SetDeclarationsSerializer,
    SetTargetsSerializer,
    SetWriteSerializer,
)
from .sets import (
    add_declarations,
    assign,
    create_set,
    delete_set,
    remove_declarations,
    unassign,
    update_set,
)
from .states import STATES, counts, declaration_rows, device_rows, last_report
from .store import DeclarationInUse, delete_declaration, save_declaration

# What a view does not turn into a 400 naming a key itself (a bug's safety net).
refusal_status({DeclarationError: 400, DeclarationInUse: 409})

# Multipart framing around an uploaded file: a body this much over the data limit is refused
# before it is read.
MULTIPART_ALLOWANCE = 64 * 1024

IDENTIFIER = OpenApiParameter(
    "identifier", OpenApiTypes.STR, OpenApiParameter.PATH, description="the Identifier"
)
UDID = OpenApiParameter("udid", OpenApiTypes.STR, OpenApiParameter.PATH)
TAGS = ["declarations"]


@contextmanager
def refused(key: str | None = None) -> Iterator[None]:
    """A DeclarationError as a 400 whose message starts with the key it names (`key` when it
    names none); a declaration others reference, as a 409."""
    try:
        yield
    except DeclarationInUse as exc:
        raise Conflict(str(exc)) from None
    except DeclarationError as exc:
        name = exc.key or key
        raise ValidationError({name: [str(exc)]} if name else [str(exc)]) from None


def require_role_for(request, declaration_type) -> None:
    """403 unless the user may change a declaration of this Type (credentials: admins)."""
    role = role_to_change(declaration_type if isinstance(declaration_type, str) else "")
    if not has_role(request.user, role):
        raise PermissionDenied(f"this needs the {role} role: {declaration_type} is a credential")


def declaration_body(data) -> tuple[dict, str | None]:
    """The declaration a body gives (for store.save_declaration to check) and its note."""
    if not isinstance(data, dict):
        raise ValidationError(["the body must be a JSON object: Type, Identifier, Payload"])
    body = dict(data)
    description = body.pop("description", None)
    if description is not None and not isinstance(description, str):
        raise ValidationError({"description": ["must be a string"]})
    return body, description


def detail(declaration: Declaration, request) -> dict:
    fresh = get_object_or_404(declarations_listed().prefetch_related("sets"), pk=declaration.pk)
    return DeclarationDetailSerializer(fresh, context={"request": request}).data


@extend_schema_view(
    list=extend_schema(
        summary="Declarations, by Identifier, with the devices each fails on",
        tags=TAGS,
    ),
    retrieve=extend_schema(
        summary="One declaration as a device gets it, with its sets, served data (never its "
        "content) and the devices in each state",
        tags=TAGS,
        responses=DeclarationDetailSerializer,
    ),
    create=extend_schema(
        summary="Add a declaration (checked against Apple's declarative schema)",
        description="A 400's message starts with the key at fault (`Type`, `Identifier`, a "
        "Payload key such as `MinimumLength`). Credential Types (ACME, SCEP, user name and "
        "password, identity) need the admin role.",
        tags=TAGS,
        request=DeclarationWriteSerializer,
        responses={201: DeclarationDetailSerializer},
    ),
    update=extend_schema(
        summary="A new revision: the whole Payload (the Type cannot change)",
        description="Devices that have it are told (a DeclarativeManagement command each).",
        tags=TAGS,
        request=DeclarationUpdateSerializer,
        responses=DeclarationDetailSerializer,
    ),
    partial_update=extend_schema(
        summary="A new Payload or description (the rest stays)",
        tags=TAGS,
        request=DeclarationUpdateSerializer,
        responses=DeclarationDetailSerializer,
    ),
    destroy=extend_schema(
        summary="Delete a declaration nothing references (409 while one does)",
        description="Devices that had it are told to remove it.",
        tags=TAGS,
        responses={200: DeclarativeQueuedSerializer},
    ),
    data=extend_schema(
        summary="Serve data from the portal for an asset: create it, or give it new data",
        description="A multipart `file`, or base64 JSON with its `content_type`. The asset's "
        "Reference (DataURL, ContentType, Size, Hash-SHA-256) is the portal's; devices fetch "
        "the data with their identity. Credential documents (type "
        "com.apple.asset.credential.userpassword or .identity) need the admin role. 201 when "
        "the asset is new.",
        tags=TAGS,
        request={
            "multipart/form-data": DataUploadSerializer,
            "application/json": DataJsonSerializer,
        },
        responses={200: DeclarationDetailSerializer, 201: DeclarationDetailSerializer},
    ),
    credential=extend_schema(
        summary="An ACME or SCEP credential asset the portal makes per device (admins)",
        description="Each device that fetches it gets a document with a fresh one-time "
        "ClientIdentifier (ACME) or challenge (SCEP) for the portal's own CA. 201 when new.",
        tags=TAGS,
        request=CredentialSerializer,
        responses={200: DeclarationDetailSerializer, 201: DeclarationDetailSerializer},
    ),
)
class DeclarationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = declarations_listed()
    serializer_class = DeclarationSerializer
    filterset_class = DeclarationFilter
    cursor_ordering = "identifier"
    lookup_field = "identifier"
    lookup_value_regex = "[^/]+"
    roles = {"credential": ADMIN}

    def retrieve(self, request, identifier=None):
        return Response(detail(self.get_object(), request))

    def create(self, request):
        data, description = declaration_body(request.data)
        require_role_for(request, data.get("Type"))
        with refused():
            declaration, _ = save_declaration(
                data, by=request.user, description=description, create_only=True
            )
        return Response(detail(declaration, request), status=status.HTTP_201_CREATED)

    def update(self, request, identifier=None, partial: bool = False):
        declaration = self.get_object()
        require_role_for(request, declaration.type)
        data, description = declaration_body(request.data)
        if data.get("Identifier", declaration.identifier) != declaration.identifier:
            raise ValidationError(
                {"Identifier": [f"is {declaration.identifier} (the URL's): it cannot change"]}
            )
        data["Identifier"] = declaration.identifier
        if partial:
            data = {"Type": declaration.type, "Payload": declaration.payload, **data}
        with refused():
            save_declaration(data, by=request.user, description=description)
        return Response(detail(declaration, request))

    def partial_update(self, request, identifier=None):
        return self.update(request, identifier, partial=True)

    def destroy(self, request, identifier=None):
        declaration = self.get_object()
        require_role_for(request, declaration.type)
        with refused():
            queued = delete_declaration(declaration, by=request.user)
        return Response({"queued": queued})

    @action(
        detail=True, methods=["post"], parser_classes=[parsers.MultiPartParser, LimitedJSONParser]
    )
    def data(self, request, identifier=None):
        existing = Declaration.objects.filter(identifier=identifier).first()
        content, content_type, fields = self._data_of(request)
        declaration_type = fields.get("type") or (existing.type if existing else DATA_TYPE)
        require_role_for(request, declaration_type)
        with refused():
            declaration = serve_data(
                identifier,
                content,
                content_type,
                declaration_type=declaration_type,
                by=request.user,
                description=fields.get("description"),
            )
        code = status.HTTP_200_OK if existing else status.HTTP_201_CREATED
        return Response(detail(declaration, request), status=code)

    def _data_of(self, request) -> tuple[bytes, str, dict]:
        """The data, its media type and the other fields, from multipart or base64 JSON."""
        if request.content_type.startswith("multipart/"):
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > MAX_DATA_BYTES + MULTIPART_ALLOWANCE:  # refused before it is read
                raise PayloadTooLarge(f"the data is over the {MAX_DATA_BYTES}-byte limit")
            form = DataUploadSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            upload = form.validated_data["file"]
            if upload.size > MAX_DATA_BYTES:
                raise PayloadTooLarge(f"the data is over the {MAX_DATA_BYTES}-byte limit")
            content_type = form.validated_data.get("content_type") or upload.content_type
            return upload.read(), content_type or "", form.validated_data
        form = DataJsonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            content = base64.b64decode(form.validated_data["data_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError({"data_base64": ["not base64"]}) from None
        return content, form.validated_data["content_type"], form.validated_data

    @action(detail=True, methods=["post"])
    def credential(self, request, identifier=None):
        existing = Declaration.objects.filter(identifier=identifier).exists()
        form = CredentialSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with refused():
            declaration = serve_credential(
                identifier,
                data["source"],
                data["options"],
                by=request.user,
                description=data.get("description"),
            )
        code = status.HTTP_200_OK if existing else status.HTTP_201_CREATED
        return Response(detail(declaration, request), status=code)


class Rows(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


@extend_schema(
    summary="Where a declaration stands on each device (failed first)",
    tags=TAGS,
    parameters=[IDENTIFIER, OpenApiParameter("state", OpenApiTypes.STR, enum=list(STATES))],
    responses=DeclarationDeviceStateSerializer(many=True),
)
class DeclarationStatesView(APIView):
    pagination_class = Rows

    def get(self, request, identifier):
        rows = declaration_rows(get_object_or_404(Declaration, identifier=identifier))
        wanted = request.query_params.get("state")
        if wanted is not None:
            if wanted not in STATES:
                raise ValidationError({"state": [f"one of {', '.join(STATES)}"]})
            rows = [row for row in rows if row.state == wanted]
        page = Rows()
        chosen = page.paginate_queryset(rows, request, self)
        return page.get_paginated_response(DeclarationDeviceStateSerializer(chosen, many=True).data)


@extend_schema(
    summary="A device's declarations (what it should have and what it reports) and its last "
    "status report",
    tags=["devices"],
    parameters=[UDID],
    responses=DeviceDeclarationsSerializer,
)
class DeviceDeclarationsView(APIView):
    def get(self, request, udid):
        device = get_object_or_404(Device, udid=udid)
        rows = device_rows(device)
        sync = last_report(device)
        report = None
        if sync is not None and sync.last_report_at is not None:
            report = {
                "last_report_at": sync.last_report_at,
                "full": sync.last_report_full,
                "reports": sync.reports,
                "status_items": sync.status_items,
                "errors": (sync.last_report or {}).get("Errors", []),
            }
        body = {
            "udid": device.udid,
            "sets": [declaration_set.name for declaration_set in sets_of(device)],
            "declarations_token": (sync.token or None) if sync is not None else None,
            "last_sync_at": sync.last_sync_at if sync is not None else None,
            "states": counts(rows),
            "declarations": rows,
            "status": report,
        }
        return Response(DeviceDeclarationsSerializer(body).data)


# -- sets ----------------------------------------------------------------------------------------


SET_TAGS = ["declaration-sets"]
ASSIGN_HELP = (
    "Devices by UDID or serial number, groups by name or id. Refused (400, naming the device "
    "and why) when a device's platform or OS version cannot take one of the set's declarations."
)


@extend_schema_view(
    list=extend_schema(summary="Declaration sets", tags=SET_TAGS),
    retrieve=extend_schema(
        summary="One set: its declarations, devices and groups",
        tags=SET_TAGS,
        responses=DeclarationSetDetailSerializer,
    ),
    create=extend_schema(
        summary="Create a set",
        tags=SET_TAGS,
        request=SetWriteSerializer,
        responses={201: DeclarationSetDetailSerializer},
    ),
    update=extend_schema(
        summary="Rename a set and set its description",
        tags=SET_TAGS,
        request=SetWriteSerializer,
        responses=DeclarationSetDetailSerializer,
    ),
    partial_update=extend_schema(
        summary="Rename a set or change its description",
        tags=SET_TAGS,
        request=SetWriteSerializer,
        responses=DeclarationSetDetailSerializer,
    ),
    destroy=extend_schema(
        summary="Delete a set: its devices lose what nothing else gives them",
        tags=SET_TAGS,
        responses={200: DeclarativeQueuedSerializer},
    ),
    add_declarations=extend_schema(
        summary="Put declarations in the set; its devices are told",
        tags=SET_TAGS,
        request=SetDeclarationsSerializer,
        responses=DeclarativeQueuedSerializer,
    ),
    remove_declarations=extend_schema(
        summary="Take declarations out of the set; its devices are told",
        tags=SET_TAGS,
        request=SetDeclarationsSerializer,
        responses=DeclarativeQueuedSerializer,
    ),
    assign=extend_schema(
        summary="Give the set to devices and groups",
        description=ASSIGN_HELP,
        tags=SET_TAGS,
        request=SetTargetsSerializer,
        responses=DeclarativeQueuedSerializer,
    ),
    unassign=extend_schema(
        summary="Take the set from devices and groups",
        tags=SET_TAGS,
        request=SetTargetsSerializer,
        responses=DeclarativeQueuedSerializer,
    ),
)
class DeclarationSetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = sets_listed()
    serializer_class = DeclarationSetSerializer
    cursor_ordering = "name"

    def retrieve(self, request, pk=None):
        return Response(self._detail(self.get_object()))

    def create(self, request):
        form = SetWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with refused("name"):
            created = create_set(
                form.validated_data["name"],
                description=form.validated_data.get("description", ""),
                by=request.user,
            )
        return Response(self._detail(created), status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial: bool = False):
        declaration_set = self.get_object()
        form = SetWriteSerializer(data=request.data, partial=partial)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        description = data.get("description", None if partial else "")
        with refused("name"):
            update_set(
                declaration_set, name=data.get("name"), description=description, by=request.user
            )
        return Response(self._detail(declaration_set))

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    def destroy(self, request, pk=None):
        return Response({"queued": delete_set(self.get_object(), by=request.user)})

    @action(detail=True, methods=["post"], url_path="add-declarations")
    def add_declarations(self, request, pk=None):
        declaration_set = self.get_object()
        with refused():
            queued = add_declarations(declaration_set, self._declarations(request), by=request.user)
        return Response({"queued": queued})

    @action(detail=True, methods=["post"], url_path="remove-declarations")
    def remove_declarations(self, request, pk=None):
        declaration_set = self.get_object()
        queued = remove_declarations(declaration_set, self._declarations(request), by=request.user)
        return Response({"queued": queued})

    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        declaration_set = self.get_object()
        with refused():
            queued = assign(declaration_set, **self._targets(request), by=request.user)
        return Response({"queued": queued})

    @action(detail=True, methods=["post"])
    def unassign(self, request, pk=None):
        declaration_set = self.get_object()
        queued = unassign(declaration_set, **self._targets(request), by=request.user)
        return Response({"queued": queued})

    def _detail(self, declaration_set: DeclarationSet) -> dict:
        fresh = get_object_or_404(
            sets_listed().prefetch_related("devices", "groups"), pk=declaration_set.pk
        )
        return DeclarationSetDetailSerializer(fresh).data

    def _declarations(self, request) -> list[Declaration]:
        form = SetDeclarationsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        wanted = list(dict.fromkeys(form.validated_data["declarations"]))
        found = {d.identifier: d for d in Declaration.objects.filter(identifier__in=wanted)}
        unknown = [identifier for identifier in wanted if identifier not in found]
        if unknown:
            raise ValidationError(
                {"declarations": [f"no declaration with Identifier {', '.join(unknown[:10])}"]}
            )
        return [found[identifier] for identifier in wanted]

    def _targets(self, request) -> dict:
        form = SetTargetsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        devices = None
        if data["devices"]:
            try:
                devices = find_devices("\n".join(data["devices"]))
            except GroupError as exc:
                raise ValidationError({"devices": [str(exc)]}) from None
        groups = {reference: group_named(reference) for reference in data["groups"]}
        unknown = [reference for reference, group in groups.items() if group is None]
        if unknown:
            raise ValidationError({"groups": [f"no group {', '.join(unknown[:10])}"]})
        return {"devices": devices, "groups": list(dict.fromkeys(groups.values()))}
