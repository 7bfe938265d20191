"""The webhooks' API (admins only: a webhook URL may carry credentials): register, list,
change, remove, ping, the delivery log, and sending given-up deliveries again."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from mdm_portal.api import Cursor, refusal_status
from mdm_portal.roles import ADMIN

from .models import Delivery, Webhook
from .registry import (
    WebhookError,
    create_webhook,
    delete_webhook,
    ping,
    retry_failed,
    update_webhook,
    with_counts,
)
from .serializers import (
    CountSerializer,
    DeliverySerializer,
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookPatchSerializer,
    WebhookSerializer,
)

refusal_status({WebhookError: 400})

ALL_ADMIN = dict.fromkeys(
    ["list", "retrieve", "create", "partial_update", "destroy", "deliveries", "ping", "retry"],
    ADMIN,
)


@extend_schema_view(
    list=extend_schema(summary="Registered webhooks (never their secrets)", tags=["webhooks"]),
    retrieve=extend_schema(summary="One webhook", tags=["webhooks"]),
    create=extend_schema(
        summary="Register a webhook; the response holds its secret, shown once",
        tags=["webhooks"],
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer},
    ),
    partial_update=extend_schema(
        summary="Change its URL, topics, description, or turn it off",
        tags=["webhooks"],
        request=WebhookPatchSerializer,
        responses=WebhookSerializer,
    ),
    destroy=extend_schema(summary="Remove it and its delivery log", tags=["webhooks"]),
    deliveries=extend_schema(
        summary="The delivery log: attempts, status codes, last error (newest first)",
        tags=["webhooks"],
        responses=DeliverySerializer(many=True),
    ),
    ping=extend_schema(
        summary="Queue a portal.ping event for this webhook",
        tags=["webhooks"],
        request=None,
        responses={202: CountSerializer},
    ),
    retry=extend_schema(
        summary="Send the given-up deliveries again",
        tags=["webhooks"],
        request=None,
        responses=CountSerializer,
    ),
)
class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = WebhookSerializer
    roles = ALL_ADMIN
    cursor_ordering = "id"
    queryset = with_counts()

    def create(self, request):
        form = WebhookCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        webhook, secret = create_webhook(actor=request.user, **form.validated_data)
        body = {**self._render(webhook), "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        webhook = self.get_object()
        form = WebhookPatchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        update_webhook(webhook, actor=request.user, **form.validated_data)
        return Response(self._render(webhook))

    def perform_destroy(self, webhook):
        delete_webhook(webhook, actor=self.request.user)

    @action(detail=True, methods=["get"], pagination_class=Cursor)
    def deliveries(self, request, pk=None):
        webhook = self.get_object()
        log = (
            Delivery.objects.filter(webhook=webhook)
            .select_related("event")
            .prefetch_related("attempt_log")
        )
        page = self.paginate_queryset(log)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        queued = ping(self.get_object(), actor=request.user)
        return Response({"count": queued}, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return Response({"count": retry_failed(self.get_object(), actor=request.user)})

    def _render(self, webhook: Webhook) -> dict:
        return WebhookSerializer(self.get_queryset().get(pk=webhook.pk)).data

    def get_serializer_class(self):
        return DeliverySerializer if self.action == "deliveries" else WebhookSerializer
