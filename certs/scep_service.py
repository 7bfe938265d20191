"""The SCEP service: one PKIOperation in, one CertRep out, and what happens in between.

`pki_operation` parses the pkiMessage (certs/scep_codec.py), checks its signature, opens its
envelope (certs/scep_envelope.py) and runs the request's state machine:
- PKCSReq: a first certificate, authorised by the CSR's one-time challenge (or, signed by a
  current identity of ours for the same subject, a renewal);
- RenewalReq: a new certificate for the device of the identity that signs it;
- GetCertInitial (CertPoll): the state of an earlier request with the same transactionID;
and then issues at once, or, under MDM_SCEP_MANUAL_APPROVAL, holds the request PENDING for an
administrator (certs/scep_approval.py). A resent request gets its first answer again. Every
refusal is a ScepFailure, answered with a CertRep FAILURE, logged and audited here; the view
(certs/views.py) only maps bytes and errors to HTTP.
"""

import hmac
import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mdm_portal.audit import audit

from .ca import CAError, issue_certificate
from .challenges import consume_challenge
from .identity import IdentityError, verify_certificate
from .models import IssuedCertificate, ScepRequest
from .scep_codec import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPE_NAMES,
    CertRepResult,
    FailInfo,
    MessageType,
    NotScepMessage,
    PkiMessage,
    PkiStatus,
    ScepFailure,
    ScepKeys,
    build_cert_rep,
    parse_pki_message,
    scep_keys,
    verify_pki_message,
)
from .scep_envelope import challenge_password, load_csr, load_issuer_and_subject, open_envelope

log = logging.getLogger("mdm.scep")


def actor_name(actor: object) -> str:
    """A User's username, or the name of a system actor, as ScepRequest.decided_by holds it."""
    name = actor.get_username() if hasattr(actor, "get_username") else str(actor)
    return name[:150]


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
    signer = verify_pki_message(message)
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
    csr = load_csr(open_envelope(message.envelope, keys))
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
        return _issue_or_hold(request, csr, signer)


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
    csr = load_csr(open_envelope(message.envelope, keys))
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
    """A new certificate for the identity `current` (verified): it renews `current`."""
    previous = _previous_request(message, csr, signer)
    if isinstance(previous, CertRepResult):
        return previous
    with transaction.atomic():
        request = _new_request(message, csr, signer, reuse=previous)
        request.renewal_of = current
        return _issue_or_hold(request, csr, signer)


def _poll(message: PkiMessage, signer: x509.Certificate, keys: ScepKeys) -> CertRepResult:
    """CertPoll (GetCertInitial): the state of an earlier request with this transactionID."""
    ias = load_issuer_and_subject(open_envelope(message.envelope, keys))
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
        request.challenge = request.renewal_of = request.certificate = None
        request.decided_at, request.decided_by = None, ""
    request.status = ScepRequest.Status.PENDING
    request.message_type = MESSAGE_TYPE_NAMES[message.message_type]
    request.subject = csr.subject.rfc4514_string()[:500]
    request.csr_der = csr.public_bytes(serialization.Encoding.DER)
    request.signer_certificate_der = signer.public_bytes(serialization.Encoding.DER)
    return request


def _issue_or_hold(
    request: ScepRequest, csr: x509.CertificateSigningRequest, signer: x509.Certificate
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
    certificate, record = issue_for_request(request, csr, actor="scep")
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


def issue_for_request(
    request: ScepRequest, csr: x509.CertificateSigningRequest, *, actor: object
) -> tuple[x509.Certificate, IssuedCertificate]:
    """Issue the certificate of `request` and mark it issued (the caller saves it). Its
    challenge and the certificate it renews go with it: the layers above bind it from them."""
    try:
        certificate, record = issue_certificate(
            csr,
            challenge=request.challenge,
            renews=request.renewal_of,
            delivery="scep",
            actor=actor,
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
