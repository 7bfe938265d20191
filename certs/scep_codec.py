"""The SCEP message codec (RFC 8894): reading a pkiMessage, writing a CertRep.

A PKIOperation request is a CMS SignedData (the pkiMessage) whose signed attributes carry the
SCEP fields (transactionID, messageType, senderNonce) and whose content is a CMS EnvelopedData
(the pkcsPKIEnvelope, opened by certs/scep_envelope.py). The answer is a CertRep: a SignedData
signed by the RA whose signed attributes carry the status, and, on SUCCESS, an EnvelopedData
(encrypted to the requester's signing certificate) holding a certs-only SignedData with the
certificate the CA issued. This module also makes the GetCACaps and GetCACert answers. Why an
RA: see certs/scep_ra.py.

It only turns bytes into typed values and back; what a request means (issue, hold, refuse) is
decided by certs/scep_service.py. asn1crypto parses and builds the structures (cryptography
cannot add SCEP's signed attributes); cryptography does every hash and signature.

Two kinds of refusal:
- `NotScepMessage`: the input is not a SCEP message at all (or lacks what a CertRep must echo);
  the view answers HTTP 400 and nothing is recorded.
- `ScepFailure`: a well-formed request that is refused; it is answered with a signed CertRep
  FAILURE carrying a failInfo, logged with its reason and audited. Nothing is issued.
"""

import base64
import binascii
import datetime as dt
import enum
import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from .ca import PrivateKey, active_ca, ca_certificate, ca_private_key
from .cms import CMSError, SignedDataParts, encrypt_for, read_signed_data, verify_signer
from .models import CertificateAuthority
from .scep_ra import ra_credentials

# What GetCACaps advertises: exactly what this module implements. No SHA-1, no DES/3DES.
CAPABILITIES = ("POSTPKIOperation", "Renewal", "SHA-256", "SHA-512", "AES", "SCEPStandard")

CA_RA_CERT_CONTENT_TYPE = "application/x-x509-ca-ra-cert"
PKI_MESSAGE_CONTENT_TYPE = "application/x-pki-message"

# A pkiMessage is a CSR plus two certificates: a few KiB. Anything far larger is not one.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_TRANSACTION_ID = 128  # ScepRequest.transaction_id

# Digests accepted on a request's signature (SHA-1 and MD5 are refused with badAlg).
ACCEPTED_DIGESTS = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

# The SCEP signed attributes (RFC 8894 section 3.2.1), under id-VeriSign pki attributes.
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"


class MessageType(enum.StrEnum):
    CERT_REP = "3"
    RENEWAL_REQ = "17"
    PKCS_REQ = "19"
    CERT_POLL = "20"  # GetCertInitial


MESSAGE_TYPE_NAMES = {
    MessageType.PKCS_REQ: "PKCSReq",
    MessageType.RENEWAL_REQ: "RenewalReq",
    MessageType.CERT_POLL: "GetCertInitial",
}


class PkiStatus(enum.StrEnum):
    SUCCESS = "0"
    FAILURE = "2"
    PENDING = "3"


class FailInfo(enum.StrEnum):
    BAD_ALG = "0"
    BAD_MESSAGE_CHECK = "1"
    BAD_REQUEST = "2"
    BAD_TIME = "3"
    BAD_CERT_ID = "4"


class NotScepMessage(ValueError):
    """The input is not a SCEP message: answered with HTTP 400, not with a CertRep."""


class ScepFailure(Exception):
    """A SCEP request refused with a CertRep FAILURE; `reason` goes to the log and audit."""

    def __init__(self, fail_info: FailInfo, reason: str):
        super().__init__(reason)
        self.fail_info = fail_info
        self.reason = reason


@dataclass(frozen=True)
class PkiMessage:
    """A parsed (not yet verified) pkiMessage: what a CertRep must echo, and the envelope."""

    signed: SignedDataParts
    message_type: str
    transaction_id: str
    sender_nonce: bytes
    envelope: bytes  # the encapsulated content: the DER pkcsPKIEnvelope

    @property
    def digest_algorithm(self) -> str:
        return self.signed.digest_algorithm

    @property
    def type_name(self) -> str:
        return MESSAGE_TYPE_NAMES.get(self.message_type, f"messageType {self.message_type}")


