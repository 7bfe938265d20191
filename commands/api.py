"""The commands' API: queue one command for a target in one request, read its progress and
every device's result, cancel what is still queued; a device's commands and pushes; a push
now. Everything goes through commands.queue, the catalog and commands.apns: the API adds no
protocol logic of its own."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from devices.models import Device
from devices.selection import SelectionError
from mdm_portal.api import Cursor, refusal_status
from mdm_portal.roles import OPERATOR

from .apns import push_now
from .catalog import CatalogError
from .history import device_result, recent_commands
from .models import Command, PushAttempt, QueuedCommand, Status
from .progress import progress_of
from .queue import EnqueueConflict, EnqueueError, EnqueueForbidden, cancel_queued, enqueue_json
from .serializers import (
    CanceledSerializer,
    CommandCreateSerializer,
    CommandDetailSerializer,
    CommandSerializer,
    HistoryEntrySerializer,
    PushAttemptSerializer,
    PushSummarySerializer,
    QueuedSerializer,
    TargetSerializer,
)
from .targets import TargetError, targets_from_json

refusal_status(
    {
        CatalogError: 400,
        SelectionError: 400,
        TargetError: 400,
        EnqueueError: 400,
        EnqueueForbidden: 403,
        EnqueueConflict: 409,
    }
)

UUID_PATH = OpenApiParameter("uuid", OpenApiTypes.STR, OpenApiParameter.PATH)
UDID_PATH = OpenApiParameter("udid", OpenApiTypes.STR, OpenApiParameter.PATH)


class DevicePage(Cursor):
    """A command's devices, in queue order."""

    ordering = "id"


@extend_schema_view(
    list=extend_schema(summary="Commands, newest first", tags=["commands"]),
    create=extend_schema(
        summary="Queue one command for devices, a group or a filter",
        description="The command is checked by the catalog and the devices' AccessRights "
        "and queued once for the whole target (one INSERT for any fleet size). EraseDevice, "
        "ClearPasscode (with a `reason`) and raw commands need the admin role. A device that "
        "is not managed, or whose push token APNs declared invalid, is a 409.",
        tags=["commands"],
        request=CommandCreateSerializer,
        responses={201: QueuedSerializer},
    ),
    retrieve=extend_schema(
        summary="A command's progress by status, and each device's status and result",
        tags=["commands"],
        parameters=[
            UUID_PATH,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="page of devices"),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="devices per page"),
        ],
        responses=CommandDetailSerializer,
    ),
    cancel=extend_schema(
        summary="Cancel what no device has been sent yet",
        tags=["commands"],
        parameters=[UUID_PATH],
        request=None,
        responses=CanceledSerializer,
    ),
)
class CommandViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Command.objects.all()
    serializer_class = CommandSerializer
    pagination_class = Cursor
    filterset_fields = ["request_type", "queued_by"]
    lookup_field = "uuid"
    lookup_value_regex = "[^/]+"

    def create(self, request):
        form = CommandCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        targets = targets_from_json(**form.target())
        command = enqueue_json(
            targets.devices,
            data["request_type"],
            data["payload"],
            user=request.user,
            raw=data["raw"],
            reason=data["reason"],
            drop_disallowed_queries=data["drop_disallowed_queries"],
            options={"sign": data["sign"], "encrypt": data["encrypt"]},
        )
        body = {
            "command_uuid": command.uuid,
            "request_type": command.request_type,
            "devices": command.device_count,
            "left_out": targets.left_out,
        }
        location = request.build_absolute_uri(f"/api/v1/commands/{command.uuid}/")
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    def retrieve(self, request, uuid=None):
        command = self.get_object()
        rows = QueuedCommand.objects.filter(command=command).select_related("device")
        page = DevicePage()
        results = [
            device_result(row, redact=True) for row in page.paginate_queryset(rows, request, self)
        ]
        body = {
            **CommandSerializer(command).data,
            "progress": {
                **dict.fromkeys(Status.values, 0),
                **progress_of([command])[command.pk].counts,
            },
            "next": page.get_next_link(),
            "previous": page.get_previous_link(),
            "results": results,
        }
        return Response(body)

    @action(detail=True, methods=["post"], url_path="cancel")
    def cancel(self, request, uuid=None):
        command = self.get_object()
        return Response({"canceled": cancel_queued(command, by=request.user)})


def _device(udid: str) -> Device:
    return get_object_or_404(Device, udid=udid)


@extend_schema(
    summary="A device's latest commands (the live queue, then the archive)",
    tags=["devices"],
    parameters=[
        UDID_PATH,
        OpenApiParameter("limit", OpenApiTypes.INT, description="how many (1-1000, 100)"),
    ],
    responses=HistoryEntrySerializer(many=True),
)
class DeviceCommandsView(APIView):
    def get(self, request, udid):
        device = _device(udid)
        try:
            limit = int(request.query_params.get("limit", 100))
        except ValueError:
            raise ValidationError({"limit": ["a number from 1 to 1000"]}) from None
        if not 1 <= limit <= 1000:
            raise ValidationError({"limit": ["a number from 1 to 1000"]})
        return Response(recent_commands(device, limit, redact=True))


@extend_schema_view(
    list=extend_schema(
        summary="A device's pushes, newest first", tags=["devices"], parameters=[UDID_PATH]
    )
)
class DevicePushesViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = PushAttemptSerializer
    pagination_class = Cursor
    queryset = PushAttempt.objects.none()

    def get_queryset(self):
        return PushAttempt.objects.filter(device=_device(self.kwargs["udid"]))


@extend_schema(
    summary="Push chosen devices now (wake them to poll)",
    tags=["commands"],
    request=TargetSerializer,
    responses=PushSummarySerializer,
)
class PushView(APIView):
    roles = {"post": OPERATOR}

    def post(self, request):
        form = TargetSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        summary = push_now(targets_from_json(**form.target()).devices, actor=request.user)
        results = [
            {"udid": udid, "status": status_code, "reason": reason}
            for udid, status_code, reason in summary.results
        ]
        body = {
            "sent": summary.sent,
            "ok": summary.ok,
            "invalid_tokens": summary.invalid_tokens,
            "failed": summary.failed,
            "not_attempted": summary.not_attempted,
            "skipped": summary.skipped,
            "reason": summary.reason,
            "results": results,
        }
        return Response(body)
