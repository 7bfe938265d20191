"""How a device proves who it is on every check-in and server-URL request.

Either an `Mdm-Signature` header (the MDM payload's SignMessage): base64 of a CMS detached
signature over the exact body bytes, made with the device's identity; or its identity as the
TLS client certificate, which a TLS proxy forwards to the portal in a header (nginx's
`$ssl_client_escaped_cert`, or RFC 9440's `:base64:`), the forms tests send directly.
"""

import base64
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

CHECKIN_CT = "application/x-apple-aspen-mdm-checkin"
CONNECT_CT = "application/x-apple-aspen-mdm; charset=UTF-8"


def sign_detached(body: bytes, certificate: x509.Certificate, key) -> str:
    """The Mdm-Signature header value: base64 of a DER CMS detached signature over `body`."""
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(body)
        .add_signer(certificate, key, hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            # Binary: sign the exact bytes (no S/MIME CRLF canonicalisation), as devices do.
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )
    return base64.b64encode(der).decode()


def escaped_pem(certificate: x509.Certificate) -> str:
    """As nginx's $ssl_client_escaped_cert."""
    return quote(certificate.public_bytes(serialization.Encoding.PEM).decode(), safe="")


def rfc9440(certificate: x509.Certificate) -> str:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return ":" + base64.b64encode(der).decode() + ":"
