"""The key pair behind an Automated Device Enrollment server token (certs knows keys only).

The portal makes the key and a certificate for it; the admin uploads the certificate to Apple
Business Manager (or School Manager), which envelopes the server token (.p7m) to it. What the
token holds, and the DEP server it belongs to, are enrollment's (enrollment.DepServer).
"""

from django.db import models

from mdm_portal.encryption import EncryptedBinaryField


class DepTokenKey(models.Model):
    """A private key (encrypted at rest) and the self-signed certificate ABM encrypts to."""

    certificate_pem = models.TextField()
    private_key_pem = EncryptedBinaryField()  # PKCS#8 PEM, encrypted with MDM_SECRETS_KEY
    sha256 = models.CharField(max_length=64, unique=True)  # of the certificate (DER)
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"DEP token key {self.sha256[:12]}"
