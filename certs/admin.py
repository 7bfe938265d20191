"""Certificates and keys in the admin: read only, and no private key or challenge hash shown.

They are created, imported, approved and revoked by certs' own modules and the management
commands (mdm_init, mdm_pushcert, mdm_scep), which check and audit what they do.
"""

from django.contrib import admin

from mdm_portal.admin import ReadOnlyAdmin

from .models import (
    CertificateAuthority,
    IssuedCertificate,
    PushCertificate,
    PushCertificateRequest,
    ScepChallenge,
    ScepRequest,
    ServerIdentity,
)


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ReadOnlyAdmin):
    list_display = ("name", "active", "not_before", "not_after", "sha256")
    list_filter = ("active",)
    search_fields = ("name", "sha256")
    exclude = ("private_key_pem",)


@admin.register(IssuedCertificate)
class IssuedCertificateAdmin(ReadOnlyAdmin):
    list_display = ("subject", "serial", "not_after", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("subject", "serial", "sha256")


@admin.register(PushCertificate)
class PushCertificateAdmin(ReadOnlyAdmin):
    list_display = ("topic", "subject", "development", "active", "not_after")
    list_filter = ("active", "development")
    search_fields = ("topic", "subject", "serial", "sha256")
    exclude = ("private_key_pem",)


@admin.register(ServerIdentity)
class ServerIdentityAdmin(ReadOnlyAdmin):
    list_display = ("purpose", "not_after", "created_at")
    exclude = ("private_key_pem",)


@admin.register(PushCertificateRequest)
class PushCertificateRequestAdmin(ReadOnlyAdmin):
    list_display = ("public_key_sha256", "created_at", "completed_at")
    exclude = ("private_key_pem",)


@admin.register(ScepChallenge)
class ScepChallengeAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "expires_at", "used_at")
    list_filter = (("used_at", admin.EmptyFieldListFilter),)
    exclude = ("challenge_sha256",)


@admin.register(ScepRequest)
class ScepRequestAdmin(ReadOnlyAdmin):
    list_display = ("transaction_id", "message_type", "subject", "status", "created_at")
    list_filter = ("status", "message_type")
    search_fields = ("transaction_id", "subject")
    # The CSR carries the challenge password in clear; the challenge is named by its hash.
    exclude = ("csr_der", "signer_certificate_der", "challenge")
