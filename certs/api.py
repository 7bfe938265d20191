"""The certificates' API: the push certificate's status (everyone) and its import (admins),
every certificate the portal depends on with days left, every device identity the CA issued
(with its delivery and what an attestation proved), and SCEP requests waiting for an
administrator's approval."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from devices.topics import devices_on_other_topic
from enrollment.links import scep_request_enrollment
from mdm_portal.api import refusal_status
from mdm_portal.roles import ADMIN

from . import pushcert
from .expiry import certificate_inventory, kind_labels
from .issued import DELIVERIES, NOT_RECORDED, IssuedFilter, issued_certificates
from .models import ScepRequest
from .scep_approval import ScepAdminError, approve_request, reject_request
from .serializers import (
    SEVERITIES,
    CertificateEntrySerializer,
    IssuedCertificateSerializer,
    IssuedSerializer,
    PushCertificateImportResultSerializer,
    PushCertificateImportSerializer,
    PushCertificateSerializer,
    ScepRejectSerializer,
    ScepRequestSerializer,
)

refusal_status({pushcert.PushCertError: 400, pushcert.TopicChangeRefused: 409, ScepAdminError: 409})

# certs' kinds and those the layers above registered (this module is imported by the URLconf,
# after every AppConfig.ready).
KINDS = list(kind_labels())


class PushCertificateView(APIView):
    roles = {"post": ADMIN}
    parser_classes = [parsers.MultiPartParser]

    @extend_schema(
        summary="The active push certificate (null if none)",
        tags=["certificates"],
        responses=PushCertificateSerializer,
    )
    def get(self, request):
        return Response({"push_certificate": pushcert.push_certificate_status()})

    @extend_schema(
        summary="Import a push certificate (admins)",
        description="A new topic is refused (409) unless `force`: every enrolled device "
        "listens to the old one and would have to enroll again.",
        tags=["certificates"],
        request={"multipart/form-data": PushCertificateImportSerializer},
        responses=PushCertificateImportResultSerializer,
    )
    def post(self, request):
        form = PushCertificateImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        common = {
            "orphaned_devices": devices_on_other_topic,
            "force": data["force"],
            "actor": request.user,
        }
        if data.get("p12") is not None:
            if data.get("certificate") is not None or data.get("key") is not None:
                raise ValidationError({"p12": ["a PKCS#12 holds its own key: send it alone"]})
            result = pushcert.import_pkcs12(data["p12"].read(), data["password"] or None, **common)
        elif data.get("certificate") is not None:
            key = data["key"].read() if data.get("key") is not None else None
            result = pushcert.import_push_certificate(
                data["certificate"].read(), key, password=data["password"] or None, **common
            )
        else:
            raise ValidationError({"p12": ["send p12, or certificate (and key)"]})
        body = {
            "push_certificate": pushcert.push_certificate_status(),
            "previous_topic": result.previous.topic if result.previous else None,
            "renewal": result.renewal,
            "orphaned": result.orphaned,
            "replaced_demo": result.replaced_demo,
        }
        return Response(body)


class Entries(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


@extend_schema(
    summary="Every certificate the portal depends on, soonest expiry first",
    tags=["certificates"],
    parameters=[
        OpenApiParameter("kind", OpenApiTypes.STR, enum=KINDS),
        OpenApiParameter("severity", OpenApiTypes.STR, enum=SEVERITIES),
    ],
    responses=CertificateEntrySerializer(many=True),
)
class CertificateInventoryView(APIView):
    pagination_class = Entries

    def get(self, request):
        entries = certificate_inventory()
        for key, allowed in (("kind", list(kind_labels())), ("severity", SEVERITIES)):
            wanted = request.query_params.get(key)
            if wanted is None:
                continue
            if wanted not in allowed:
                raise ValidationError({key: [f"one of {', '.join(allowed)}"]})
            entries = [entry for entry in entries if entry[key] == wanted]
        page = Entries()
        chosen = page.paginate_queryset(entries, request, self)
        return page.get_paginated_response(CertificateEntrySerializer(chosen, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="Device identities the CA issued, newest first, with their delivery",
        tags=["certificates"],
        parameters=[
            OpenApiParameter("delivery", OpenApiTypes.STR, enum=[*DELIVERIES, NOT_RECORDED]),
            OpenApiParameter(
                "q", OpenApiTypes.STR, description="serial, subject, attested serial or UDID"
            ),
        ],
    ),
    retrieve=extend_schema(summary="One issued device identity, by serial", tags=["certificates"]),
)
class IssuedCertificateViewSet(viewsets.ReadOnlyModelViewSet):
    # The bound device (devices.CertificateBinding) joined in the same statement.
    queryset = issued_certificates().select_related("binding__device")
    serializer_class = IssuedCertificateSerializer
    filterset_class = IssuedFilter
    lookup_field = "serial"
    lookup_value_regex = "[0-9a-fA-F]{1,64}"
    cursor_ordering = "-id"

    def get_object(self):
        serial = self.kwargs["serial"].lower()
        return get_object_or_404(self.get_queryset(), serial=serial)


def _scep_request(pk) -> ScepRequest:
    return get_object_or_404(ScepRequest, pk=pk)


@extend_schema_view(
    list=extend_schema(
        summary="SCEP requests (pending ones unless `status` says otherwise)",
        tags=["scep"],
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=[*ScepRequest.Status.values, "all"])
        ],
    ),
    approve=extend_schema(
        summary="Approve: issue the certificate (admins)",
        tags=["scep"],
        request=None,
        responses=IssuedSerializer,
    ),
    reject=extend_schema(
        summary="Reject: the client's next poll gets FAILURE (admins)",
        tags=["scep"],
        request=ScepRejectSerializer,
        responses=ScepRequestSerializer,
    ),
)
class ScepRequestViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ScepRequestSerializer
    queryset = ScepRequest.objects.none()
    roles = {"approve": ADMIN, "reject": ADMIN}
    cursor_ordering = "id"

    def get_queryset(self):
        wanted = self.request.query_params.get("status", ScepRequest.Status.PENDING)
        requests = ScepRequest.objects.select_related("challenge", "renewal_of", "certificate")
        if wanted == "all":
            return requests.order_by("created_at", "id")
        if wanted not in ScepRequest.Status.values:
            raise ValidationError({"status": [f"one of {', '.join(ScepRequest.Status.values)}"]})
        return requests.filter(status=wanted).order_by("created_at", "id")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "enrollment_of": scep_request_enrollment}

    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        pending = _scep_request(pk)
        record = approve_request(
            pending.transaction_id, actor=request.user, subject=pending.subject
        )
        body = {"serial": record.serial, "subject": record.subject, "not_after": record.not_after}
        return Response(IssuedSerializer(body).data)

    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        pending = _scep_request(pk)
        form = ScepRejectSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        decided = reject_request(
            pending.transaction_id,
            actor=request.user,
            subject=pending.subject,
            reason=form.validated_data["reason"],
        )
        return Response(self.get_serializer(decided).data)
