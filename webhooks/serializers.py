"""The webhooks' API representations. The secret is returned once, by the creation; never
again."""

from rest_framework import serializers

from .models import TOPICS, Delivery, DeliveryAttempt, Webhook


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=TOPICS),
        required=False,
        help_text="topics it receives; empty or absent: every topic",
    )
    pending = serializers.IntegerField(read_only=True, help_text="deliveries waiting")
    failed = serializers.IntegerField(read_only=True, help_text="deliveries given up")

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "description",
            "active",
            "created_by",
            "created_at",
            "pending",
            "failed",
        ]
        read_only_fields = ["id", "created_by", "created_at"]


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=TOPICS), required=False, default=list
    )
    secret = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        min_length=16,
        max_length=200,
        write_only=True,
        help_text="the HMAC key (generated when absent); returned once, in this response",
    )
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200
    )


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="shown once: X-Hmac-Signature's HMAC-SHA256 key")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookPatchSerializer(serializers.Serializer):
    url = serializers.URLField(required=False, max_length=500)
    events = serializers.ListField(child=serializers.ChoiceField(choices=TOPICS), required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    active = serializers.BooleanField(required=False)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["attempted_at", "status", "error", "duration_ms"]


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.event_id")
    topic = serializers.CharField(source="event.topic")
    udid = serializers.CharField(source="event.udid")
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "topic",
            "udid",
            "state",
            "attempts",
            "last_status",
            "last_error",
            "created_at",
            "next_attempt_at",
            "delivered_at",
            "attempt_log",
        ]


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()
