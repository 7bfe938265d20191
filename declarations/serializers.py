"""The declarations' API representations. A declaration reads as a device gets it (Type,
Identifier, ServerToken, Payload) with the portal's own facts beside it; data the portal serves
is described by its size and SHA-256, never shown (it may be a password or a private key)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mdm_portal.roles import OPERATOR, has_role

from .display import shown_payload
from .models import Declaration, DeclarationSet, Kind, ServedAsset
from .states import STATES, Row, counts, declaration_rows
from .store import devices_of_sets

SOURCES = ServedAsset.Source.choices


class ServedSerializer(serializers.ModelSerializer):
    """What the portal serves at the asset's DataURL: its description, not its content."""

    options = serializers.JSONField(
        help_text="ACME / SCEP: the credential's key type and size, attestation …; data: {}"
    )

    class Meta:
        model = ServedAsset
        fields = [
            "source",
            "content_type",
            "size",
            "sha256",
            "options",
            "downloads",
            "last_download_at",
        ]


class SetNameSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeclarationSet
        fields = ["id", "name"]


class DeclarationSerializer(serializers.ModelSerializer):
    Type = serializers.CharField(source="type")
    Identifier = serializers.CharField(source="identifier")
    ServerToken = serializers.CharField(
        source="server_token", help_text="SHA-256 over the declaration's content"
    )
    Payload = serializers.JSONField(source="payload")
    served = ServedSerializer(
        allow_null=True,
        read_only=True,
        help_text="the data the portal serves for this asset (null: none)",
    )
    # listing.declarations_listed() annotates it.
    failing_devices = serializers.IntegerField(help_text="devices that report it failed")

    def to_representation(self, declaration) -> dict:
        """Operators, who change declarations, get the Payload as stored; a viewer gets it
        with the text under secret keys masked, as the pages show it (declarations.display)."""
        data = super().to_representation(declaration)
        request = self.context.get("request")
        if request is None or not has_role(request.user, OPERATOR):
            data["Payload"] = shown_payload(data["Payload"])
        return data

    class Meta:
        model = Declaration
        fields = [
            "Type",
            "Identifier",
            "ServerToken",
            "Payload",
            "kind",
            "description",
            "served",
            "failing_devices",
            "created_by",
            "created_at",
            "updated_by",
            "updated_at",
        ]


class StateCountsSerializer(serializers.Serializer):
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()
    active = serializers.IntegerField()
    inactive = serializers.IntegerField()
    removing = serializers.IntegerField()


class DeclarationDetailSerializer(DeclarationSerializer):
    sets = SetNameSerializer(many=True, read_only=True, help_text="the sets it is in")
    states = serializers.SerializerMethodField()

    class Meta(DeclarationSerializer.Meta):
        fields = [*DeclarationSerializer.Meta.fields, "sets", "states"]

    @extend_schema_field(StateCountsSerializer)
    def get_states(self, declaration: Declaration) -> dict:
        """Devices in each state: failed, pending, active, inactive, removing."""
        return counts(declaration_rows(declaration))


class DeclarationWriteSerializer(serializers.Serializer):
    """The schema of a declaration as given; store.save_declaration checks it (against
    Apple's declarative schema) and names the key at fault."""

    Type = serializers.CharField(help_text="e.g. com.apple.configuration.passcode.settings")
    Identifier = serializers.CharField(max_length=64, help_text="unique; at most 64 octets")
    Payload = serializers.DictField(help_text="the Type's keys, as Apple's schema defines them")
    ServerToken = serializers.CharField(required=False, help_text="ignored: the portal's own")
    description = serializers.CharField(required=False, allow_blank=True, help_text="a note")


class DeclarationUpdateSerializer(serializers.Serializer):
    """A new revision: the whole Payload (PUT), or any of Payload and description (PATCH).
    Type and Identifier may be given; they must be the declaration's own."""

    Type = serializers.CharField(required=False, help_text="cannot change")
    Identifier = serializers.CharField(required=False, help_text="cannot change")
    Payload = serializers.DictField(required=False)
    ServerToken = serializers.CharField(required=False, help_text="ignored: the portal's own")
    description = serializers.CharField(required=False, allow_blank=True)


class DataUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the data, at most 10 MiB")
    content_type = serializers.CharField(
        required=False,
        help_text="its media type (default: the file part's Content-Type)",
    )
    type = serializers.CharField(
        required=False,
        help_text="the asset Type: com.apple.asset.data (default for a new asset), or a "
        "credential document: com.apple.asset.credential.userpassword / .identity (admins), "
        ".certificate",
    )
    description = serializers.CharField(required=False, allow_blank=True)


class DataJsonSerializer(serializers.Serializer):
    data_base64 = serializers.CharField(help_text="the data, base64 (the JSON body limit holds)")
    content_type = serializers.CharField(help_text="its media type")
    type = serializers.CharField(required=False, help_text="as for a multipart upload")
    description = serializers.CharField(required=False, allow_blank=True)


