"""The SCEP server (RFC 8894): capabilities, the CA and RA certificates, and PKIOperation.

A PKIOperation request is a CMS SignedData (the pkiMessage) whose signed attributes carry the
SCEP fields (transactionID, messageType, senderNonce) and whose content is a CMS EnvelopedData
(the pkcsPKIEnvelope) encrypted to our RA (or CA): inside is a PKCS#10 CSR (PKCSReq,
RenewalReq) or an IssuerAndSubject (CertPoll, a.k.a. GetCertInitial). The answer is a CertRep:
a SignedData signed by the RA whose signed attributes carry the status, and, on SUCCESS, an
EnvelopedData (encrypted to the requester's signing certificate) holding a certs-only
SignedData with the certificate the CA issued. Why an RA: see certs/scep_ra.py.

asn1crypto parses and builds the structures (cryptography cannot add SCEP's signed attributes);
cryptography does every hash, signature, RSA and AES operation.

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
import hmac
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mdm_portal.audit import audit

from .ca import CAError, PrivateKey, active_ca, ca_certificate, issue_certificate, load_stored_key
from .challenges import consume_challenge
from .cms import CMSError, encrypt_for, verify_detached
from .identity import IdentityError, verify_certificate
from .models import CertificateAuthority, IssuedCertificate, ScepRequest
from .scep_ra import ra_credentials

log = logging.getLogger("mdm.scep")

# What GetCACaps advertises: exactly what this module implements. No SHA-1, no DES/3DES.
CAPABILITIES = ("POSTPKIOperation", "Renewal", "SHA-256", "SHA-512", "AES", "SCEPStandard")

CA_RA_CERT_CONTENT_TYPE = "application/x-x509-ca-ra-cert"
PKI_MESSAGE_CONTENT_TYPE = "application/x-pki-message"

# A pkiMessage is a CSR plus two certificates: a few KiB. Anything far larger is not one.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_TRANSACTION_ID = 128  # ScepRequest.transaction_id

# Digests accepted on a request's signature (SHA-1 and MD5 are refused with badAlg).
ACCEPTED_DIGESTS = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

# Content-encryption algorithms accepted in a request's envelope: name -> key length.
ACCEPTED_CIPHERS = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}

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


class ScepAdminError(ValueError):
    """An approval or rejection that cannot be done (unknown or already decided request)."""


class IssuerAndSubject(core.Sequence):
    """The content of a CertPoll (GetCertInitial): which request the client polls for."""

    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


@dataclass(frozen=True)
class PkiMessage:
    """A parsed (not yet verified) pkiMessage: what a CertRep must echo, and the envelope."""

    der: bytes
    message_type: str
    transaction_id: str
    sender_nonce: bytes
    digest_algorithm: str
    envelope: bytes  # the encapsulated content: the DER pkcsPKIEnvelope

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
        return load_stored_key(self.ca.private_key_pem)

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


def actor_name(actor: object) -> str:
    """A User's username, or the name of a system actor, as ScepRequest.decided_by holds it."""
    name = actor.get_username() if hasattr(actor, "get_username") else str(actor)
    return name[:150]


