"""The Automated Device Enrollment API's representations. Every field is named here, so a
secret can only appear by being added: the server token's OAuth credentials (consumer key and
secret, access token and secret), the DEP session token and the key's private half are never
returned, to anyone."""

from rest_framework import serializers

from .dep_listing import PROFILE_STATUSES, token_expiry
from .dep_models import DepDevice, DepProfile, DepServer
from .dep_skip_keys import SKIP_PANES
from .models import Enrollment

SEVERITIES = ["ok", "notice", "warning", "critical", "expired"]
SETTING_KEYS = (
    "is_supervised",
    "is_mdm_removable",
    "await_device_configured",
    "department",
    "support_phone_number",
    "support_email_address",
    "skip_setup_items",
)


class DepServerSerializer(serializers.ModelSerializer):
    token_expiry = serializers.DateTimeField(
        source="access_token_expiry", allow_null=True, help_text="when the server token lapses"
    )
    token_days_left = serializers.SerializerMethodField()
    token_severity = serializers.SerializerMethodField()
    certificate_sha256 = serializers.CharField(
        source="key.sha256", help_text="of the certificate uploaded to ABM (DER)"
    )
    certificate_not_after = serializers.DateTimeField(source="key.not_after")
    device_count = serializers.IntegerField(help_text="devices still assigned in ABM")
    unassigned_count = serializers.IntegerField(help_text="of those, with no profile at Apple")

    class Meta:
        model = DepServer
        fields = [
            "id",
            "name",
            "server_name",
            "server_uuid",
            "org_name",
            "org_email",
            "token_imported_at",
            "token_expiry",
            "token_days_left",
            "token_severity",
            "certificate_sha256",
            "certificate_not_after",
            "last_sync_at",
            "last_sync_ok",
            "last_sync_result",
            "failed_syncs",
            "cursor_at",
            "device_count",
            "unassigned_count",
            "auto_assign_profile",
            "created_by",
            "created_at",
        ]

    def get_token_days_left(self, server) -> int | None:
        entry = token_expiry(server)
        return None if entry is None else entry["days_left"]

    def get_token_severity(self, server) -> str | None:
        """ok, notice, warning, critical or expired (MDM_EXPIRY_WARNING_DAYS); null: no token"""
        entry = token_expiry(server)
        return None if entry is None else entry["severity"]


class DepServerCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)


class DepServerCreatedSerializer(DepServerSerializer):
    certificate_pem = serializers.CharField(
        help_text="the certificate to upload to Apple Business Manager (public)"
    )

    class Meta(DepServerSerializer.Meta):
        fields = [*DepServerSerializer.Meta.fields, "certificate_pem"]


class DepTokenUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the server token (.p7m) downloaded from ABM")


class DepTokenJsonSerializer(serializers.Serializer):
    token_base64 = serializers.CharField(
        help_text="the server token file (.p7m), base64-encoded", max_length=400_000
    )


class SyncOutcomeSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    added = serializers.IntegerField()
    modified = serializers.IntegerField()
    deleted = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)
    server = DepServerSerializer()


class SerialsSerializer(serializers.Serializer):
    serials = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=1000
    )


class PerSerialSerializer(serializers.Serializer):
    results = serializers.DictField(
        child=serializers.CharField(),
        help_text="Apple's answer per serial: SUCCESS, NOT_ACCESSIBLE or FAILED",
    )


class DepDeviceSerializer(serializers.ModelSerializer):
    server_name = serializers.CharField(source="server.name")
    profile_status = serializers.ChoiceField(
        choices=list(PROFILE_STATUSES), help_text="Apple's: empty, assigned, pushed, removed"
    )
    enrolled = serializers.BooleanField(help_text="a device with this serial is enrolled here")
    device = serializers.CharField(
        source="device_udid",
        allow_null=True,
        help_text="the UDID of the portal's device with this serial (/api/v1/devices/<udid>/)",
    )

    class Meta:
        model = DepDevice
        fields = [
            "serial_number",
            "server",
            "server_name",
            "model",
            "description",
            "color",
            "asset_tag",
            "os",
            "device_family",
            "device_assigned_date",
            "device_assigned_by",
            "profile_status",
            "profile_uuid",
            "profile_assign_time",
            "assigned_profile",
            "assign_result",
            "assign_result_at",
            "op_type",
            "op_date",
            "removed",
            "added_at",
            "updated_at",
            "enrolled",
            "device",
        ]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["profile_status"] = instance.profile_status or "empty"
        return data


