"""ACME orders for device identities (RFC 8555 section 7.4, draft-ietf-acme-device-attest).

An Apple device orders with one identifier: {"type": "permanent-identifier", "value": its
ClientIdentifier}, the one-time secret its enrollment profile carries (a certs.ScepChallenge
of purpose "acme"). newOrder spends it: unknown, expired or used -> rejectedIdentifier, and
nothing is made. The order's authorization then needs device-attest-01: the device answers
with an Apple attestation (certs/acme_attestation.py) whose nonce is SHA-256 of the challenge
token; a failed one makes the challenge, the authorization and the order invalid
(badAttestationStatement). At finalize the CSR must carry the attested key; the certificate is
issued with the ClientIdentifier's record (so the enrollment that handed it out links it, as
for SCEP) and what the attestation proved (UDID, serial number).

Attestation optional (the ClientIdentifier's `attestation_required` is False: an enrollment
that lets older devices use ACME without it): the ClientIdentifier alone is the proof, so the
authorization is made already valid, with no challenge to answer, and the order is "ready" at
once. RFC 8555 allows this (section 7.1.4: an authorization's challenges are those left to
fulfil; servers reuse or pre-authorize valid authorizations, and clients finalize a "ready"
order). A device never has to answer a challenge the server cannot judge, and the certificate
carries no attested UDID or serial number.

Every handler runs in one transaction (certs/acme_protocol.py): a refusal writes nothing.
"""

import logging
import secrets
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.utils import timezone

from mdm_portal.audit import audit

from .acme_attestation import AttestationError, Attested, verify_attestation
from .acme_jws import SignedRequest, b64url_decode
from .acme_models import AcmeAuthorization, AcmeChallenge, AcmeOrder
from .acme_problems import (
    BAD_CSR,
    MALFORMED,
    ORDER_NOT_READY,
    REJECTED_IDENTIFIER,
    SERVER_INTERNAL,
    UNSUPPORTED_IDENTIFIER,
    AcmeProblem,
    malformed,
)
from .acme_resources import (
    DEVICE_ATTEST,
    PEM_CHAIN,
    PERMANENT_IDENTIFIER,
    AcmeLinks,
    AcmeReply,
    authorization_document,
    challenge_document,
    json_reply,
    order_document,
)
from .ca import CAError, active_ca, issue_certificate
from .challenges import consume_challenge
from .models import ScepChallenge

log = logging.getLogger("mdm.acme")
ACTOR = "acme"
MAX_IDENTIFIER = 255


def _not_found(what: str) -> AcmeProblem:
    # The same answer for "no such thing" and "another account's": ids reveal nothing.
    return malformed(f"this account has no such {what}", status=404)


def _post_as_get(signed: SignedRequest, what: str) -> None:
    if signed.payload is not None:
        raise malformed(f"{what} is read with POST-as-GET (an empty payload)")


def _identifier(payload: dict[str, Any]) -> str:
    """The ClientIdentifier of a newOrder payload, after checking its form."""
    for name in ("notBefore", "notAfter"):
        if name in payload:
            raise malformed(f"{name} is not supported: the validity is the server's")
    identifiers = payload.get("identifiers")
    if not isinstance(identifiers, list) or not identifiers:
        raise malformed("identifiers must be a non-empty list")
    if not all(isinstance(i, dict) for i in identifiers):
        raise malformed("each identifier is an object with a type and a value")
    for identifier in identifiers:
        if identifier.get("type") != PERMANENT_IDENTIFIER:
            kind = str(identifier.get("type"))[:40]
            raise AcmeProblem(
                UNSUPPORTED_IDENTIFIER,
                f"identifier type {kind!r} is not supported: order with the device's "
                f"ClientIdentifier as a {PERMANENT_IDENTIFIER}",
            )
    if len(identifiers) != 1:
        raise malformed("an order has exactly one identifier: the device's ClientIdentifier")
    value = identifiers[0].get("value")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTIFIER:
        raise malformed(f"the identifier's value is a string of 1 to {MAX_IDENTIFIER} characters")
    return value


