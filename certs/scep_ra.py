"""The SCEP RA: the certificate that signs CertReps and that clients encrypt requests to.

Why not the CA itself: certmonger (and other OpenSSL-based clients) trust the CA certificate
only as the *issuer* of the CertRep signer, never as the signer itself, unless told out of band.
With an RA issued by our CA, GetCACert returns CA + RA and every client verifies the chain
RA -> CA on its own. It also lets SCEP work with an EC CA: the RA key is always RSA, because
SCEP's key transport is RSA.

The RA is a ServerIdentity (purpose "scep-ra"), so it is never in the registry of issued
device certificates and can never act as a device identity. It is created on first use, and
replaced when it expires or when the active CA changes.
"""

import datetime as dt
import logging

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.db import IntegrityError, transaction

from mdm_portal.audit import audit

from .ca import (
    active_ca,
    ca_certificate,
    ca_private_key,
    key_usage,
    load_stored_key,
    new_private_key,
    private_key_pem,
    sha256_hex,
)
from .models import CertificateAuthority, ServerIdentity

log = logging.getLogger("mdm.scep")

RA_PURPOSE = "scep-ra"
# Renew the RA this long before it expires, so a client never receives an expiring one.
RENEW_BEFORE = dt.timedelta(days=30)
RA_VALIDITY = dt.timedelta(days=2 * 365)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_loaded: dict[tuple[int, str], tuple[x509.Certificate, rsa.RSAPrivateKey]] = {}


def _load(identity: ServerIdentity) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The RA's certificate and key, parsed and decrypted once per process for each
    certificate the row holds (a replacement writes a new one)."""
    version = (identity.pk, identity.certificate_pem)
    if version not in _loaded:
        certificate = x509.load_pem_x509_certificate(identity.certificate_pem.encode())
        _loaded.clear()  # one RA at a time: keep only the current one
        _loaded[version] = (certificate, load_stored_key(identity.private_key_pem))
    return _loaded[version]


def _usable(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Issued by the active CA, and not about to expire."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return certificate.not_valid_after_utc - RENEW_BEFORE > _now()


def _build(ca: CertificateAuthority) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    issuer = ca_certificate(ca)
    key = new_private_key("rsa")
    names = issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = f"{names[0].value if names else 'MDM Portal'} SCEP RA"[:64]
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + RA_VALIDITY, issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # digitalSignature: it signs CertReps; keyEncipherment: requests are encrypted to it
        # (certmonger picks the GetCACert certificate with this usage as the recipient).
        .add_extension(key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
        .sign(ca_private_key(ca), hashes.SHA256())
    )
    return certificate, key


def _store(identity: ServerIdentity | None, certificate: x509.Certificate, key) -> None:
    identity = identity or ServerIdentity(purpose=RA_PURPOSE)
    identity.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    identity.private_key_pem = private_key_pem(key)
    identity.not_after = certificate.not_valid_after_utc
    identity.save()


def ra_credentials() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The RA certificate and key, created or replaced when needed (idempotent)."""
    ca = active_ca()
    issuer = ca_certificate(ca)
    # The key column is read (and decrypted) only when this process has not loaded it yet.
    identity = ServerIdentity.objects.defer("private_key_pem").filter(purpose=RA_PURPOSE).first()
    if identity is not None:
        certificate, key = _load(identity)
        if _usable(certificate, issuer):
            return certificate, key
    try:
        with transaction.atomic():
            identity = ServerIdentity.objects.select_for_update().filter(purpose=RA_PURPOSE).first()
            if identity is not None:
                certificate, key = _load(identity)
                if _usable(certificate, issuer):
                    return certificate, key  # another process replaced it meanwhile
            certificate, key = _build(ca)
            _store(identity, certificate, key)
    except IntegrityError:
        # A concurrent first use created it; theirs is as good as ours.
        return _load(ServerIdentity.objects.get(purpose=RA_PURPOSE))
    audit("scep.ra_created", actor="scep", target=RA_PURPOSE, sha256=sha256_hex(certificate))
    log.info("SCEP RA certificate created (sha256 %s)", sha256_hex(certificate))
    return certificate, key
