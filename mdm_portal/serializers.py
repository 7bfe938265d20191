"""The base's API representations: audit entries and alerts."""

from rest_framework import serializers

from .models import Alert, AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    details = serializers.DictField(help_text="what was done; token=<name> for API requests")

    class Meta:
        model = AuditEntry
        fields = ["id", "created_at", "actor", "action", "target", "address", "details"]


class AlertSerializer(serializers.ModelSerializer):
    details = serializers.DictField()

    class Meta:
        model = Alert
        fields = ["id", "key", "severity", "message", "details", "created_at"]
