"""Who is talking: the device identity behind a check-in or server-URL request.

The certificate comes from the TLS proxy (a header, when MDM_CLIENT_CERT_HEADER names one) or
else from the Mdm-Signature header (a CMS detached signature over the exact body). Either way it
must chain to our CA, be in date, be in our registry of issued certificates and not be revoked.
"""

import base64
import binascii
import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from .ca import ca_certificate, sha256_hex
from .cms import CMSError, verify_detached
from .models import CertificateAuthority, IssuedCertificate

log = logging.getLogger(__name__)


class IdentityError(Exception):
    """The request does not prove a trusted device identity. The reason goes to the log."""


@dataclass(frozen=True)
class DeviceIdentity:
    certificate: x509.Certificate
    record: IssuedCertificate
    method: str  # "client-cert-header" or "mdm-signature"


def certificate_from_header(value: str) -> x509.Certificate:
    """Parse a forwarded client certificate: RFC 9440 `:base64-DER:` or URL-escaped PEM."""
    value = value.strip()
    try:
        if value.startswith(":") and value.endswith(":") and len(value) > 2:
            return x509.load_der_x509_certificate(base64.b64decode(value[1:-1], validate=True))
        return x509.load_pem_x509_certificate(unquote(value).encode())
    except (ValueError, binascii.Error) as exc:
        raise IdentityError(f"the client certificate header holds no certificate: {exc}") from None


def certificate_from_signature(header_value: str, body: bytes) -> x509.Certificate:
    try:
        signature = base64.b64decode("".join(header_value.split()), validate=True)
    except (ValueError, binascii.Error):
        raise IdentityError("Mdm-Signature is not valid base64") from None
    try:
        return verify_detached(signature, body)
    except CMSError as exc:
        raise IdentityError(f"Mdm-Signature: {exc}") from None


def presented_certificate(
    body: bytes, client_certificate: str, mdm_signature: str
) -> tuple[x509.Certificate, str]:
    """The certificate the device presents: the TLS proxy's header value (only when the portal
    trusts that header; the caller decides), or else the Mdm-Signature over `body`."""
    if client_certificate:
        return certificate_from_header(client_certificate), "client-cert-header"
    if mdm_signature:
        return certificate_from_signature(mdm_signature, body), "mdm-signature"
    raise IdentityError("no client certificate and no Mdm-Signature")


def _issuing_authority(certificate: x509.Certificate) -> CertificateAuthority:
    # The private key stays undecrypted: checking a chain needs only the certificate.
    for ca in CertificateAuthority.objects.defer("private_key_pem"):
        issuer = ca_certificate(ca)
        try:
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    raise IdentityError("the certificate does not chain to this portal's CA")


def verify_certificate(certificate: x509.Certificate) -> IssuedCertificate:
    """Check that `certificate` is a current, unrevoked identity our CA issued."""
    ca = _issuing_authority(certificate)
    now = dt.datetime.now(dt.UTC)
    if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
        raise IdentityError("the certificate is not within its validity period")
    if not (ca.not_before <= now <= ca.not_after):
        raise IdentityError("the issuing CA is not within its validity period")
    fingerprint = sha256_hex(certificate)
    record = IssuedCertificate.objects.filter(sha256=fingerprint).first()
    if record is None:
        raise IdentityError(
            f"certificate {fingerprint} is not in the registry of issued certificates"
        )
    if record.revoked_at is not None:
        raise IdentityError(f"certificate {fingerprint} was revoked at {record.revoked_at}")
    return record


def authenticate_device(
    body: bytes, *, client_certificate: str = "", mdm_signature: str = ""
) -> DeviceIdentity:
    """The verified identity of the device that sent `body`, or raise IdentityError.

    `client_certificate` is the TLS proxy's forwarded certificate ("" when there is none or
    the header is not trusted), `mdm_signature` the Mdm-Signature header.
    """
    certificate, method = presented_certificate(body, client_certificate, mdm_signature)
    record = verify_certificate(certificate)
    return DeviceIdentity(certificate=certificate, record=record, method=method)
