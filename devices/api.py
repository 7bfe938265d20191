"""The devices' API: the fleet (filters, search, cursor pages), one device with its
inventory, renaming and regrouping it, and the groups. Views only parse, call devices.*,
commands.rename and enrollment.membership (a group change keeps the profile library
consistent, as on the group pages), and render."""

from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from commands.queue import EnqueueConflict, EnqueueError, EnqueueForbidden
from commands.rename import rename_device
from enrollment.membership import add_to_group, delete_group, remove_from_group
from mdm_portal.api import Cursor, refusal_status

from .groups import GroupError, GroupExists, create_group, rename_group
from .models import Device, DeviceGroup
from .selection import (
    PLATFORMS,
    SEEN,
    SelectionError,
    devices_matching,
    group_by_name,
    group_named,
)
from .serializers import (
    DeviceDetailSerializer,
    DeviceListSerializer,
    DevicePatchResultSerializer,
    DevicePatchSerializer,
    GroupSerializer,
)

refusal_status(
    {
        SelectionError: 400,
        GroupError: 400,
        GroupExists: 409,
        EnqueueError: 400,
        EnqueueForbidden: 403,
        EnqueueConflict: 409,
    }
)


@extend_schema_view(
    list=extend_schema(
        summary="The fleet: filter, search, and page with the cursor",
        tags=["devices"],
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description="name, serial, UDID or model"),
            OpenApiParameter("state", OpenApiTypes.STR, enum=Device.State.values),
            OpenApiParameter("group", OpenApiTypes.STR, description="group id or name, none"),
            OpenApiParameter("platform", OpenApiTypes.STR, enum=list(PLATFORMS)),
            OpenApiParameter("os_version", OpenApiTypes.STR, description="17 matches 17.4.1"),
            OpenApiParameter("seen", OpenApiTypes.STR, enum=sorted(SEEN)),
        ],
    ),
    retrieve=extend_schema(
        summary="One device, with its inventory",
        tags=["devices"],
        responses=DeviceDetailSerializer,
    ),
    partial_update=extend_schema(
        summary="Rename a device (a Settings command) or change its group",
        tags=["devices"],
        request=DevicePatchSerializer,
        responses=DevicePatchResultSerializer,
    ),
)
class DeviceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Device.objects.select_related("group")
    serializer_class = DeviceListSerializer
    filter_backends = []  # the device list's own filter: devices.selection
    pagination_class = Cursor
    cursor_ordering = "udid"
    lookup_field = "udid"
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        if self.action != "list":
            return super().get_queryset()
        params = group_by_name(self.request.query_params)
        return devices_matching(params).select_related("group")

    def retrieve(self, request, udid=None):
        device = self._device(udid)
        return Response(DeviceDetailSerializer(device).data)

    def partial_update(self, request, udid=None):
        device = self._device(udid)
        change = DevicePatchSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        data = change.validated_data
        queued = []
        with transaction.atomic():
            if "group" in data:
                self._regroup(device, data["group"], request.user)
            if "name" in data:
                commands = rename_device(device, data["name"], user=request.user)
                queued = [command.uuid for command in commands]
        device = self._device(udid)
        result = DevicePatchResultSerializer(device, context={"queued_commands": queued})
        return Response(result.data)

    def _regroup(self, device: Device, reference, user) -> None:
        """As the group pages do: the library follows (profiles installed or removed)."""
        this = Device.objects.filter(pk=device.pk)
        if reference in (None, ""):
            if device.group is not None:
                remove_from_group(device.group, this, by=user)
            return
        group = group_named(reference)
        if group is None:
            raise ValidationError({"group": [f"no group {reference!r}"]})
        add_to_group(group, this, by=user)

    def _device(self, udid) -> Device:
        return get_object_or_404(
            Device.objects.select_related("group").prefetch_related("reports"), udid=udid
        )


@extend_schema_view(
    list=extend_schema(summary="Device groups", tags=["groups"]),
    retrieve=extend_schema(summary="One group", tags=["groups"]),
    create=extend_schema(summary="Create a group", tags=["groups"]),
    partial_update=extend_schema(
        summary="Rename a group or change its description", tags=["groups"]
    ),
    destroy=extend_schema(
        summary="Delete a group: its devices lose the profiles it gave them", tags=["groups"]
    ),
)
class GroupViewSet(viewsets.ModelViewSet):
    queryset = DeviceGroup.objects.annotate(device_count=Count("devices")).order_by("name")
    serializer_class = GroupSerializer
    cursor_ordering = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request):
        data = self._validated(request, partial=False)
        group = create_group(data["name"], description=data.get("description", ""), by=request.user)
        return Response(self._render(group), status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        group = self.get_object()
        data = self._validated(request, partial=True)
        rename_group(
            group,
            data.get("name", group.name),
            description=data.get("description"),
            by=request.user,
        )
        return Response(self._render(group))

    def destroy(self, request, pk=None):
        # As the group pages do: its devices end up in no group and lose the group's profiles
        # that nothing else keeps; enrollments that put devices in it put them in none.
        delete_group(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _validated(self, request, *, partial: bool) -> dict:
        serializer = GroupSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _render(self, group: DeviceGroup) -> dict:
        return GroupSerializer(self.get_queryset().get(pk=group.pk)).data