class DepProfileSerializer(serializers.ModelSerializer):
    is_supervised = serializers.SerializerMethodField()
    is_mdm_removable = serializers.SerializerMethodField()
    await_device_configured = serializers.SerializerMethodField()
    department = serializers.SerializerMethodField()
    support_phone_number = serializers.SerializerMethodField()
    support_email_address = serializers.SerializerMethodField()
    skip_setup_items = serializers.SerializerMethodField()
    auto_assign = serializers.SerializerMethodField()
    device_count = serializers.SerializerMethodField()

    class Meta:
        model = DepProfile
        fields = [
            "id",
            "name",
            "server",
            "enrollment",
            *SETTING_KEYS,
            "auto_assign",
            "device_count",
            "profile_uuid",
            "defined_at",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def _setting(self, profile, key, default):
        return (profile.settings or {}).get(key, default)

    def get_is_supervised(self, profile) -> bool:
        return bool(self._setting(profile, "is_supervised", False))

    def get_is_mdm_removable(self, profile) -> bool:
        return bool(self._setting(profile, "is_mdm_removable", True))

    def get_await_device_configured(self, profile) -> bool:
        return bool(self._setting(profile, "await_device_configured", False))

    def get_department(self, profile) -> str:
        return str(self._setting(profile, "department", ""))

    def get_support_phone_number(self, profile) -> str:
        return str(self._setting(profile, "support_phone_number", ""))

    def get_support_email_address(self, profile) -> str:
        return str(self._setting(profile, "support_email_address", ""))

    def get_skip_setup_items(self, profile) -> list[str]:
        return list(self._setting(profile, "skip_setup_items", []))

    def get_auto_assign(self, profile) -> bool:
        """whether the server gives this profile to devices the sync finds new"""
        return profile.server.auto_assign_profile_id == profile.pk

    def get_device_count(self, profile) -> int:
        """devices the portal assigned it to"""
        count = getattr(profile, "device_count", None)
        return profile.devices.count() if count is None else count


class DepProfileWriteSerializer(serializers.Serializer):
    """A DEP profile to define with Apple. On update, what is left out stays as it is."""

    name = serializers.CharField(max_length=150)
    server = serializers.PrimaryKeyRelatedField(
        queryset=DepServer.objects.all(), help_text="on create only: a profile stays on its server"
    )
    enrollment = serializers.PrimaryKeyRelatedField(
        queryset=Enrollment.objects.all(), help_text="the enrollment devices get (an active one)"
    )
    is_supervised = serializers.BooleanField(default=True)
    is_mdm_removable = serializers.BooleanField(default=False)
    await_device_configured = serializers.BooleanField(default=False)
    department = serializers.CharField(max_length=125, allow_blank=True, default="")
    support_phone_number = serializers.CharField(max_length=50, allow_blank=True, default="")
    support_email_address = serializers.EmailField(max_length=250, allow_blank=True, default="")
    skip_setup_items = serializers.ListField(
        child=serializers.ChoiceField(choices=[key for key, *_ in SKIP_PANES]),
        default=list,
        help_text="Setup Assistant panes to skip (Apple's keys)",
    )
    auto_assign = serializers.BooleanField(
        required=False, help_text="give it to the server's new devices (replaces its current one)"
    )

    def validate_enrollment(self, enrollment: Enrollment) -> Enrollment:
        current = getattr(self.instance, "enrollment_id", None)
        if not enrollment.active and enrollment.pk != current:
            raise serializers.ValidationError(f"enrollment {enrollment.name!r} is turned off")
        return enrollment

    def validate_server(self, server: DepServer) -> DepServer:
        if self.instance is not None and server.pk != self.instance.server_id:
            raise serializers.ValidationError("a profile stays on the server it was made for")
        return server

    def settings(self) -> dict:
        return {key: self.validated_data[key] for key in SETTING_KEYS}


def profile_values(profile: DepProfile) -> dict:
    """A profile's current values in the write serializer's shape (a PATCH starts from it)."""
    settings = profile.settings or {}
    return {
        "name": profile.name,
        "server": profile.server_id,
        "enrollment": profile.enrollment_id,
        **{key: settings[key] for key in SETTING_KEYS if key in settings},
    }
