"""Certificates and keys: the device-identity CA, every certificate it issued, the push cert."""

from django.db import models

from mdm_portal.encryption import EncryptedBinaryField


class CertificateAuthority(models.Model):
    """The device-identity CA. One is active; an old one stays to verify what it issued."""

    name = models.CharField(max_length=200)
    certificate_pem = models.TextField()
    private_key_pem = EncryptedBinaryField()  # PKCS#8 PEM, encrypted with MDM_SECRETS_KEY
    sha256 = models.CharField(max_length=64, unique=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "certificate authorities"

    def __str__(self) -> str:
        return self.name


class IssuedCertificate(models.Model):
    """Every certificate our CA issued: the registry that revocation and binding rely on."""

    authority = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT)
    serial = models.CharField(max_length=64, unique=True)  # hex
    subject = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, unique=True)
    certificate_pem = models.TextField()
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=200, blank=True)
    # How the device got it: SCEP (key made on the device), ACME (the same, and with device
    # attestation the hardware vouches for which device), PKCS#12 (key made here). Blank for
    # certificates issued before this was recorded.
    delivery = models.CharField(max_length=10, blank=True)
    # What Apple's attestation said about the device the key lives on (ACME device-attest-01):
    # when that device Authenticates, its UDID and serial number must be these.
    attested_udid = models.CharField(max_length=64, blank=True)
    attested_serial = models.CharField(max_length=64, blank=True)
    # Which device a certificate identifies, and which enrollment led to it, is recorded by the
    # layers above (devices.CertificateBinding, enrollment.EnrollmentCertificate): certificates
    # know no device.
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} ({self.serial})"


class PushCertificate(models.Model):
    """The APNs push certificate: its topic is what every device must listen to."""

    topic = models.CharField(max_length=200)
    certificate_pem = models.TextField()
    private_key_pem = EncryptedBinaryField()
    sha256 = models.CharField(max_length=64, blank=True)
    serial = models.CharField(max_length=64, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField()
    development = models.BooleanField(default=False)
    # Made by the portal itself (`mdm_pushcert demo`), not by Apple: pushes with it go only to
    # MDM_APNS_URL (a local stand-in), never to Apple's hosts, which would refuse it anyway.
    demo = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.topic


class ServerIdentity(models.Model):
    """A key pair the server itself uses (e.g. signing profiles), issued by our CA.

    Kept apart from IssuedCertificate on purpose: a server certificate is never a device
    identity, so it can never bind to a device.
    """

    purpose = models.CharField(max_length=50, unique=True)
    certificate_pem = models.TextField()
    private_key_pem = EncryptedBinaryField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.purpose


class PushCertificateRequest(models.Model):
    """The customer key and CSR of the vendor-CSR flow: the key never leaves the portal."""

    private_key_pem = EncryptedBinaryField()
    csr_pem = models.TextField()
    public_key_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)  # Apple's certificate imported

    def __str__(self) -> str:
        return f"push CSR {self.public_key_sha256[:12]}"


class ScepChallenge(models.Model):
    """A one-time secret handed out in an enrollment profile, stored hashed: the SCEP challenge
    password, or the ACME ClientIdentifier (`purpose`), each accepted only by its protocol."""

    class Purpose(models.TextChoices):
        SCEP = "scep", "SCEP challenge"
        ACME = "acme", "ACME ClientIdentifier"

    challenge_sha256 = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=4, choices=Purpose.choices, default=Purpose.SCEP)
    # ACME: an order with this ClientIdentifier needs a valid device attestation (the default);
    # False only for an enrollment that allows ACME without it, for older devices.
    attestation_required = models.BooleanField(default=True)
    # What the challenge is for (an enrollment, a renewal for one device) is enrollment's
    # record (enrollment.EnrollmentChallenge).
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"SCEP challenge #{self.pk}"  # never any part of the hash


class ScepRequest(models.Model):
    """A SCEP certificate request, kept for manual approval (PENDING) and GetCertInitial."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ISSUED = "issued"
        REJECTED = "rejected"

    transaction_id = models.CharField(max_length=128, db_index=True)
    message_type = models.CharField(max_length=20)  # PKCSReq or RenewalReq
    subject = models.CharField(max_length=500)
    csr_der = models.BinaryField()
    # The requester's (self-signed or current) certificate, to envelope the answer to.
    signer_certificate_der = models.BinaryField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    challenge = models.ForeignKey(
        ScepChallenge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    renewal_of = models.ForeignKey(
        IssuedCertificate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    certificate = models.ForeignKey(
        IssuedCertificate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["transaction_id", "subject"], name="one_scep_request_per_transaction"
            )
        ]

    def __str__(self) -> str:
        return f"{self.message_type} {self.transaction_id} ({self.status})"


# The ACME server's protocol state lives in its own module (RFC 8555 accounts, nonces, orders,
# authorizations, challenges); imported here so Django registers them with the certs app.
from .acme_models import (  # noqa: E402, F401
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeNonce,
    AcmeOrder,
)

# The key pair of an Automated Device Enrollment server token (enrollment.DepServer holds the
# rest).
from .dep_models import DepTokenKey  # noqa: E402, F401
