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
    # The device this identity belongs to: set at issuance (renewal) or on its first Authenticate.
    device = models.ForeignKey(
        "devices.Device",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="certificates",
    )
    bound_at = models.DateTimeField(null=True, blank=True)
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
    not_after = models.DateTimeField()
    development = models.BooleanField(default=False)
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