def new_order(signed: SignedRequest, links: AcmeLinks, pk: None = None) -> AcmeReply:
    """POST /acme/new-order: spend the ClientIdentifier, make the order (201, Location)."""
    if signed.payload is None:
        raise malformed("newOrder needs a JSON object as its payload")
    value = _identifier(signed.payload)
    account = signed.account
    accepted, client_id = consume_challenge(value, purpose=ScepChallenge.Purpose.ACME)
    if not accepted:
        reason = "unknown" if client_id is None else "expired or already used"
        raise AcmeProblem(
            REJECTED_IDENTIFIER,
            f"this ClientIdentifier is not accepted ({reason}): the device needs a new "
            "enrollment profile",
            audit="acme.order_refused",
            audit_details={
                "account": account.pk,
                "reason": reason,
                "client_identifier": client_id.pk if client_id else None,
            },
        )
    now = timezone.now()
    expires = now + timedelta(minutes=settings.MDM_ACME_ORDER_LIFETIME_MINUTES)
    attested = client_id.attestation_required
    order = AcmeOrder.objects.create(
        account=account,
        challenge=client_id,
        expires_at=expires,
        status=AcmeOrder.Status.PENDING if attested else AcmeOrder.Status.READY,
    )
    authz = AcmeAuthorization.objects.create(
        order=order,
        identifier_type=PERMANENT_IDENTIFIER,
        identifier_value=value,
        expires_at=expires,
        # Attestation optional: the ClientIdentifier was the proof (see the module docstring).
        status=AcmeAuthorization.Status.PENDING if attested else AcmeAuthorization.Status.VALID,
    )
    if attested:
        AcmeChallenge.objects.create(
            authorization=authz, type=DEVICE_ATTEST, token=secrets.token_urlsafe(32)
        )
    audit(
        "acme.order_created",
        actor=ACTOR,
        target=f"ACME order #{order.pk}",
        account=account.pk,
        client_identifier=client_id.pk,
        attestation_required=attested,
    )
    return json_reply(order_document(order, links), status=201, location=links.order(order.pk))


def _expire(order: AcmeOrder) -> AcmeOrder:
    """An order past its expiry that was still in progress becomes invalid (its pending
    authorizations expired)."""
    open_states = (AcmeOrder.Status.PENDING, AcmeOrder.Status.READY)
    if order.status in open_states and order.expires_at <= timezone.now():
        _fail_order(order, "the order expired before it was completed", MALFORMED)
        order.authorizations.filter(status=AcmeAuthorization.Status.PENDING).update(
            status=AcmeAuthorization.Status.EXPIRED
        )
    return order


def _account_order(signed: SignedRequest, pk: int | None, what: str = "order") -> AcmeOrder:
    """The account's order `pk`, locked, its expiry applied. Every change to an order or its
    parts holds the order's lock: two answers to one challenge, or an answer racing
    finalize, are taken one after the other."""
    order = (
        AcmeOrder.objects.select_for_update(of=("self",))  # PostgreSQL: not the nullable join
        .filter(pk=pk, account=signed.account)
        .select_related("challenge")
        .first()
    )
    if order is None:
        raise _not_found(what)
    return _expire(order)