def _attribute_values(signer_info) -> dict[str, core.Any]:
    """The signed attributes by dotted OID: the first value of each."""
    values = {}
    for attribute in signer_info["signed_attrs"]:
        values[attribute["type"].dotted] = attribute["values"][0]
    return values


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
        info = asn1_cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise NotScepMessage("the message is not a CMS SignedData")
        signed_data = info["content"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise NotScepMessage(f"a pkiMessage has one signer, not {len(signer_infos)}")
        signer_info = signer_infos[0]
        attributes = _attribute_values(signer_info)
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
        envelope = signed_data["encap_content_info"]["content"].native or b""
        transaction_id = _string_value(attributes[OID_TRANSACTION_ID])
        # It goes into logs and the audit: printable, and as long as ScepRequest keeps it.
        if not (0 < len(transaction_id) <= MAX_TRANSACTION_ID and transaction_id.isprintable()):
            raise NotScepMessage(
                f"the transactionID must be 1 to {MAX_TRANSACTION_ID} printable characters"
            )
        return PkiMessage(
            der=der,
            message_type=_string_value(attributes[OID_MESSAGE_TYPE]),
            transaction_id=transaction_id,
            sender_nonce=_octets_value(attributes[OID_SENDER_NONCE]),
            digest_algorithm=signer_info["digest_algorithm"]["algorithm"].native,
            envelope=envelope,
        )
    except NotScepMessage:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise NotScepMessage(f"the body is not a SCEP pkiMessage ({exc})") from None


# ------------------------------------------------------------------ verifying and decrypting


def verify_signer(message: PkiMessage) -> x509.Certificate:
    """Check the pkiMessage's signature; return the signer's certificate (not yet trusted)."""
    if message.digest_algorithm not in ACCEPTED_DIGESTS:
        raise ScepFailure(
            FailInfo.BAD_ALG, f"digest algorithm {message.digest_algorithm!r} is not accepted"
        )
    try:
        # verify_detached checks messageDigest against the encapsulated envelope and the
        # signature over the signed attributes (where transactionID etc. live).
        return verify_detached(message.der, message.envelope)
    except CMSError as exc:
        raise ScepFailure(
            FailInfo.BAD_MESSAGE_CHECK, f"the signature does not verify: {exc}"
        ) from None


def _enveloped_data(envelope: bytes) -> asn1_cms.EnvelopedData:
    """The EnvelopedData, wrapped in a ContentInfo (RFC 8894) or, as some clients send, bare."""
    try:
        info = asn1_cms.ContentInfo.load(envelope, strict=True)
        if info["content_type"].native == "enveloped_data":
            return info["content"]
    except (ValueError, TypeError, KeyError):
        pass
    try:
        enveloped = asn1_cms.EnvelopedData.load(envelope, strict=True)
        enveloped["encrypted_content_info"]  # noqa: B018 - force the parse now
        return enveloped
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the content is not a CMS EnvelopedData") from None


def _matches(rid, certificate: x509.Certificate) -> bool:
    """Whether a RecipientIdentifier names `certificate`."""
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    if rid.name == "issuer_and_serial_number":
        return (
            rid.chosen["issuer"] == parsed.issuer
            and rid.chosen["serial_number"].native == parsed.serial_number
        )
    return rid.name == "subject_key_identifier" and rid.chosen.native == parsed.key_identifier


def _recipient_for(enveloped: asn1_cms.EnvelopedData, keys: ScepKeys):
    """(KeyTransRecipientInfo, private key) of the recipient info addressed to us."""
    for recipient in enveloped["recipient_infos"]:
        if recipient.name != "ktri":
            continue
        for certificate in keys.recipients():
            if _matches(recipient.chosen["rid"], certificate):
                return recipient.chosen, keys.key_for(certificate)
    raise ScepFailure(FailInfo.BAD_REQUEST, "the envelope is not encrypted to this server")


def open_envelope(envelope: bytes, keys: ScepKeys) -> bytes:
    """Decrypt the pkcsPKIEnvelope (RSA key transport, AES-CBC content) with the RA/CA key."""
    enveloped = _enveloped_data(envelope)
    try:
        content_info = enveloped["encrypted_content_info"]
        algorithm = content_info["content_encryption_algorithm"]
        cipher_name = algorithm["algorithm"].native
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the EnvelopedData is malformed") from None
    # Algorithm checks come first and are told apart (badAlg): they read clear data only.
    if cipher_name not in ACCEPTED_CIPHERS:
        raise ScepFailure(FailInfo.BAD_ALG, f"content encryption {cipher_name!r} is not accepted")
    recipient, key = _recipient_for(enveloped, keys)
    key_algorithm = recipient["key_encryption_algorithm"]["algorithm"].native
    if key_algorithm != "rsaes_pkcs1v15":
        raise ScepFailure(FailInfo.BAD_ALG, f"key transport {key_algorithm!r} is not accepted")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ScepFailure(FailInfo.BAD_ALG, "the envelope is encrypted to a key that is not RSA")
    # From here every failure reads the same (badRequest, one message): different answers for
    # a bad RSA padding, a bad key length or a bad AES padding would be a decryption oracle.
    try:
        return _decrypt(recipient, content_info, key, ACCEPTED_CIPHERS[cipher_name])
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the envelope could not be decrypted") from None


def _decrypt(recipient, content_info, key: rsa.RSAPrivateKey, key_length: int) -> bytes:
    content_key = key.decrypt(recipient["encrypted_key"].native, asym_padding.PKCS1v15())
    iv = content_info["content_encryption_algorithm"]["parameters"].native
    ciphertext = content_info["encrypted_content"].native
    if len(content_key) != key_length or not isinstance(iv, bytes) or len(iv) != 16:
        raise ValueError("bad key or IV")
    if not ciphertext:
        raise ValueError("no encrypted content")
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _load_csr(content: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_der_x509_csr(content)
        valid = csr.is_signature_valid
    except (ValueError, TypeError):
        raise ScepFailure(
            FailInfo.BAD_REQUEST, "the envelope does not hold a PKCS#10 CSR"
        ) from None
    if not valid:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the CSR's signature does not verify")
    return csr


def challenge_password(csr: x509.CertificateSigningRequest) -> str:
    """The CSR's challengePassword attribute, or '' when it has none."""
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return ""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the challengePassword is not text") from None


def _load_issuer_and_subject(content: bytes) -> IssuerAndSubject:
    try:
        ias = IssuerAndSubject.load(content, strict=True)
        ias["subject"].native  # noqa: B018 - force the parse now
        return ias
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(
            FailInfo.BAD_REQUEST, "the envelope does not hold an IssuerAndSubject"
        ) from None


def _public_key_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _same_key(stored_certificate_der: bytes, signer: x509.Certificate) -> bool:
    stored = x509.load_der_x509_certificate(bytes(stored_certificate_der))
    return hmac.compare_digest(_public_key_der(stored), _public_key_der(signer))


def _require_rsa_recipient(signer: x509.Certificate) -> None:
    # The issued certificate is sent back encrypted to the signer's key by RSA key transport.
    if not isinstance(signer.public_key(), rsa.RSAPublicKey):
        raise ScepFailure(FailInfo.BAD_ALG, "the request is not signed with an RSA key")


# ------------------------------------------------------------------ the operations


def pki_operation(der: bytes) -> bytes:
    """Handle one PKIOperation: the DER pkiMessage in, the DER CertRep out.

    Raises NotScepMessage (HTTP 400) when `der` is no pkiMessage, CAError when there is no CA.
    """
    if len(der) > MAX_MESSAGE_BYTES:
        raise NotScepMessage(f"the pkiMessage is over {MAX_MESSAGE_BYTES} bytes")
    message = parse_pki_message(der)
    keys = scep_keys()
    try:
        result = _handle(message, keys)
    except ScepFailure as failure:
        _record_failure(message, failure)
        result = CertRepResult(PkiStatus.FAILURE, fail_info=failure.fail_info)
    return build_cert_rep(message, result, keys)


def _record_failure(message: PkiMessage, failure: ScepFailure) -> None:
    log.warning(
        "SCEP %s refused (transaction %s, failInfo %s): %s",
        message.type_name,
        message.transaction_id,
        failure.fail_info.name,
        failure.reason,
    )
    audit(
        "scep.refused",
        actor="scep",
        target=message.transaction_id,
        message_type=message.type_name,
        fail_info=failure.fail_info.name,
        reason=failure.reason,
    )


def _handle(message: PkiMessage, keys: ScepKeys) -> CertRepResult:
    signer = verify_signer(message)
    if message.message_type == MessageType.PKCS_REQ:
        return _enroll(message, signer, keys)
    if message.message_type == MessageType.RENEWAL_REQ:
        return _renew(message, signer, keys)
    if message.message_type == MessageType.CERT_POLL:
        return _poll(message, signer, keys)
    raise ScepFailure(FailInfo.BAD_REQUEST, f"messageType {message.message_type!r} is not served")


def _enroll(message: PkiMessage, signer: x509.Certificate, keys: ScepKeys) -> CertRepResult:
    """PKCSReq: a first certificate, authorised by the CSR's challenge password.

    A PKCSReq signed by a current identity of ours, for the same subject, is a renewal instead:
    what the "Renewal" capability meant before RFC 8894 added RenewalReq, and how certmonger
    renews.
    """
    current = _current_identity(signer)
    _require_rsa_recipient(signer)
    csr = _load_csr(open_envelope(message.envelope, keys))
    if current is not None and csr.subject == signer.subject:
        return _renew_csr(current, message, csr, signer)
    previous = _previous_request(message, csr, signer)
    if isinstance(previous, CertRepResult):
        return previous
    password = challenge_password(csr)
    with transaction.atomic():
        # One transaction: if issuing fails, the one-time challenge is not used up.
        accepted, challenge = consume_challenge(password)
        if not accepted:
            reason = "no challenge password" if not password else "wrong, expired or used"
            raise ScepFailure(FailInfo.BAD_REQUEST, f"challenge refused: {reason}")
        request = _new_request(message, csr, signer, reuse=previous)
        request.challenge = challenge
        request.enrollment = challenge.enrollment if challenge else None
        return _issue_or_hold(request, csr, signer, device=_challenge_device(challenge))


def _challenge_device(challenge):
    """The device a challenge is bound to (a renewal profile's challenge), else None."""
    return getattr(challenge, "device", None) if challenge is not None else None


def _current_identity(signer: x509.Certificate) -> IssuedCertificate | None:
    """The record of `signer` when it is a current identity our CA issued, else None."""
    if signer.issuer == signer.subject:
        return None  # self-signed: a first request, authorised by its challenge
    try:
        return verify_certificate(signer)
    except IdentityError as exc:
        log.info("SCEP PKCSReq signer is no current identity (%s): the challenge decides", exc)
        return None


def _renew(message: PkiMessage, signer: x509.Certificate, keys: ScepKeys) -> CertRepResult:
    """RenewalReq: signed by the device's current identity, which replaces the challenge."""
    try:
        current = verify_certificate(signer)
    except IdentityError as exc:
        raise ScepFailure(
            FailInfo.BAD_MESSAGE_CHECK, f"not signed by a current identity: {exc}"
        ) from None
    _require_rsa_recipient(signer)
    csr = _load_csr(open_envelope(message.envelope, keys))
    # The renewed certificate is the same identity: the subject may not change with it.
    if csr.subject != signer.subject:
        raise ScepFailure(FailInfo.BAD_REQUEST, "a renewal must keep the certificate's subject")
    return _renew_csr(current, message, csr, signer)


def _renew_csr(
    current: IssuedCertificate,
    message: PkiMessage,
    csr: x509.CertificateSigningRequest,
    signer: x509.Certificate,
) -> CertRepResult:
    """A new certificate for the identity `current` (verified), bound to the same device."""
    previous = _previous_request(message, csr, signer)
    if isinstance(previous, CertRepResult):
        return previous
    with transaction.atomic():
        request = _new_request(message, csr, signer, reuse=previous)
        request.renewal_of = current
        request.enrollment = current.enrollment
        return _issue_or_hold(request, csr, signer, device=current.device)


def _poll(message: PkiMessage, signer: x509.Certificate, keys: ScepKeys) -> CertRepResult:
    """CertPoll (GetCertInitial): the state of an earlier request with this transactionID."""
    ias = _load_issuer_and_subject(open_envelope(message.envelope, keys))
    candidates = list(ScepRequest.objects.filter(transaction_id=message.transaction_id))
    if len(candidates) > 1:
        subject = ias["subject"].dump()
        candidates = [r for r in candidates if _csr_subject_der(r) == subject]
    if len(candidates) != 1:
        raise ScepFailure(FailInfo.BAD_CERT_ID, "no request with this transactionID")
    request = candidates[0]
    # Only the requester's key may poll: the answer is encrypted to the poll's signer.
    if not _same_key(request.signer_certificate_der, signer):
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the poll is not signed by the requester")
    return _result_of(request, signer)


def _csr_subject_der(request: ScepRequest) -> bytes:
    return x509.load_der_x509_csr(bytes(request.csr_der)).subject.public_bytes()


def _previous_request(
    message: PkiMessage, csr: x509.CertificateSigningRequest, signer: x509.Certificate
) -> CertRepResult | ScepRequest | None:
    """What an earlier request with this transactionID and subject means for this one.

    - the same signer and CSR: a resent request, which gets the first answer again
      (CertRepResult);
    - the same requester's key, earlier request decided: a new request reusing the ID, as
      certmonger's renewals do; its row is reused (ScepRequest), one row per ID and subject;
    - otherwise the ID is taken: FAILURE.
    None: no earlier request.
    """
    subject = csr.subject.rfc4514_string()[:500]
    request = ScepRequest.objects.filter(
        transaction_id=message.transaction_id, subject=subject
    ).first()
    if request is None:
        return None
    signer_der = signer.public_bytes(serialization.Encoding.DER)
    csr_der = csr.public_bytes(serialization.Encoding.DER)
    if bytes(request.signer_certificate_der) == signer_der and bytes(request.csr_der) == csr_der:
        return _result_of(request, signer)
    if not _same_key(request.signer_certificate_der, signer):
        raise ScepFailure(FailInfo.BAD_REQUEST, "this transactionID belongs to another requester")
    if request.status == ScepRequest.Status.PENDING:
        raise ScepFailure(FailInfo.BAD_REQUEST, "another request with this ID awaits approval")
    return request


def _result_of(request: ScepRequest, recipient: x509.Certificate) -> CertRepResult:
    if request.status == ScepRequest.Status.PENDING:
        return CertRepResult(PkiStatus.PENDING)
    if request.status == ScepRequest.Status.REJECTED:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the request was rejected by an administrator")
    if request.certificate is None:
        raise ScepFailure(FailInfo.BAD_CERT_ID, "the issued certificate is no longer recorded")
    issued = x509.load_pem_x509_certificate(request.certificate.certificate_pem.encode())
    return CertRepResult.success(issued, recipient)


def _new_request(
    message: PkiMessage,
    csr: x509.CertificateSigningRequest,
    signer: x509.Certificate,
    reuse: ScepRequest | None = None,
) -> ScepRequest:
    """The ScepRequest to record (not saved yet): a new row, or the decided one it reuses."""
    request = ScepRequest(transaction_id=message.transaction_id)
    if reuse is not None:
        # Locked until the caller's transaction ends; a concurrent reuse must not win twice.
        request = ScepRequest.objects.select_for_update().get(pk=reuse.pk)
        if request.decided_at != reuse.decided_at:
            raise ScepFailure(FailInfo.BAD_REQUEST, "this transaction is already being processed")
        request.created_at = timezone.now()
        request.challenge = request.enrollment = request.renewal_of = request.certificate = None
        request.decided_at, request.decided_by = None, ""
    request.status = ScepRequest.Status.PENDING
    request.message_type = MESSAGE_TYPE_NAMES[message.message_type]
    request.subject = csr.subject.rfc4514_string()[:500]
    request.csr_der = csr.public_bytes(serialization.Encoding.DER)
    request.signer_certificate_der = signer.public_bytes(serialization.Encoding.DER)
    return request


def _issue_or_hold(
    request: ScepRequest, csr: x509.CertificateSigningRequest, signer: x509.Certificate, device
) -> CertRepResult:
    """Issue now, or keep the request PENDING for an administrator (manual approval)."""
    if settings.MDM_SCEP_MANUAL_APPROVAL:
        _save_new(request)
        audit(
            "scep.pending",
            actor="scep",
            target=request.subject,
            transaction_id=request.transaction_id,
            message_type=request.message_type,
        )
        log.info("SCEP %s %s is pending approval", request.message_type, request.transaction_id)
        return CertRepResult(PkiStatus.PENDING)
    certificate, record = _issue(request, csr, device=device, actor="scep")
    _save_new(request)
    return CertRepResult.success(certificate, signer)


def _save_new(request: ScepRequest) -> None:
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError:
        # A concurrent copy of the same request won the race; this one changes nothing.
        raise ScepFailure(
            FailInfo.BAD_REQUEST, "this transaction is already being processed"
        ) from None


def _issue(
    request: ScepRequest, csr: x509.CertificateSigningRequest, *, device, actor: object
) -> tuple[x509.Certificate, IssuedCertificate]:
    """Issue the certificate of `request` and mark it issued (the caller saves it)."""
    try:
        certificate, record = issue_certificate(
            csr, device=device, enrollment=request.enrollment, actor=actor
        )
    except CAError as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"the CA refused the CSR: {exc}") from None
    request.status = ScepRequest.Status.ISSUED
    request.certificate = record
    request.decided_at = timezone.now()
    request.decided_by = actor_name(actor)
    audit(
        "scep.issued",
        actor=actor,
        target=record.subject,
        transaction_id=request.transaction_id,
        message_type=request.message_type,
        serial=record.serial,
        renewal_of=request.renewal_of.serial if request.renewal_of else None,
    )
    log.info(
        "SCEP %s %s: issued certificate %s", request.message_type, request.transaction_id, record
    )
    return certificate, record


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


# ------------------------------------------------------------------ manual approval


def pending_requests():
    return ScepRequest.objects.filter(status=ScepRequest.Status.PENDING).order_by("created_at")


def _pending_request(transaction_id: str, subject: str | None) -> ScepRequest:
    requests = ScepRequest.objects.select_for_update().filter(transaction_id=transaction_id)
    if subject:
        requests = requests.filter(subject=subject)
    found = list(requests)
    if not found:
        raise ScepAdminError(f"no SCEP request with transaction ID {transaction_id!r}")
    if len(found) > 1:
        subjects = ", ".join(r.subject for r in found)
        raise ScepAdminError(
            f"several requests share this transaction ID; pick --subject: {subjects}"
        )
    request = found[0]
    if request.status != ScepRequest.Status.PENDING:
        raise ScepAdminError(f"the request is {request.status}, not pending")
    return request


def approve_request(
    transaction_id: str, *, actor: object, subject: str | None = None
) -> IssuedCertificate:
    """Issue the certificate of a pending request; the client's next poll receives it."""
    with transaction.atomic():
        request = _pending_request(transaction_id, subject)
        renewal_of = request.renewal_of
        if renewal_of is not None and renewal_of.revoked_at is not None:
            raise ScepAdminError("the certificate this request renews has been revoked since")
        csr = x509.load_der_x509_csr(bytes(request.csr_der))
        if renewal_of is not None:
            device = renewal_of.device
        else:
            device = _challenge_device(request.challenge)
        try:
            _certificate, record = _issue(request, csr, device=device, actor=actor)
        except ScepFailure as failure:
            raise ScepAdminError(failure.reason) from None
        request.save()
    audit("scep.approved", actor=actor, target=request.subject, transaction_id=transaction_id)
    return record


def reject_request(
    transaction_id: str, *, actor: object, subject: str | None = None, reason: str = ""
) -> ScepRequest:
    """Refuse a pending request; the client's next poll gets FAILURE."""
    with transaction.atomic():
        request = _pending_request(transaction_id, subject)
        request.status = ScepRequest.Status.REJECTED
        request.decided_at = timezone.now()
        request.decided_by = actor_name(actor)
        request.save(update_fields=["status", "decided_at", "decided_by"])
    audit(
        "scep.rejected",
        actor=actor,
        target=request.subject,
        transaction_id=transaction_id,
        reason=reason,
    )
    log.info("SCEP request %s rejected by %s: %s", transaction_id, actor, reason or "-")
    return request
