"""The certificates' API representations: dates, subjects and fingerprints, never a private
key or a SCEP challenge."""

from rest_framework import serializers

from .expiry import kind_labels
from .issued import DELIVERIES
from .models import IssuedCertificate, ScepRequest


class PushCertificateStatusSerializer(serializers.Serializer):
    topic = serializers.CharField()
    kind = serializers.ChoiceField(choices=["production", "development"])
    demo = serializers.BooleanField(
        help_text="a demo certificate made by the portal (`mdm_pushcert demo`), not by Apple: "
        "pushes go only to the local APNs stand-in (MDM_APNS_URL), never to Apple"
    )
    subject = serializers.CharField()
    serial = serializers.CharField()
    sha256 = serializers.CharField()
    not_before = serializers.DateTimeField(allow_null=True)
    not_after = serializers.DateTimeField()
    days_left = serializers.IntegerField()
    expired = serializers.BooleanField()
    imported_at = serializers.DateTimeField()


class PushCertificateSerializer(serializers.Serializer):
    push_certificate = PushCertificateStatusSerializer(allow_null=True)


class PushCertificateImportSerializer(serializers.Serializer):
    """A PKCS#12 (p12 and its password), or Apple's certificate (PEM or DER) with its key
    (PEM; without it, the key the portal kept from `mdm_pushcert csr`)."""

    p12 = serializers.FileField(required=False)
    certificate = serializers.FileField(required=False)
    key = serializers.FileField(required=False)
    password = serializers.CharField(required=False, allow_blank=True, default="")
    force = serializers.BooleanField(
        default=False, help_text="accept a new topic (every enrolled device must re-enroll)"
    )


class PushCertificateImportResultSerializer(serializers.Serializer):
    push_certificate = PushCertificateStatusSerializer()
    previous_topic = serializers.CharField(allow_null=True)
    renewal = serializers.BooleanField(help_text="same topic as the certificate it replaces")
    orphaned = serializers.IntegerField(help_text="enrolled devices left on another topic")
    replaced_demo = serializers.BooleanField(
        help_text="it replaced the demo certificate: devices enrolled with it must enroll again"
    )


SEVERITIES = ["ok", "notice", "warning", "critical", "expired", "error"]


class CertificateEntrySerializer(serializers.Serializer):
    """One certificate the portal depends on (certs.expiry.certificate_inventory)."""

    kind = serializers.ChoiceField(choices=[])  # certs' kinds and the registered ones: __init__
    label = serializers.CharField(help_text="the kind in words")
    name = serializers.CharField()
    subject = serializers.CharField()
    not_after = serializers.DateTimeField(allow_null=True)
    days_left = serializers.IntegerField(allow_null=True)
    severity = serializers.ChoiceField(choices=SEVERITIES)
    threshold = serializers.IntegerField(allow_null=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read when used, not at import: the layers above register their kinds in ready().
        self.fields["kind"].choices = list(kind_labels())


class ScepRequestSerializer(serializers.ModelSerializer):
    renews = serializers.CharField(source="renewal_of.serial", allow_null=True, default=None)
    certificate = serializers.CharField(source="certificate.serial", allow_null=True, default=None)
    enrollment = serializers.SerializerMethodField()

    class Meta:
        model = ScepRequest
        fields = [
            "id",
            "transaction_id",
            "message_type",
            "subject",
            "status",
            "enrollment",
            "renews",
            "certificate",
            "created_at",
            "decided_at",
            "decided_by",
        ]

    def get_enrollment(self, request) -> str | None:
        """The enrollment it is for (its challenge's, or that of the certificate it renews)."""
        enrollment_of = self.context.get("enrollment_of")
        found = enrollment_of(request) if enrollment_of else None
        return found.name if found is not None else None


class ScepRejectSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class IssuedSerializer(serializers.Serializer):
    serial = serializers.CharField()
    subject = serializers.CharField()
    not_after = serializers.DateTimeField()


class IssuedCertificateSerializer(serializers.ModelSerializer):
    """A device identity our CA issued: how it was delivered and what an attestation proved."""

    delivery = serializers.ChoiceField(
        choices=["", *DELIVERIES],
        help_text="acme, scep or pkcs12; empty for a certificate issued before it was recorded",
    )
    attested_udid = serializers.CharField(
        help_text="ACME with attestation: the UDID the device's hardware vouched for (its "
        "Authenticate must carry it); empty otherwise"
    )
    attested_serial = serializers.CharField(
        help_text="ACME with attestation: the serial number the hardware vouched for"
    )
    device = serializers.CharField(
        source="binding.device.udid",
        allow_null=True,
        default=None,
        help_text="the UDID of the device it is bound to (null until its first Authenticate)",
    )

    class Meta:
        model = IssuedCertificate
        fields = [
            "id",
            "serial",
            "subject",
            "sha256",
            "delivery",
            "attested_udid",
            "attested_serial",
            "device",
            "not_before",
            "not_after",
            "revoked_at",
            "revocation_reason",
            "created_at",
        ]
