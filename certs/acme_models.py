"""The ACME server's protocol state (RFC 8555): accounts, nonces, orders, authorizations and
challenges. Imported by certs/models.py, so Django finds them in the certs app.

Foreign keys to the other certs models are by name ("certs.ScepChallenge"): this module
imports nothing of certs/models.py, which imports it.
"""

from django.db import models
from django.utils import timezone


class AcmeAccount(models.Model):
    """An ACME account: a public key (JWK) that signs the account's requests.

    Anyone may create one; what authorises a certificate is the one-time ClientIdentifier that
    an order spends, and the device attestation."""

    class Status(models.TextChoices):
        VALID = "valid"
        DEACTIVATED = "deactivated"

    jwk = models.JSONField()  # the public key only
    # RFC 7638 thumbprint (base64url SHA-256): one account per key.
    thumbprint = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.VALID)
    contact = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"ACME account #{self.pk}"


class AcmeNonce(models.Model):
    """A Replay-Nonce we handed out and that no request has used yet. Kept in the database so
    that every web process accepts the nonces the others issued, and each one once only (the
    row is deleted when it is used; old rows are pruned)."""

    value = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return "ACME nonce"


class AcmeOrder(models.Model):
    """An order for one certificate, by one account, authorised by one ClientIdentifier."""

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        PROCESSING = "processing"
        VALID = "valid"
        INVALID = "invalid"

    account = models.ForeignKey(AcmeAccount, on_delete=models.CASCADE, related_name="orders")
    # The ClientIdentifier the order used up: issuance announces it (certificate_issued), so the
    # enrollment that handed it out links the certificate, as for a SCEP challenge.
    challenge = models.ForeignKey(
        "certs.ScepChallenge", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    error = models.JSONField(null=True, blank=True)  # the problem document of an invalid order
    certificate = models.ForeignKey(
        "certs.IssuedCertificate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"ACME order #{self.pk} ({self.status})"


class AcmeAuthorization(models.Model):
    """The authorization of an order's identifier (a permanent-identifier: the device's
    ClientIdentifier), and what its device attestation proved."""

    class Status(models.TextChoices):
        PENDING = "pending"
        VALID = "valid"
        INVALID = "invalid"
        DEACTIVATED = "deactivated"
        EXPIRED = "expired"

    order = models.ForeignKey(AcmeOrder, on_delete=models.CASCADE, related_name="authorizations")
    identifier_type = models.CharField(max_length=32)
    # The ClientIdentifier in clear, echoed in the order as RFC 8555 wants: it was used up when
    # the order was made, so it opens nothing any more.
    identifier_value = models.CharField(max_length=255)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    # From a valid device attestation: the device's UDID and serial number, and the attested
    # key (DER SubjectPublicKeyInfo), which the CSR at finalize must carry.
    attested_udid = models.CharField(max_length=64, blank=True)
    attested_serial = models.CharField(max_length=64, blank=True)
    attested_public_key = models.BinaryField(blank=True, default=b"")

    def __str__(self) -> str:
        return f"ACME authorization #{self.pk} ({self.status})"


class AcmeChallenge(models.Model):
    """A challenge the server offers for an authorization: device-attest-01."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        VALID = "valid"
        INVALID = "invalid"

    authorization = models.ForeignKey(
        AcmeAuthorization, on_delete=models.CASCADE, related_name="challenges"
    )
    type = models.CharField(max_length=32)
    # Random, base64url; its SHA-256 is the freshness code the attestation must carry.
    token = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    validated_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ACME {self.type} challenge #{self.pk} ({self.status})"