class CredentialSerializer(serializers.Serializer):
    source = serializers.ChoiceField(
        choices=[ServedAsset.Source.ACME, ServedAsset.Source.SCEP],
        help_text="acme: the portal's ACME directory (a hardware-bound key the device "
        "attests, by default); scep: the portal's SCEP URL",
    )
    options = serializers.DictField(
        required=False,
        default=dict,
        help_text="keys of the credential document over the defaults (ACME: KeyType, KeySize, "
        "HardwareBound, Attest …; SCEP: Key Type, Keysize, Key Usage …)",
    )
    description = serializers.CharField(required=False, allow_blank=True)


class DeclarativeQueuedSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="DeclarativeManagement commands queued")


class ReportedSerializer(serializers.Serializer):
    """The state fields of a row (states.Row): what the device last reported."""

    state = serializers.ChoiceField(choices=list(STATES))
    active = serializers.BooleanField(allow_null=True, help_text="null: not reported")
    valid = serializers.CharField(allow_null=True, help_text="valid, invalid, unknown; or null")
    reasons = serializers.ListField(child=serializers.DictField())
    reported_server_token = serializers.CharField(allow_null=True)
    reported_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, row: Row) -> dict:
        reported = row.reported
        return {
            "state": row.state,
            "active": reported.active if reported else None,
            "valid": reported.valid if reported else None,
            "reasons": row.reasons,
            "reported_server_token": reported.server_token if reported else None,
            "reported_at": serializers.DateTimeField().to_representation(reported.reported_at)
            if reported
            else None,
        }


class DeclarationDeviceStateSerializer(ReportedSerializer):
    """One device's row for a declaration."""

    udid = serializers.CharField()
    serial_number = serializers.CharField()
    device_name = serializers.CharField()

    def to_representation(self, row: Row) -> dict:
        device = row.device
        return {
            "udid": device.udid,
            "serial_number": device.serial_number,
            "device_name": device.device_name,
            **super().to_representation(row),
        }


class DeviceDeclarationStateSerializer(ReportedSerializer):
    """One declaration's row on a device."""

    identifier = serializers.CharField()
    kind = serializers.ChoiceField(choices=Kind.choices)
    type = serializers.CharField(help_text="empty when the portal no longer holds it")
    server_token = serializers.CharField(help_text="the portal's current one (or empty)")

    def to_representation(self, row: Row) -> dict:
        return {
            "identifier": row.identifier,
            "kind": row.kind,
            "type": row.type,
            "server_token": row.server_token,
            **super().to_representation(row),
        }


class StatusReportSerializer(serializers.Serializer):
    last_report_at = serializers.DateTimeField()
    full = serializers.BooleanField(help_text="whether the last report was a FullReport")
    reports = serializers.IntegerField(help_text="reports received so far")
    status_items = serializers.JSONField(help_text="the status items after every report")
    errors = serializers.ListField(
        child=serializers.JSONField(), help_text="the Errors of the last report"
    )


class DeviceDeclarationsSerializer(serializers.Serializer):
    udid = serializers.CharField()
    sets = serializers.ListField(child=serializers.CharField(), help_text="sets it has")
    declarations_token = serializers.CharField(
        allow_null=True, help_text="the DeclarationsToken last advertised (null: never)"
    )
    last_sync_at = serializers.DateTimeField(allow_null=True)
    states = StateCountsSerializer()
    declarations = DeviceDeclarationStateSerializer(many=True)
    status = StatusReportSerializer(allow_null=True, help_text="null: it never reported")


class DeclarationSetSerializer(serializers.ModelSerializer):
    declarations = serializers.SlugRelatedField(many=True, read_only=True, slug_field="identifier")
    device_count = serializers.IntegerField(
        read_only=True, help_text="devices it is assigned to directly"
    )
    group_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = DeclarationSet
        fields = [
            "id",
            "name",
            "description",
            "declarations",
            "device_count",
            "group_count",
            "created_by",
            "created_at",
        ]


class SetWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    description = serializers.CharField(required=False, allow_blank=True)


class DeclarationSetDetailSerializer(DeclarationSetSerializer):
    devices = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="udid", help_text="UDIDs assigned directly"
    )
    groups = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    affected_devices = serializers.SerializerMethodField()

    class Meta(DeclarationSetSerializer.Meta):
        fields = [*DeclarationSetSerializer.Meta.fields, "devices", "groups", "affected_devices"]

    def get_affected_devices(self, declaration_set: DeclarationSet) -> int:
        """Devices that have it, directly or through their group."""
        return len(devices_of_sets([declaration_set.pk]))


class SetDeclarationsSerializer(serializers.Serializer):
    declarations = serializers.ListField(
        child=serializers.CharField(), min_length=1, max_length=1000, help_text="Identifiers"
    )


class SetTargetsSerializer(serializers.Serializer):
    """Devices (UDIDs or serial numbers) and groups (names or ids): at least one."""

    devices = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=2000
    )
    groups = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=1000
    )

    def validate(self, data: dict) -> dict:
        if not data["devices"] and not data["groups"]:
            raise serializers.ValidationError({"devices": ["give devices or groups"]})
        return data
