"""Manual approval of SCEP requests (MDM_SCEP_MANUAL_APPROVAL): list, approve, reject.

What `mdm_scep list|approve|reject` and the Certificates page call. Under manual approval
the service (certs/scep_service.py) records a request PENDING and answers PENDING; an
administrator then issues its certificate or refuses it here, and the client learns which at
its next GetCertInitial poll. Apart from the service because an administrator drives it, not a
device: its refusals are ScepAdminErrors for the command to print, not CertReps.
"""

import logging

from cryptography import x509
from django.db import transaction
from django.utils import timezone

from mdm_portal.audit import audit

from .models import IssuedCertificate, ScepRequest
from .scep_codec import ScepFailure
from .scep_service import actor_name, issue_for_request

log = logging.getLogger("mdm.scep")


class ScepAdminError(ValueError):
    """An approval or rejection that cannot be done (unknown or already decided request)."""


def pending_requests():
    return ScepRequest.objects.filter(status=ScepRequest.Status.PENDING).order_by("created_at")


def decided_requests():
    """Requests an administrator (or the service, without manual approval) decided, latest
    first."""
    return ScepRequest.objects.exclude(status=ScepRequest.Status.PENDING).order_by(
        "-decided_at", "-pk"
    )


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
    transaction_id: str,
    *,
    actor: object,
    subject: str | None = None,
    address: str | None = None,
) -> IssuedCertificate:
    """Issue the certificate of a pending request; the client's next poll receives it."""
    with transaction.atomic():
        request = _pending_request(transaction_id, subject)
        renewal_of = request.renewal_of
        if renewal_of is not None and renewal_of.revoked_at is not None:
            raise ScepAdminError("the certificate this request renews has been revoked since")
        csr = x509.load_der_x509_csr(bytes(request.csr_der))
        try:
            _certificate, record = issue_for_request(request, csr, actor=actor)
        except ScepFailure as failure:
            raise ScepAdminError(failure.reason) from None
        request.save()
    audit(
        "scep.approved",
        actor=actor,
        target=request.subject,
        address=address,
        transaction_id=transaction_id,
    )
    return record


def reject_request(
    transaction_id: str,
    *,
    actor: object,
    subject: str | None = None,
    reason: str = "",
    address: str | None = None,
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
        address=address,
        transaction_id=transaction_id,
        reason=reason,
    )
    log.info("SCEP request %s rejected by %s: %s", transaction_id, actor, reason or "-")
    return request
