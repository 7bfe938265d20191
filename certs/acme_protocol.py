"""The front half of every ACME endpoint: method, content type, size, JWS, then one handler.

A request arrives as plain data (AcmeRequest: the view fills it, with the URL as the client
addressed it) and leaves as an AcmeReply. In between, in this order:
- the method: GET (and HEAD) only for the directory and newNonce (RFC 8555 section 6.3),
  POST everywhere; anything else is 405 with Allow;
- POST needs Content-Type application/jose+json (else 415) and a body of at most
  MAX_REQUEST_BYTES (else 413);
- the JWS (certs/acme_jws.py): signature, url, nonce, account;
- the endpoint's handler, in one transaction, so a refusal writes nothing.
Every answer, refusals too, carries a fresh Replay-Nonce, Link rel="index" to the directory
and Cache-Control: no-store. A refusal is an AcmeProblem: a problem document, logged, and
audited when it names an audit action (after the rollback, so the entry stays).
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from mdm_portal.audit import audit

from . import acme_accounts, acme_orders
from .acme_jws import SignedRequest, verify_request
from .acme_nonces import new_nonce
from .acme_problems import CONTENT_TYPE as PROBLEM_CONTENT_TYPE
from .acme_problems import AcmeProblem, malformed
from .acme_resources import AcmeLinks, AcmeReply, json_reply

log = logging.getLogger("mdm.acme")

JOSE = "application/jose+json"
# Attestation objects are a few kilobytes (two certificates), CSRs one: room to spare.
MAX_REQUEST_BYTES = 64 * 1024


@dataclass(frozen=True)
class AcmeRequest:
    """What a client sent, as plain data. `url` is the absolute URL it requested and `origin`
    its scheme://host[:port], both as the client sees them (behind the TLS proxy too)."""

    method: str
    url: str
    origin: str
    body: bytes = b""
    content_type: str = ""
    remote_addr: str = ""


Handler = Callable[[SignedRequest, AcmeLinks, int | None], AcmeReply]
Reader = Callable[[str, AcmeLinks], AcmeReply]  # (GET or HEAD, links) -> reply


@dataclass(frozen=True)
class Endpoint:
    """One ACME resource: its POST handler, and for the directory and newNonce its GET."""

    handler: Handler
    read: Reader | None = None
    new_account: bool = False  # signed with a jwk rather than an account's kid


def _directory_get(method: str, links: AcmeLinks) -> AcmeReply:
    reply = json_reply(links.directory_document())
    if method == "HEAD":
        reply.body = b""
    return reply


def _directory_post(signed: SignedRequest, links: AcmeLinks, pk: None = None) -> AcmeReply:
    return _directory_get("GET", links)


def _nonce_get(method: str, links: AcmeLinks) -> AcmeReply:
    # Section 7.2: 200 to HEAD, 204 to GET; the nonce is added to every reply anyway.
    return AcmeReply(status=200 if method == "HEAD" else 204)


def _nonce_post(signed: SignedRequest, links: AcmeLinks, pk: None = None) -> AcmeReply:
    return AcmeReply(status=200)


DIRECTORY = Endpoint(_directory_post, read=_directory_get)
NEW_NONCE = Endpoint(_nonce_post, read=_nonce_get)
NEW_ACCOUNT = Endpoint(acme_accounts.new_account, new_account=True)
ACCOUNT = Endpoint(acme_accounts.account)
ACCOUNT_ORDERS = Endpoint(acme_accounts.account_orders)
NEW_ORDER = Endpoint(acme_orders.new_order)
ORDER = Endpoint(acme_orders.order)
FINALIZE = Endpoint(acme_orders.finalize)
AUTHORIZATION = Endpoint(acme_orders.authorization)
CHALLENGE = Endpoint(acme_orders.challenge)
CERTIFICATE = Endpoint(acme_orders.certificate)


def problem_reply(problem: AcmeProblem) -> AcmeReply:
    reply = AcmeReply(
        status=problem.status,
        body=json.dumps(problem.document()).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
    )
    reply.headers.update(problem.headers)
    return reply


def _check_post(request: AcmeRequest) -> None:
    media_type = request.content_type.split(";")[0].strip().lower()
    if media_type != JOSE:
        raise malformed(f"ACME requests are sent as {JOSE}", status=415)
    if len(request.body) > MAX_REQUEST_BYTES:
        raise malformed(f"the body is over {MAX_REQUEST_BYTES} bytes", status=413)
    if not request.body:
        raise malformed("the body is empty: ACME requests are a JWS")


def _dispatch(request: AcmeRequest, endpoint: Endpoint, links: AcmeLinks, pk) -> AcmeReply:
    allowed = "GET, HEAD, POST" if endpoint.read is not None else "POST"
    if request.method in ("GET", "HEAD") and endpoint.read is not None:
        return endpoint.read(request.method, links)
    if request.method != "POST":
        hint = "" if endpoint.read else " (POST-as-GET reads it: a JWS with an empty payload)"
        raise malformed(
            f"method {request.method} not allowed here{hint}",
            status=405,
            headers={"Allow": allowed},
        )
    _check_post(request)
    signed = verify_request(
        request.body,
        request.url,
        new_account=endpoint.new_account,
        find_account=links.find_account,
    )
    with transaction.atomic():
        return endpoint.handler(signed, links, pk)


def serve(request: AcmeRequest, endpoint: Endpoint, pk: int | None = None) -> AcmeReply:
    """Answer one ACME request (see the module docstring)."""
    links = AcmeLinks(request.origin)
    try:
        reply = _dispatch(request, endpoint, links, pk)
    except AcmeProblem as problem:
        log.info(
            "ACME %s %s from %s refused (%s %s): %s",
            request.method,
            request.url,
            request.remote_addr or "?",
            problem.status,
            problem.type,
            problem.detail,
        )
        if problem.audit:
            audit(
                problem.audit,
                actor="acme",
                target=request.url[:255],
                address=request.remote_addr or None,
                error=problem.type,
                detail=problem.detail,
                **problem.audit_details,
            )
        reply = problem_reply(problem)
    reply.headers["Replay-Nonce"] = new_nonce()
    reply.headers["Cache-Control"] = "no-store"
    reply.links.insert(0, f'<{links.directory}>;rel="index"')
    return reply
