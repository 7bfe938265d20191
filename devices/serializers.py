"""The devices' API representations. Secrets never appear: not the push token or PushMagic,
not the UnlockToken or bootstrap token (only whether one is escrowed)."""

from rest_framework import serializers

from mdm_portal.masking import masked

from .models import Device, DeviceGroup
from .summary import device_summary, iso

STATES = Device.State.choices


class DeviceListSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="device_name", help_text="as the device reports it")
    group = serializers.CharField(source="group.name", allow_null=True, default=None)
    inactive = serializers.SerializerMethodField()
    token_invalid = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = [
            "udid",
            "state",
            "name",
            "serial_number",
            "model",
            "model_name",
            "product_name",
            "platform",
            "os_version",
            "build_version",
            "group",
            "is_supervised",
            "lost_mode",
            "enrolled_at",
            "last_seen_at",
            "inactive",
            "token_invalid",
        ]

    def get_inactive(self, device) -> bool:
        """Not seen for MDM_INACTIVE_DAYS."""
        return device.inactive_since is not None

    def get_token_invalid(self, device) -> bool:
        """APNs declared its push token invalid: no commands until its next TokenUpdate."""
        return device.token_invalid_at is not None


class InventoryReportSerializer(serializers.Serializer):
    reported_at = serializers.DateTimeField(allow_null=True)
    data = serializers.JSONField(help_text="the latest answer, as JSON (data as base64)")


class DeviceDetailSerializer(serializers.Serializer):
    """devices.summary.device_summary, and what the API adds to it."""

    udid = serializers.CharField()
    state = serializers.ChoiceField(choices=STATES)
    name = serializers.CharField()
    serial_number = serializers.CharField()
    model = serializers.CharField()
    model_name = serializers.CharField()
    product_name = serializers.CharField()
    os_version = serializers.CharField()
    build_version = serializers.CharField()
    platform = serializers.CharField()
    is_supervised = serializers.BooleanField(allow_null=True)
    lost_mode = serializers.BooleanField()
    group = serializers.CharField(allow_null=True)
    access_rights = serializers.IntegerField()
    topic = serializers.CharField()
    push_token_set = serializers.BooleanField()
    unlock_token_escrowed = serializers.BooleanField()
    bootstrap_token_escrowed = serializers.BooleanField()
    awaiting_configuration = serializers.BooleanField()
    enrollment_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    authenticated_at = serializers.DateTimeField(allow_null=True)
    enrolled_at = serializers.DateTimeField(allow_null=True)
    token_updated_at = serializers.DateTimeField(allow_null=True)
    checked_out_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField(allow_null=True)
    inactive_since = serializers.DateTimeField(allow_null=True)
    token_invalid_at = serializers.DateTimeField(allow_null=True)
    inventory = serializers.DictField(
        child=InventoryReportSerializer(),
        help_text="the latest answer of each query command, by RequestType",
    )

    def to_representation(self, device: Device) -> dict:
        summary = device_summary(device)
        # What the device reported, with the secrets some answers carry masked (the FileVault
        # recovery key of SecurityInfo ...), as on the device's page.
        summary["inventory"] = {
            kind: {**report, "data": masked(report["data"])}
            for kind, report in summary["inventory"].items()
        }
        return {
            **summary,
            "platform": device.platform,
            "is_supervised": device.is_supervised,
            "lost_mode": device.lost_mode,
            "awaiting_configuration": device.awaiting_configuration,
            "created_at": iso(device.created_at),
            "inactive_since": iso(device.inactive_since),
            "token_invalid_at": iso(device.token_invalid_at),
        }


class DevicePatchSerializer(serializers.Serializer):
    name = serializers.CharField(
        required=False,
        max_length=255,
        help_text="queues a Settings DeviceName command (the name is the device's own)",
    )
    group = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="a group's name or id; null takes the device out of its group",
    )


class DevicePatchResultSerializer(DeviceDetailSerializer):
    queued_commands = serializers.ListField(
        child=serializers.CharField(), help_text="CommandUUIDs the change queued"
    )

    def to_representation(self, device: Device) -> dict:
        return {
            **super().to_representation(device),
            "queued_commands": self.context.get("queued_commands", []),
        }


class GroupSerializer(serializers.ModelSerializer):
    devices = serializers.IntegerField(source="device_count", read_only=True)

    class Meta:
        model = DeviceGroup
        fields = ["id", "name", "description", "devices", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness: 409 from devices.groups
