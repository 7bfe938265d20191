"""Apple device attestation for ACME device-attest-01 (draft-ietf-acme-device-attest).

An Apple device answers the challenge with a WebAuthn attestation object (CBOR) of format
"apple": attStmt.x5c is a certificate chain, leaf first, from Apple's Enterprise Attestation
Root CA. The leaf holds the device's new (Secure Enclave) key and, in Apple's extensions, the
device's serial number and UDID and a freshness code: SHA-256 of the challenge token. Each
extension value is the raw bytes (no ASN.1 wrapping), as Apple's leaves carry them.

`verify_attestation` checks the chain against the trusted roots (MDM_ACME_ATTESTATION_ROOTS),
the freshness code, and returns what the attestation proves; any failure is an
AttestationError (ACME type badAttestationStatement) with a detail saying which check failed.
"""

import datetime as dt
import hashlib
import hmac
import logging
from dataclasses import dataclass

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from django.conf import settings

from .acme_problems import BAD_ATTESTATION_STATEMENT, SERVER_INTERNAL, AcmeProblem
from .roots import roots_from_file

log = logging.getLogger("mdm.acme")

OID_SERIAL = x509.ObjectIdentifier("1.2.840.113635.100.8.9.1")
OID_UDID = x509.ObjectIdentifier("1.2.840.113635.100.8.9.2")
OID_FRESHNESS = x509.ObjectIdentifier("1.2.840.113635.100.8.11.1")
MAX_CHAIN = 5
MAX_FIELD = 64  # IssuedCertificate.attested_udid / attested_serial


class AttestationError(AcmeProblem):
    """The attestation does not prove what device-attest-01 needs."""

    def __init__(self, detail: str):
        super().__init__(BAD_ATTESTATION_STATEMENT, detail)


@dataclass(frozen=True)
class Attested:
    """What a valid attestation proves: the device's UDID and serial number ("" when the
    attestation leaves one out) and the public key (DER SubjectPublicKeyInfo) the device made."""

    udid: str
    serial: str
    public_key_der: bytes


def freshness_code(token: str) -> bytes:
    """The nonce an attestation for challenge `token` must carry: SHA-256 of the token."""
    return hashlib.sha256(token.encode()).digest()


def trusted_roots() -> list[x509.Certificate]:
    """The attestation roots from MDM_ACME_ATTESTATION_ROOTS (a PEM file of one or more
    certificates). A missing or unusable file is the server's fault: serverInternal."""
    path = settings.MDM_ACME_ATTESTATION_ROOTS
    try:
        return roots_from_file(path)
    except (OSError, ValueError) as exc:
        log.error("MDM_ACME_ATTESTATION_ROOTS (%s) is unusable: %s", path, exc)
        raise AcmeProblem(
            SERVER_INTERNAL, "the server cannot read its trusted attestation roots"
        ) from None


def _chain(att_obj: bytes) -> list[x509.Certificate]:
    """The x5c certificates of an "apple" attestation object, leaf first."""
    try:
        statement = cbor2.loads(att_obj)
    except Exception:  # noqa: BLE001 - cbor2 raises many kinds on hostile input
        raise AttestationError("attObj is not a CBOR attestation object") from None
    if not isinstance(statement, dict):
        raise AttestationError("attObj is not a CBOR map")
    if statement.get("fmt") != "apple":
        fmt = str(statement.get("fmt"))[:20]
        raise AttestationError(f"attestation format {fmt!r} is not supported (only 'apple')")
    att_stmt = statement.get("attStmt")
    x5c = att_stmt.get("x5c") if isinstance(att_stmt, dict) else None
    if not isinstance(x5c, list) or not x5c or len(x5c) > MAX_CHAIN:
        raise AttestationError(f"attStmt.x5c must be a list of 1 to {MAX_CHAIN} certificates")
    chain = []
    for index, der in enumerate(x5c):
        if not isinstance(der, bytes):
            raise AttestationError(f"attStmt.x5c[{index}] is not a byte string")
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise AttestationError(f"attStmt.x5c[{index}] is not a DER certificate") from None
    return chain


def _verify_chain(chain: list[x509.Certificate], now: dt.datetime) -> None:
    """The leaf must lead to a trusted root through the other certificates, each in date,
    each issuer a CA (cryptography's RFC 5280 path validation, with its web-PKI rules for the
    CA certificates). The leaf itself is an attestation, not a TLS certificate: no key usage,
    EKU or subject name rules apply to it."""
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(trusted_roots()))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    try:
        builder.build_client_verifier().verify(chain[0], chain[1:])
    except verification.VerificationError as exc:
        raise AttestationError(
            f"the attestation chain does not lead to a trusted root: {exc}"
        ) from None


def _extension(leaf: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = leaf.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    # Apple's extensions are unknown to cryptography: their raw value.
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _text(leaf: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> str:
    raw = _extension(leaf, oid)
    if raw is None:
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AttestationError(f"the attested {what} is not UTF-8") from None
    if len(text) > MAX_FIELD or not text.isprintable():
        raise AttestationError(f"the attested {what} is not a plausible value")
    return text


def verify_attestation(att_obj: bytes, token: str, *, now: dt.datetime | None = None) -> Attested:
    """Check an attestation object answering the device-attest-01 challenge `token`."""
    chain = _chain(att_obj)
    _verify_chain(chain, now or dt.datetime.now(dt.UTC))
    leaf = chain[0]
    nonce = _extension(leaf, OID_FRESHNESS)
    if nonce is None:
        raise AttestationError("the attestation carries no freshness code (nonce)")
    if not hmac.compare_digest(nonce, freshness_code(token)):
        raise AttestationError("the attestation's nonce is not SHA-256 of this challenge's token")
    return Attested(
        udid=_text(leaf, OID_UDID, "UDID"),
        serial=_text(leaf, OID_SERIAL, "serial number"),
        public_key_der=leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
