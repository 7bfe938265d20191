"""The ACME server's resources as the client sees them: their URLs and JSON objects (RFC 8555
section 7.1), and the reply type the protocol code returns (no HTTP framework).

Every URL is absolute and starts with the origin the client used (`AcmeLinks.origin`, made by
the view from the request), because clients compare them with what they requested, and the
JWS `url` must be exactly that.
"""

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from .acme_models import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder

JSON = "application/json"
PEM_CHAIN = "application/pem-certificate-chain"
DEVICE_ATTEST = "device-attest-01"
PERMANENT_IDENTIFIER = "permanent-identifier"


@dataclass
class AcmeReply:
    """An answer: status, body, content type and headers (Location, Link rel="up", ...)."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)  # Link header values, e.g. '<u>;rel="up"'


def json_reply(
    document: dict[str, Any],
    *,
    status: int = 200,
    location: str = "",
    up: str = "",
    content_type: str = JSON,
) -> AcmeReply:
    reply = AcmeReply(status, json.dumps(document).encode(), content_type)
    if location:
        reply.headers["Location"] = location
    if up:
        reply.links.append(f'<{up}>;rel="up"')
    return reply


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AcmeLinks:
    """The absolute URLs of the ACME resources under `origin` (scheme://host[:port])."""

    origin: str

    def _url(self, name: str, *args: object) -> str:
        return self.origin + reverse(name, args=args)

    @property
    def directory(self) -> str:
        return self._url("acme-directory")

    def account(self, pk: int) -> str:
        return self._url("acme-account", pk)

    def orders(self, pk: int) -> str:
        return self._url("acme-account-orders", pk)

    def order(self, pk: int) -> str:
        return self._url("acme-order", pk)

    def finalize(self, pk: int) -> str:
        return self._url("acme-finalize", pk)

    def authorization(self, pk: int) -> str:
        return self._url("acme-authz", pk)

    def challenge(self, pk: int) -> str:
        return self._url("acme-challenge", pk)

    def certificate(self, pk: int) -> str:
        return self._url("acme-certificate", pk)

    def directory_document(self) -> dict[str, Any]:
        """RFC 8555 section 7.1.1. revokeCert and keyChange are left out: not implemented
        (an Apple device uses neither), and a directory lists only what the server does."""
        return {
            "newNonce": self._url("acme-new-nonce"),
            "newAccount": self._url("acme-new-account"),
            "newOrder": self._url("acme-new-order"),
            "meta": {"externalAccountRequired": False},
        }

    def find_account(self, kid: str) -> AcmeAccount | None:
        """The account whose URL `kid` is, exactly (origin included), or None."""
        prefix = self.account(0)[:-1]  # .../acme/account/
        number = kid.removeprefix(prefix)
        if number == kid or not number.isascii() or not number.isdigit() or len(number) > 18:
            return None
        if kid != self.account(int(number)):  # no leading zeros, nothing after the id
            return None
        return AcmeAccount.objects.filter(pk=int(number)).first()


def account_document(account: AcmeAccount, links: AcmeLinks) -> dict[str, Any]:
    return {
        "status": account.status,
        "contact": list(account.contact),
        "orders": links.orders(account.pk),
    }


def challenge_document(challenge: AcmeChallenge, links: AcmeLinks) -> dict[str, Any]:
    document = {
        "type": challenge.type,
        "url": links.challenge(challenge.pk),
        "status": challenge.status,
        "token": challenge.token,
    }
    if challenge.validated_at is not None:
        document["validated"] = rfc3339(challenge.validated_at)
    if challenge.error:
        document["error"] = challenge.error
    return document


def authorization_document(authz: AcmeAuthorization, links: AcmeLinks) -> dict[str, Any]:
    return {
        "status": authz.status,
        "expires": rfc3339(authz.expires_at),
        "identifier": {"type": authz.identifier_type, "value": authz.identifier_value},
        "challenges": [challenge_document(c, links) for c in authz.challenges.order_by("pk")],
    }


def order_document(order: AcmeOrder, links: AcmeLinks) -> dict[str, Any]:
    authorizations = list(order.authorizations.order_by("pk"))
    document = {
        "status": order.status,
        "expires": rfc3339(order.expires_at),
        "identifiers": [
            {"type": a.identifier_type, "value": a.identifier_value} for a in authorizations
        ],
        "authorizations": [links.authorization(a.pk) for a in authorizations],
        "finalize": links.finalize(order.pk),
    }
    if order.certificate_id is not None:
        document["certificate"] = links.certificate(order.certificate_id)
    if order.error:
        document["error"] = order.error
    return document