@dataclass(frozen=True)
class ScepKeys:
    """The CA (issues), and the RA (signs CertReps; requests are encrypted to it)."""

    ca: CertificateAuthority
    ca_cert: x509.Certificate
    ra_cert: x509.Certificate
    ra_key: rsa.RSAPrivateKey

    @cached_property
    def ca_key(self) -> PrivateKey:
        # Loaded only for the rare envelope addressed to the CA rather than the RA.
        return ca_private_key(self.ca)

    def recipients(self) -> tuple[x509.Certificate, ...]:
        # Clients encrypt to the RA; some (micromdm's) to every GetCACert certificate.
        return (self.ra_cert, self.ca_cert)

    def key_for(self, certificate: x509.Certificate) -> PrivateKey:
        return self.ra_key if certificate is self.ra_cert else self.ca_key


def scep_keys() -> ScepKeys:
    ca = active_ca()
    ra_cert, ra_key = ra_credentials()
    return ScepKeys(ca, ca_certificate(ca), ra_cert, ra_key)


@dataclass(frozen=True)
class CertRepResult:
    """What the CertRep says. `recipient` is who the issued certificate is encrypted to."""

    status: PkiStatus
    fail_info: FailInfo | None = None
    certificate: x509.Certificate | None = None
    recipient: x509.Certificate | None = None

    @classmethod
    def success(cls, certificate: x509.Certificate, recipient: x509.Certificate) -> "CertRepResult":
        return cls(PkiStatus.SUCCESS, certificate=certificate, recipient=recipient)


# ------------------------------------------------------------------ GetCACaps, GetCACert


def ca_capabilities() -> str:
    """The GetCACaps answer: one capability per line."""
    return "\n".join(CAPABILITIES) + "\n"


def ca_certificates_der() -> bytes:
    """The GetCACert answer: the RA and the CA, as a certs-only (degenerate) PKCS#7."""
    ra_cert, _key = ra_credentials()
    ca_cert = ca_certificate(active_ca())
    return pkcs7.serialize_certificates([ra_cert, ca_cert], serialization.Encoding.DER)


# ------------------------------------------------------------------ decoding the request


