"""The library's and the enrollments' API representations. A profile's payload is never
returned (it may hold passwords or private keys); an enrollment carries its link."""

from rest_framework import serializers

from commands.catalog import ALL_RIGHTS

from .enrollments import enrollment_link, enrollment_state
from .models import Enrollment, Profile, ProfileAssignment

STATES = ["active", "inactive", "expired", "used_up"]


class ProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = Profile
        fields = [
            "id",
            "name",
            "identifier",
            "uuid",
            "version",
            "sha256",
            "description",
            "uploaded_by",
            "created_at",
            "updated_at",
        ]


class AssignmentSerializer(serializers.ModelSerializer):
    device = serializers.CharField(source="device.udid", allow_null=True, default=None)
    group = serializers.CharField(source="group.name", allow_null=True, default=None)

    class Meta:
        model = ProfileAssignment
        fields = ["device", "group", "created_by", "created_at"]


class ProfileDetailSerializer(ProfileSerializer):
    assignments = AssignmentSerializer(many=True, read_only=True)
    assigned_devices = serializers.IntegerField(help_text="managed devices that should have it")
    installed_on = serializers.IntegerField(help_text="devices that report this version")

    class Meta(ProfileSerializer.Meta):
        fields = [*ProfileSerializer.Meta.fields, "assignments", "assigned_devices", "installed_on"]


class ProfileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the .mobileconfig (XML, binary or signed)")
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=255)


class AssignSerializer(serializers.Serializer):
    """Exactly one of device (UDID) and group (name or id)."""

    device = serializers.CharField(required=False)
    group = serializers.CharField(required=False)


class AssignResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="devices an InstallProfile was queued for")
    skipped = serializers.IntegerField(
        help_text="devices without the right to install profiles, or unreachable"
    )


class UnassignResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="devices a RemoveProfile was queued for")
    skipped = serializers.IntegerField(help_text="devices that could not take it now")


class EnrollmentSerializer(serializers.ModelSerializer):
    link = serializers.SerializerMethodField()
    acme_attestation = serializers.BooleanField(
        help_text="ACME: whether devices must attest (always true for another identity)"
    )
    state = serializers.SerializerMethodField()
    group = serializers.CharField(source="group.name", allow_null=True, default=None)

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "name",
            "link",
            "state",
            "active",
            "access_rights",
            "identity",
            "acme_attestation",
            "sign_message",
            "check_out_when_removed",
            "group",
            "expires_at",
            "max_uses",
            "uses",
            "created_by",
            "created_at",
        ]

    def get_link(self, enrollment) -> str:
        """The page users open to enroll (MDM_PUBLIC_URL/enroll/<token>/)."""
        return enrollment_link(enrollment)

    def get_state(self, enrollment) -> str:
        return enrollment_state(enrollment)


class EnrollmentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    access_rights = serializers.IntegerField(
        default=ALL_RIGHTS,
        min_value=1,
        max_value=ALL_RIGHTS,
        help_text="AccessRights bits: never 0, 2 needs 1, 128 needs 64",
    )
    identity = serializers.ChoiceField(
        choices=Enrollment.Identity.choices,
        default=Enrollment.Identity.SCEP,
        help_text="acme (iOS 16, macOS 13.1 and later: a hardware key the device attests; "
        "recommended), scep (older OS versions) or pkcs12 (a key made on the server, in the "
        "profile)",
    )
    acme_attestation = serializers.BooleanField(
        default=True,
        help_text="ACME only: devices must attest their key and identity in hardware; false "
        "lets devices that cannot attest enroll (400 with another identity)",
    )
    sign_message = serializers.BooleanField(default=False)
    check_out_when_removed = serializers.BooleanField(default=True)
    group = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="devices enrolled join this group (name or id; a new name creates it)",
    )
    expires_days = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=36500
    )
    max_uses = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=1_000_000
    )
