"""ACME accounts (RFC 8555 section 7.3): newAccount, the account resource and its orders list.

An account is only a key: anyone may make one. What makes a certificate possible is an order
that spends a one-time ClientIdentifier (certs/acme_orders.py).
"""

from typing import Any

from django.db import IntegrityError, transaction

from mdm_portal.audit import audit

from .acme_jws import SignedRequest
from .acme_models import AcmeAccount, AcmeOrder
from .acme_problems import ACCOUNT_DOES_NOT_EXIST, UNAUTHORIZED, AcmeProblem, malformed
from .acme_resources import AcmeLinks, AcmeReply, account_document, json_reply

MAX_CONTACTS = 10
MAX_CONTACT_LENGTH = 255
ACTOR = "acme"


def _contact(payload: dict[str, Any]) -> list[str] | None:
    """The payload's contact URLs, checked (None when it has none)."""
    if "contact" not in payload:
        return None
    contact = payload["contact"]
    if (
        not isinstance(contact, list)
        or len(contact) > MAX_CONTACTS
        or not all(isinstance(c, str) and 0 < len(c) <= MAX_CONTACT_LENGTH for c in contact)
    ):
        raise malformed(f"contact must be a list of at most {MAX_CONTACTS} URL strings")
    return contact


def _require_payload(signed: SignedRequest, what: str) -> dict[str, Any]:
    if signed.payload is None:
        raise malformed(f"{what} needs a JSON object as its payload")
    return signed.payload


def new_account(signed: SignedRequest, links: AcmeLinks, pk: None = None) -> AcmeReply:
    """POST /acme/new-account: the account of the request's key, made on first use (201) or
    found again (200); both with its URL in Location."""
    payload = _require_payload(signed, "newAccount")
    contact = _contact(payload)
    only_existing = payload.get("onlyReturnExisting", False)
    if not isinstance(only_existing, bool):
        raise malformed("onlyReturnExisting must be a boolean")
    thumbprint = signed.key.thumbprint()
    account = AcmeAccount.objects.filter(thumbprint=thumbprint).first()
    if account is None and only_existing:
        raise AcmeProblem(ACCOUNT_DOES_NOT_EXIST, "no account has this key")
    created = False
    if account is None:
        try:
            with transaction.atomic():
                account = AcmeAccount.objects.create(
                    jwk=signed.key.export_public(as_dict=True),
                    thumbprint=thumbprint,
                    contact=contact or [],
                )
            created = True
        except IntegrityError:  # the same key registered at the same moment: that one
            account = AcmeAccount.objects.get(thumbprint=thumbprint)
    if account.status != AcmeAccount.Status.VALID:
        raise AcmeProblem(UNAUTHORIZED, "the account of this key is deactivated")
    if created:
        audit(
            "acme.account_created",
            actor=ACTOR,
            target=f"ACME account #{account.pk}",
            thumbprint=thumbprint,
            key_type=account.jwk.get("kty"),
        )
    return json_reply(
        account_document(account, links),
        status=201 if created else 200,
        location=links.account(account.pk),
    )


def account(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST /acme/account/<id>: read it (POST-as-GET), change its contact, or deactivate it."""
    current = signed.account
    if current is None or current.pk != pk:
        raise AcmeProblem(UNAUTHORIZED, "an account can read and change only itself")
    if signed.payload is not None:
        current = AcmeAccount.objects.select_for_update().get(pk=current.pk)
        contact = _contact(signed.payload)
        if contact is not None:
            current.contact = contact
        status = signed.payload.get("status")
        if status is not None and status != AcmeAccount.Status.DEACTIVATED:
            raise malformed("an account's status can only be changed to deactivated")
        if status is not None:
            current.status = AcmeAccount.Status.DEACTIVATED
            audit("acme.account_deactivated", actor=ACTOR, target=f"ACME account #{pk}")
        current.save(update_fields=["contact", "status"])
    return json_reply(account_document(current, links), location=links.account(pk))


def account_orders(signed: SignedRequest, links: AcmeLinks, pk: int) -> AcmeReply:
    """POST-as-GET /acme/account/<id>/orders: the account's orders that are not invalid
    (RFC 8555 section 7.1.2.1), newest first."""
    if signed.account is None or signed.account.pk != pk:
        raise AcmeProblem(UNAUTHORIZED, "an account can list only its own orders")
    if signed.payload is not None:
        raise malformed("the orders list is read with POST-as-GET (an empty payload)")
    orders = (
        AcmeOrder.objects.filter(account_id=pk)
        .exclude(status=AcmeOrder.Status.INVALID)
        .order_by("-pk")
        .values_list("pk", flat=True)[:1000]
    )
    return json_reply({"orders": [links.order(order) for order in orders]})
