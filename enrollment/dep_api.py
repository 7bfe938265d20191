"""The Automated Device Enrollment API (/api/v1/dep/): DEP servers (add one, download the
certificate for ABM, upload its server token, sync now, disown devices), DEP devices (the
device page's filters) and DEP profiles (create, update, assign). Views parse, call the
functions the pages and `mdm_dep` call (enrollment.dep_tokens, dep_sync, dep_profiles,
dep_client), and render.

Roles as on the pages: every role reads; an operator syncs and assigns; an admin adds servers,
uploads tokens, creates and edits profiles and disowns. No response carries a secret
(dep_serializers names every field). A failure at Apple is a 502 with Apple's message.
"""

import base64
import binascii
import contextlib

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, parsers, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from mdm_portal.api import refusal_status
from mdm_portal.api_base import LimitedJSONParser
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER

from .dep_client import DepError
from .dep_listing import (
    PROFILE_STATUSES,
    DepDeviceFilter,
    dep_devices,
    dep_servers,
    serials_problem,
)
from .dep_models import DepProfile, DepServer
from .dep_profiles import DepProfileError, assign_profile, save_profile, set_auto_assign
from .dep_serializers import (
    DepDeviceSerializer,
    DepProfileSerializer,
    DepProfileWriteSerializer,
    DepServerCreatedSerializer,
    DepServerCreateSerializer,
    DepServerSerializer,
    DepTokenJsonSerializer,
    DepTokenUploadSerializer,
    PerSerialSerializer,
    SerialsSerializer,
    SyncOutcomeSerializer,
    profile_values,
)
from .dep_sync import disown_devices, refresh_account, sync_server
from .dep_tokens import DepTokenError, create_server, import_token, token_certificate_pem

# Apple's answer is not the client's fault, nor the portal's: a bad gateway, with its words.
refusal_status({DepTokenError: 400, DepProfileError: 400, DepError: 502})


class AppleErrorSerializer(serializers.Serializer):
    error = serializers.CharField(
        help_text="what Apple's DEP API answered, or why it was not reached"
    )
    detail = serializers.JSONField(allow_null=True)


APPLE_FAILED = OpenApiResponse(
    AppleErrorSerializer, description="Apple's DEP API refused or could not be reached"
)


class PemRenderer(renderers.BaseRenderer):
    """Lets a client ask for the certificate with Accept: application/x-pem-file (the action
    answers the file itself); errors are JSON still."""

    media_type = "application/x-pem-file"
    format = "pem"
    charset = "us-ascii"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str | bytes):
            return data
        return renderers.JSONRenderer().render(data)


@extend_schema_view(
    list=extend_schema(summary="DEP servers, with token expiry and the last sync", tags=["dep"]),
    retrieve=extend_schema(summary="One DEP server (never its secrets)", tags=["dep"]),
    create=extend_schema(
        summary="Add a DEP server: the portal makes its key and the certificate for ABM",
        tags=["dep"],
        request=DepServerCreateSerializer,
        responses={201: DepServerCreatedSerializer},
    ),
    certificate=extend_schema(
        summary="The certificate to upload to Apple Business Manager (PEM)",
        tags=["dep"],
        responses={(200, "application/x-pem-file"): OpenApiTypes.STR},
    ),
    token=extend_schema(
        summary="Import the server token (.p7m) from ABM; again to renew it, same server",
        tags=["dep"],
        request={
            "multipart/form-data": DepTokenUploadSerializer,
            "application/json": DepTokenJsonSerializer,
        },
        responses=DepServerSerializer,
    ),
    sync=extend_schema(
        summary="Sync now: fetch the devices Apple added, changed or removed since the last sync",
        description="`ok: false` with Apple's message when the sync failed (recorded on the "
        "server as `last_sync_ok` / `last_sync_result`).",
        tags=["dep"],
        request=None,
        responses=SyncOutcomeSerializer,
    ),
    disown=extend_schema(
        summary="Disown devices: Apple removes them from the organization for good (admins)",
        tags=["dep"],
        request=SerialsSerializer,
        responses={200: PerSerialSerializer, 502: APPLE_FAILED},
    ),
)
class DepServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = dep_servers()
    serializer_class = DepServerSerializer
    cursor_ordering = "id"
    roles = {
        "create": ADMIN,
        "token": ADMIN,
        "disown": ADMIN,
        "sync": OPERATOR,
        "certificate": VIEWER,
    }

    def create(self, request):
        form = DepServerCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:  # its checks (a name, not taken) say what is wrong with the name
            server = create_server(form.validated_data["name"], actor=request.user)
        except DepTokenError as exc:
            raise ValidationError({"name": [str(exc)]}) from None
        server = get_object_or_404(dep_servers(), pk=server.pk)
        body = {
            **DepServerSerializer(server).data,
            "certificate_pem": token_certificate_pem(server),
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, PemRenderer])
    def certificate(self, request, pk=None):
        server = self.get_object()
        # The file itself, as the page's download (a Django response: DRF sends it as is).
        response = HttpResponse(token_certificate_pem(server), content_type=PemRenderer.media_type)
        name = slugify(server.name) or f"server-{server.pk}"
        response["Content-Disposition"] = f'attachment; filename="dep-{name}.pem"'
        return response

    @action(
        detail=True,
        methods=["post"],
        parser_classes=[parsers.MultiPartParser, LimitedJSONParser],
    )
    def token(self, request, pk=None):
        server = import_token(self.get_object(), self._token_bytes(request), actor=request.user)
        # Apple's names for the server and the organization; if Apple cannot be read now, the
        # token is imported all the same and the next sync says what is wrong.
        with contextlib.suppress(DepError):
            refresh_account(server, actor=request.user)
        return Response(DepServerSerializer(get_object_or_404(dep_servers(), pk=server.pk)).data)

    def _token_bytes(self, request) -> bytes:
        """The .p7m as a multipart `file`, or base64 in JSON `token_base64`."""
        if request.content_type.startswith("multipart/"):
            form = DepTokenUploadSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            return form.validated_data["file"].read()
        form = DepTokenJsonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            return base64.b64decode(form.validated_data["token_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError({"token_base64": ["not base64"]}) from None

    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        server = self.get_object()
        outcome = sync_server(server, actor=request.user)
        body = {
            "ok": outcome.ok,
            "added": outcome.added,
            "modified": outcome.modified,
            "deleted": outcome.deleted,
            "message": outcome.message or "",
            "server": DepServerSerializer(get_object_or_404(dep_servers(), pk=server.pk)).data,
        }
        return Response(body)

    @action(detail=True, methods=["post"])
    def disown(self, request, pk=None):
        server = self.get_object()
        form = SerialsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        serials = _serials_of(form.validated_data["serials"], server)
        return Response({"results": disown_devices(server, serials, actor=request.user)})


def _serials_of(serials: list[str], server: DepServer) -> list[str]:
    """The serials, once each, which must be DEP devices of `server` (a 400 says which not)."""
    wanted = list(dict.fromkeys(serials))
    problem = serials_problem(wanted, server)
    if problem:
        raise ValidationError({"serials": [problem]})
    return wanted


@extend_schema_view(
    list=extend_schema(
        summary="DEP devices as the last sync saw them, with whether they are enrolled here",
        tags=["dep"],
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description="serial, model or description"),
            OpenApiParameter(
                "profile_status", OpenApiTypes.STR, enum=[*PROFILE_STATUSES, "unassigned"]
            ),
        ],
    ),
    retrieve=extend_schema(summary="One DEP device, by serial number", tags=["dep"]),
)
class DepDeviceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = dep_devices()
    serializer_class = DepDeviceSerializer
    filterset_class = DepDeviceFilter
    lookup_field = "serial_number"
    lookup_url_kwarg = "serial"
    lookup_value_regex = "[^/]+"
    cursor_ordering = "id"


