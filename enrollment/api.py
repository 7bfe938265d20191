"""The library's and the enrollments' API: upload, list, read, delete profiles, assign and
unassign them to devices and groups; create, list and deactivate enrollments (with their
link). Views parse, call enrollment.library and enrollment.enrollments, and render."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from devices.groups import get_or_create_group
from devices.models import Device
from devices.selection import group_named
from mdm_portal.api import Conflict, PayloadTooLarge, refusal_status

from .enrollments import EnrollmentError, EnrollmentSpec, create_enrollment, deactivate_enrollment
from .library import (
    LibraryConflict,
    LibraryError,
    assign,
    assigned_devices,
    delete_profile,
    installed_devices,
    size_problem,
    unassign,
    upload_profile,
)
from .models import Enrollment, Profile
from .serializers import (
    AssignmentSerializer,
    AssignResultSerializer,
    AssignSerializer,
    EnrollmentCreateSerializer,
    EnrollmentSerializer,
    ProfileDetailSerializer,
    ProfileSerializer,
    ProfileUploadSerializer,
    UnassignResultSerializer,
)

refusal_status(
    {
        LibraryError: 400,
        LibraryConflict: 409,
    }
)

# Multipart framing around the file: a body this much over the profile limit is refused
# before it is read.
MULTIPART_ALLOWANCE = 64 * 1024


def _target(data: dict) -> dict:
    if ("device" in data) == ("group" in data):
        raise ValidationError(
            {"target": ["give device (a UDID) or group (a name or id), not both"]}
        )
    if "device" in data:
        device = Device.objects.filter(udid=data["device"]).first()
        if device is None:
            raise ValidationError({"device": [f"unknown device {data['device']!r}"]})
        return {"device": device}
    group = group_named(data["group"])
    if group is None:
        raise ValidationError({"group": [f"no group {data['group']!r}"]})
    return {"group": group}


@extend_schema_view(
    list=extend_schema(summary="The profile library", tags=["profiles"]),
    retrieve=extend_schema(
        summary="One profile, its assignments and installs (never its payload)",
        tags=["profiles"],
        responses=ProfileDetailSerializer,
    ),
    create=extend_schema(
        summary="Upload a .mobileconfig (a new PayloadIdentifier, or a new version)",
        tags=["profiles"],
        request={"multipart/form-data": ProfileUploadSerializer},
        responses={201: ProfileSerializer},
    ),
    destroy=extend_schema(summary="Delete a profile (refused while assigned)", tags=["profiles"]),
    assign=extend_schema(
        summary="Assign to a device or a group: InstallProfile where it is missing",
        tags=["profiles"],
        request=AssignSerializer,
        responses=AssignResultSerializer,
    ),
    unassign=extend_schema(
        summary="Unassign: RemoveProfile where nothing else keeps it",
        tags=["profiles"],
        request=AssignSerializer,
        responses=UnassignResultSerializer,
    ),
)
class ProfileViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Profile.objects.order_by("id")
    serializer_class = ProfileSerializer
    cursor_ordering = "id"

    def get_parsers(self):
        # An upload is multipart (curl -F file=@profile.mobileconfig); the rest is JSON. DRF
        # asks for the parsers before it sets `action`: read the route's method map.
        method = (getattr(getattr(self, "request", None), "method", "") or "").lower()
        if getattr(self, "action_map", {}).get(method) == "create":
            return [parsers.MultiPartParser()]
        return super().get_parsers()

    def create(self, request):
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        problem = size_problem(max(declared - MULTIPART_ALLOWANCE, 0))
        if problem:  # refused before the body is read
            raise PayloadTooLarge(problem)
        form = ProfileUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        problem = size_problem(upload.size)
        if problem:
            raise PayloadTooLarge(problem)
        profile = upload_profile(
            upload.read(), name=form.validated_data["name"], uploaded_by=request.user
        )
        return Response(ProfileSerializer(profile).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        profile = self.get_object()
        body = {
            **ProfileSerializer(profile).data,
            "assignments": AssignmentSerializer(
                profile.assignments.select_related("device", "group").order_by("id"), many=True
            ).data,
            "assigned_devices": assigned_devices(profile).count(),
            "installed_on": installed_devices(profile).count(),
        }
        return Response(body)

    def perform_destroy(self, profile):
        delete_profile(profile, by=self.request.user)

    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        profile = self.get_object()
        queued, skipped = assign(
            profile, **self._target(request), by=request.user, refuse_existing=True
        )
        return Response({"queued": queued, "skipped": skipped})

    @action(detail=True, methods=["post"])
    def unassign(self, request, pk=None):
        profile = self.get_object()
        queued, skipped = unassign(profile, **self._target(request), by=request.user)
        return Response({"queued": queued, "skipped": skipped})

    def _target(self, request) -> dict:
        form = AssignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return _target(form.validated_data)


@extend_schema_view(
    list=extend_schema(summary="Enrollments, newest first, with their links", tags=["enrollments"]),
    retrieve=extend_schema(summary="One enrollment", tags=["enrollments"]),
    create=extend_schema(
        summary="Create an enrollment; the response carries its link",
        tags=["enrollments"],
        request=EnrollmentCreateSerializer,
        responses={201: EnrollmentSerializer},
    ),
    deactivate=extend_schema(
        summary="Turn the link off (409 if it is already off)",
        tags=["enrollments"],
        request=None,
        responses=EnrollmentSerializer,
    ),
)
class EnrollmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Enrollment.objects.select_related("group").order_by("-id")
    serializer_class = EnrollmentSerializer

    def create(self, request):
        form = EnrollmentCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        spec = EnrollmentSpec(**{**data, "group": self._group(data.pop("group"), request.user)})
        with transaction.atomic():
            try:
                enrollment = create_enrollment(spec, by=request.user)
            except EnrollmentError as exc:
                raise ValidationError(exc.problems) from None  # by key: "name: ..."
        return Response(EnrollmentSerializer(enrollment).data, status=status.HTTP_201_CREATED)

    def _group(self, reference, user):
        """A group by name or id; a new name creates it (as mdm_enrollment --group does)."""
        if reference in (None, ""):
            return None
        return group_named(reference) or get_or_create_group(str(reference), by=user)[0]

    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        enrollment = get_object_or_404(Enrollment, pk=pk)
        if not deactivate_enrollment(enrollment, by=request.user):
            raise Conflict(f"enrollment {enrollment.name!r} is already inactive")
        return Response(EnrollmentSerializer(enrollment).data)