def order(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST-as-GET /acme/order/<id>."""
    _post_as_get(signed, "an order")
    return json_reply(order_document(_account_order(signed, pk), links))


def authorization(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST-as-GET /acme/authz/<id>, or {"status": "deactivated"} (section 7.5.2)."""
    found = AcmeAuthorization.objects.filter(pk=pk).values_list("order_id", flat=True)
    _account_order(signed, found.first(), "authorization")
    authz = AcmeAuthorization.objects.select_related("order").get(pk=pk)
    if signed.payload is not None:
        if signed.payload != {"status": "deactivated"}:
            raise malformed('an authorization can only be deactivated: {"status": "deactivated"}')
        if authz.status in (AcmeAuthorization.Status.PENDING, AcmeAuthorization.Status.VALID):
            authz.status = AcmeAuthorization.Status.DEACTIVATED
            authz.save(update_fields=["status"])
            _fail_order(authz.order, "its authorization was deactivated", MALFORMED)
    return json_reply(authorization_document(authz, links))


def _fail_order(order: AcmeOrder, detail: str, type_: str) -> None:
    order.status = AcmeOrder.Status.INVALID
    order.error = AcmeProblem(type_, detail).document()
    order.save(update_fields=["status", "error"])


def challenge(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST /acme/challenge/<id>: device-attest-01 answered with {"attObj": base64url(CBOR)}
    (POST-as-GET reads it). A challenge that is no longer pending is returned as it is."""
    found = AcmeChallenge.objects.filter(pk=pk).values_list("authorization__order_id", flat=True)
    _account_order(signed, found.first(), "challenge")
    item = AcmeChallenge.objects.select_related("authorization__order").get(pk=pk)
    authz = item.authorization
    up = links.authorization(authz.pk)
    pending = (
        item.status == AcmeChallenge.Status.PENDING
        and authz.status == AcmeAuthorization.Status.PENDING
    )
    if signed.payload is None or not pending:
        return json_reply(challenge_document(item, links), up=up)
    att_obj = signed.payload.get("attObj")
    if att_obj is not None and not isinstance(att_obj, str):
        raise malformed("attObj must be a base64url string")
    try:
        if att_obj is None:
            raise AttestationError("the answer carries no attObj: this enrollment requires it")
        attested = verify_attestation(b64url_decode(att_obj, "attObj"), item.token)
    except AttestationError as refusal:
        _attestation_failed(item, refusal, signed)
    else:
        _attestation_passed(item, attested)
    return json_reply(challenge_document(item, links), up=up)


def _attestation_passed(item: AcmeChallenge, attested: Attested) -> None:
    now = timezone.now()
    item.status, item.validated_at = AcmeChallenge.Status.VALID, now
    item.save(update_fields=["status", "validated_at"])
    authz = item.authorization
    authz.status = AcmeAuthorization.Status.VALID
    authz.attested_udid, authz.attested_serial = attested.udid, attested.serial
    authz.attested_public_key = attested.public_key_der
    authz.save(update_fields=["status", "attested_udid", "attested_serial", "attested_public_key"])
    order = authz.order
    if not order.authorizations.exclude(status=AcmeAuthorization.Status.VALID).exists():
        order.status = AcmeOrder.Status.READY
        order.save(update_fields=["status"])
    log.info("ACME order #%s: device %s attested", order.pk, attested.udid or "?")


def _attestation_failed(
    item: AcmeChallenge, refusal: AttestationError, signed: SignedRequest
) -> None:
    item.status, item.error = AcmeChallenge.Status.INVALID, refusal.document()
    item.save(update_fields=["status", "error"])
    authz = item.authorization
    authz.status = AcmeAuthorization.Status.INVALID
    authz.save(update_fields=["status"])
    _fail_order(authz.order, refusal.detail, refusal.type)
    audit(
        "acme.attestation_refused",
        actor=ACTOR,
        target=f"ACME order #{authz.order_id}",
        account=signed.account.pk,
        reason=refusal.detail,
    )
    log.info("ACME order #%s: attestation refused: %s", authz.order_id, refusal.detail)


def _csr(payload: dict[str, Any] | None) -> x509.CertificateSigningRequest:
    if payload is None or not isinstance(payload.get("csr"), str):
        raise malformed('finalize needs {"csr": base64url(DER CSR)}')
    der = b64url_decode(payload["csr"], "csr")
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise AcmeProblem(BAD_CSR, "csr is not a DER certificate signing request") from None
    if not csr.is_signature_valid:
        raise AcmeProblem(BAD_CSR, "the CSR's signature does not verify")
    return csr


def finalize(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST /acme/order/<id>/finalize {"csr": ...}: issue the certificate of a ready order.

    A CSR the server will not sign (badCSR, e.g. its key is not the attested one) leaves the
    order ready, as RFC 8555 section 7.4 advises, so a corrected CSR may follow."""
    current = _account_order(signed, pk)
    if current.status != AcmeOrder.Status.READY:
        raise AcmeProblem(
            ORDER_NOT_READY,
            f"the order is {current.status}, not ready: its authorization needs a valid "
            "device attestation first",
        )
    csr = _csr(signed.payload)
    authz = current.authorizations.get()
    key_der = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    attested_key = bytes(authz.attested_public_key)
    if attested_key and key_der != attested_key:
        raise AcmeProblem(
            BAD_CSR,
            "the CSR's public key is not the key the device attestation vouches for",
            audit="acme.finalize_refused",
            audit_details={"order": current.pk},
        )
    try:
        active_ca()
    except CAError as exc:
        raise AcmeProblem(SERVER_INTERNAL, str(exc)) from None
    attested = {}
    if attested_key:
        attested = {"udid": authz.attested_udid, "serial": authz.attested_serial}
    try:
        _, record = issue_certificate(
            csr, challenge=current.challenge, delivery="acme", attested=attested, actor=ACTOR
        )
    except CAError as exc:
        raise AcmeProblem(
            BAD_CSR,
            f"the CA refused the CSR: {exc}",
            audit="acme.finalize_refused",
            audit_details={"order": current.pk},
        ) from None
    current.status, current.certificate = AcmeOrder.Status.VALID, record
    current.save(update_fields=["status", "certificate"])
    audit(
        "acme.issued",
        actor=ACTOR,
        target=record.subject,
        order=current.pk,
        serial=record.serial,
        attested_udid=record.attested_udid,
        attested_serial=record.attested_serial,
    )
    return json_reply(order_document(current, links), location=links.order(current.pk))


def certificate(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST-as-GET /acme/certificate/<id>: the PEM chain, the certificate then our CA."""
    _post_as_get(signed, "a certificate")
    found = (
        AcmeOrder.objects.filter(account=signed.account, certificate_id=pk)
        .select_related("certificate__authority")
        .first()
    )
    if found is None:
        raise _not_found("certificate")
    issued = found.certificate
    chain = issued.certificate_pem.strip() + "\n" + issued.authority.certificate_pem.strip()
    return AcmeReply(body=(chain + "\n").encode(), content_type=PEM_CHAIN)