def decode_get_message(value: str | None) -> bytes:
    """The DER pkiMessage of a GET PKIOperation, from its `message` query parameter.

    Django has already URL-decoded the parameter once. Clients that did not encode their
    base64 turn '+' into ' ' on the way; clients that encoded it twice leave '%2B'. Both occur.
    """
    if not value:
        raise NotScepMessage("PKIOperation by GET needs a 'message' parameter (base64)")
    if "%" in value:
        value = unquote(value)
    text = "".join(value.replace(" ", "+").split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NotScepMessage("the 'message' parameter is not valid base64") from None


def _string_value(value) -> str:
    """A SCEP string attribute: PrintableString by the RFC; tolerate other string types."""
    if isinstance(value, core.Any):
        for spec in (core.PrintableString, core.UTF8String, core.IA5String):
            try:
                return value.parse(spec).native
            except (ValueError, TypeError):
                continue
        raise NotScepMessage("a SCEP string attribute is not a string")
    return str(value.native)


def _octets_value(value) -> bytes:
    if isinstance(value, core.Any):
        return value.parse(core.OctetString).native
    return value.native


def parse_pki_message(der: bytes) -> PkiMessage:
    """Parse a pkiMessage just enough to answer it; the signature is checked later."""
    try:
        signed = read_signed_data(der, strict=True)  # one signer, as a pkiMessage has
        attributes = signed.signed_attributes()
        missing = [
            name
            for name, oid in (
                ("transactionID", OID_TRANSACTION_ID),
                ("messageType", OID_MESSAGE_TYPE),
                ("senderNonce", OID_SENDER_NONCE),
            )
            if oid not in attributes
        ]
        if missing:
            raise NotScepMessage(f"the pkiMessage lacks {', '.join(missing)}")
        transaction_id = _string_value(attributes[OID_TRANSACTION_ID])
        # It goes into logs and the audit: printable, and as long as ScepRequest keeps it.
        if not (0 < len(transaction_id) <= MAX_TRANSACTION_ID and transaction_id.isprintable()):
            raise NotScepMessage(
                f"the transactionID must be 1 to {MAX_TRANSACTION_ID} printable characters"
            )
        return PkiMessage(
            signed=signed,
            message_type=_string_value(attributes[OID_MESSAGE_TYPE]),
            transaction_id=transaction_id,
            sender_nonce=_octets_value(attributes[OID_SENDER_NONCE]),
            envelope=signed.content or b"",
        )
    except NotScepMessage:
        raise
    except (CMSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise NotScepMessage(f"the body is not a SCEP pkiMessage ({exc})") from None


# ------------------------------------------------------------------ verifying the signature


def verify_pki_message(message: PkiMessage) -> x509.Certificate:
    """Check the pkiMessage's signature; return the signer's certificate (not yet trusted)."""
    if message.digest_algorithm not in ACCEPTED_DIGESTS:
        raise ScepFailure(
            FailInfo.BAD_ALG, f"digest algorithm {message.digest_algorithm!r} is not accepted"
        )
    try:
        # The messageDigest against the encapsulated envelope, and the signature over the
        # signed attributes (where transactionID etc. live).
        return verify_signer(message.signed, message.envelope)
    except CMSError as exc:
        raise ScepFailure(
            FailInfo.BAD_MESSAGE_CHECK, f"the signature does not verify: {exc}"
        ) from None


# ------------------------------------------------------------------ the CertRep


def _attribute(kind: str, value) -> asn1_cms.CMSAttribute:
    return asn1_cms.CMSAttribute({"type": kind, "values": [value]})


def _signed_attributes(
    message: PkiMessage, result: CertRepResult, content: bytes
) -> asn1_cms.CMSAttributes:
    attributes = [
        _attribute("content_type", "data"),
        _attribute("signing_time", asn1_cms.Time({"utc_time": dt.datetime.now(dt.UTC)})),
        _attribute("message_digest", hashlib.sha256(content).digest()),
        _attribute(OID_TRANSACTION_ID, core.PrintableString(message.transaction_id)),
        _attribute(OID_MESSAGE_TYPE, core.PrintableString(MessageType.CERT_REP.value)),
        _attribute(OID_PKI_STATUS, core.PrintableString(result.status.value)),
        _attribute(OID_SENDER_NONCE, core.OctetString(os.urandom(16))),
        _attribute(OID_RECIPIENT_NONCE, core.OctetString(message.sender_nonce)),
    ]
    if result.fail_info is not None:
        attributes.append(_attribute(OID_FAIL_INFO, core.PrintableString(result.fail_info.value)))
    # asn1crypto sorts a SET OF when encoding it, as DER requires.
    return asn1_cms.CMSAttributes(attributes)


def _cert_rep_content(result: CertRepResult) -> bytes:
    """SUCCESS carries the issued certificate, certs-only, enveloped to the requester."""
    if result.status != PkiStatus.SUCCESS:
        # An empty `data` content, not an absent one: OpenSSL-based clients (certmonger)
        # refuse to verify a SignedData whose content is missing.
        return b""
    degenerate = pkcs7.serialize_certificates([result.certificate], serialization.Encoding.DER)
    return encrypt_for(degenerate, result.recipient)  # AES-256-CBC, RSA key transport


def build_cert_rep(message: PkiMessage, result: CertRepResult, keys: ScepKeys) -> bytes:
    """The CertRep answering `message`, signed by the RA (digitalSignature, chains to the CA)."""
    content = _cert_rep_content(result)
    attributes = _signed_attributes(message, result, content)
    # The signature covers the attributes DER-encoded as a SET OF (universal tag 0x31). The RA
    # key is always RSA (certs/scep_ra.py).
    signature = keys.ra_key.sign(attributes.dump(), asym_padding.PKCS1v15(), hashes.SHA256())
    signer = asn1_x509.Certificate.load(keys.ra_cert.public_bytes(serialization.Encoding.DER))
    ca = asn1_x509.Certificate.load(keys.ca_cert.public_bytes(serialization.Encoding.DER))
    signer_info = asn1_cms.SignerInfo(
        {
            "version": "v1",
            "sid": asn1_cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": signer.issuer,
                        "serial_number": signer.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    signed_data = asn1_cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "data", "content": content},
            "certificates": [signer, ca],
            "signer_infos": [signer_info],
        }
    )
    return asn1_cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
