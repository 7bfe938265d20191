"""The commands' API representations: a command to queue and its target, a command's progress
and per-device results, a device's history and pushes, a push's summary."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from devices.models import Device
from devices.selection import MAX_UDIDS, PLATFORMS, SEEN

from .catalog import DEFINITIONS
from .models import Command, PushAttempt, Status

REQUEST_TYPES = sorted(DEFINITIONS)


@extend_schema_field(
    {
        "type": "string",
        "enum": REQUEST_TYPES,
        "description": "a RequestType of the catalog (`manage.py mdm_catalog`); a raw command "
        "(admins) may name one the catalog does not know yet",
    }
)
class RequestTypeField(serializers.CharField):
    pass


class DeviceFilterSerializer(serializers.Serializer):
    """The device list's filter (devices.selection; every key optional)."""

    q = serializers.CharField(required=False, help_text="name, serial, UDID or model contains")
    state = serializers.ChoiceField(choices=Device.State.choices, required=False)
    group = serializers.CharField(required=False, help_text="group id or name; none: no group")
    platform = serializers.ChoiceField(choices=list(PLATFORMS), required=False)
    os_version = serializers.CharField(required=False, help_text="17 matches 17.4.1")
    seen = serializers.ChoiceField(choices=sorted(SEEN), required=False)


class TargetSerializer(serializers.Serializer):
    """Exactly one of: devices (UDIDs), group (its managed devices), filter (the managed
    devices it matches)."""

    devices = serializers.ListField(
        child=serializers.CharField(), required=False, max_length=MAX_UDIDS
    )
    group = serializers.CharField(required=False, help_text="group name or id")
    filter = DeviceFilterSerializer(required=False)

    def target(self) -> dict:
        data = self.validated_data
        return {
            "udids": data.get("devices"),
            "group": data.get("group"),
            "filters": data.get("filter"),
        }


class CommandCreateSerializer(TargetSerializer):
    request_type = RequestTypeField()
    payload = serializers.DictField(
        required=False,
        default=dict,
        help_text="the command's keys as JSON; `data` values as base64 strings",
    )
    raw = serializers.BooleanField(
        default=False, help_text="skip the catalog's key checks (administrators only)"
    )
    reason = serializers.CharField(
        default="", allow_blank=True, help_text="why (required for ClearPasscode; audited)"
    )
    drop_disallowed_queries = serializers.BooleanField(
        default=False, help_text="DeviceInformation: drop queries the AccessRights do not allow"
    )
    sign = serializers.BooleanField(default=True, help_text="InstallProfile: sign the profile")
    encrypt = serializers.BooleanField(
        default=False, help_text="InstallProfile: encrypt it for its (single) device"
    )


class QueuedSerializer(serializers.Serializer):
    command_uuid = serializers.CharField()
    request_type = serializers.CharField()
    devices = serializers.IntegerField(help_text="devices it was queued for")
    left_out = serializers.IntegerField(
        help_text="devices of the group or filter left out: not managed, or unreachable"
    )


class CommandSerializer(serializers.ModelSerializer):
    command_uuid = serializers.CharField(source="uuid")

    class Meta:
        model = Command
        fields = ["command_uuid", "request_type", "raw", "queued_by", "device_count", "created_at"]


def _status_counts():
    return type(
        "CommandProgressSerializer",
        (serializers.Serializer,),
        {status: serializers.IntegerField() for status in Status.values},
    )


ProgressSerializer = _status_counts()


class DeviceResultSerializer(serializers.Serializer):
    udid = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    queued_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    sent_count = serializers.IntegerField()
    answered_at = serializers.DateTimeField(allow_null=True)
    error_chain = serializers.JSONField(allow_null=True)
    result = serializers.JSONField(
        allow_null=True, help_text="what the device returned, as JSON (data as base64)"
    )


class CommandDetailSerializer(CommandSerializer):
    progress = ProgressSerializer(help_text="devices at each status (archived rows included)")
    next = serializers.URLField(allow_null=True, help_text="the next page of devices")
    previous = serializers.URLField(allow_null=True)
    results = DeviceResultSerializer(many=True, help_text="per device, in queue order")

    class Meta(CommandSerializer.Meta):
        fields = [*CommandSerializer.Meta.fields, "progress", "next", "previous", "results"]


class CanceledSerializer(serializers.Serializer):
    canceled = serializers.IntegerField(help_text="rows canceled (sent ones stay in flight)")


class HistoryEntrySerializer(serializers.Serializer):
    command_uuid = serializers.CharField()
    request_type = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    queued_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    answered_at = serializers.DateTimeField(allow_null=True)
    error_chain = serializers.JSONField(allow_null=True)
    result = serializers.JSONField(required=False, allow_null=True)
    archived = serializers.BooleanField(required=False)


class PushAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = PushAttempt
        fields = ["id", "created_at", "kind", "status", "apns_id", "reason"]


class PushResultSerializer(serializers.Serializer):
    udid = serializers.CharField()
    status = serializers.IntegerField(help_text="APNs' HTTP status; 0 when not sent")
    reason = serializers.CharField()


class PushSummarySerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    ok = serializers.IntegerField()
    invalid_tokens = serializers.IntegerField()
    failed = serializers.IntegerField()
    not_attempted = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="devices that cannot be pushed")
    reason = serializers.CharField(help_text="why no push was sent, if none was")
    results = PushResultSerializer(many=True)