@extend_schema_view(
    list=extend_schema(summary="DEP profiles", tags=["dep"]),
    retrieve=extend_schema(summary="One DEP profile", tags=["dep"]),
    create=extend_schema(
        summary="Create a DEP profile and define it with Apple (admins)",
        tags=["dep"],
        request=DepProfileWriteSerializer,
        responses={201: DepProfileSerializer, 502: APPLE_FAILED},
    ),
    update=extend_schema(
        summary="Change a DEP profile and define it again with Apple (admins)",
        tags=["dep"],
        request=DepProfileWriteSerializer,
        responses={200: DepProfileSerializer, 502: APPLE_FAILED},
    ),
    partial_update=extend_schema(
        summary="Change some of a DEP profile's settings (the rest stay) (admins)",
        tags=["dep"],
        request=DepProfileWriteSerializer,
        responses={200: DepProfileSerializer, 502: APPLE_FAILED},
    ),
    assign=extend_schema(
        summary="Assign the profile to devices of its server: Apple's answer per serial",
        tags=["dep"],
        request=SerialsSerializer,
        responses={200: PerSerialSerializer, 502: APPLE_FAILED},
    ),
)
class DepProfileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = DepProfile.objects.select_related("server", "enrollment")
    serializer_class = DepProfileSerializer
    cursor_ordering = "id"
    roles = {
        "create": ADMIN,
        "update": ADMIN,
        "partial_update": ADMIN,
        "assign": OPERATOR,
    }

    def create(self, request):
        form = DepProfileWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        profile = self._save(form, None)
        return Response(DepProfileSerializer(profile).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial: bool = False):
        profile = self.get_object()
        data = {**profile_values(profile), **request.data} if partial else request.data
        form = DepProfileWriteSerializer(profile, data=data)
        form.is_valid(raise_exception=True)
        return Response(DepProfileSerializer(self._save(form, profile)).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    def _save(self, form: DepProfileWriteSerializer, profile: DepProfile | None) -> DepProfile:
        data = form.validated_data
        server = data["server"]
        saved = save_profile(
            server,
            name=data["name"],
            enrollment=data["enrollment"],
            settings=form.settings(),
            actor=self.request.user,
            profile=profile,
        )
        if "auto_assign" in data:
            server.refresh_from_db(fields=["auto_assign_profile"])
            is_auto = server.auto_assign_profile_id == saved.pk
            if data["auto_assign"] != is_auto:
                set_auto_assign(
                    server, saved if data["auto_assign"] else None, actor=self.request.user
                )
        return DepProfile.objects.select_related("server", "enrollment").get(pk=saved.pk)

    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        profile = self.get_object()
        form = SerialsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        serials = _serials_of(form.validated_data["serials"], profile.server)
        return Response({"results": assign_profile(profile, serials, actor=request.user)})
