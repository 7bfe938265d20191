"""ACME error documents (RFC 8555 section 6.7, RFC 7807 application/problem+json).

Every refusal of the ACME server is an AcmeProblem: raised anywhere in the protocol code, it
becomes one problem document with its HTTP status (certs/acme_protocol.py). The same document
is stored on a challenge, authorization or order that became invalid.
"""

from typing import Any

PREFIX = "urn:ietf:params:acme:error:"
CONTENT_TYPE = "application/problem+json"

# The types this server uses, and the HTTP status each one is answered with by default.
ACCOUNT_DOES_NOT_EXIST = "accountDoesNotExist"
BAD_ATTESTATION_STATEMENT = "badAttestationStatement"  # draft-ietf-acme-device-attest
BAD_CSR = "badCSR"
BAD_NONCE = "badNonce"
BAD_PUBLIC_KEY = "badPublicKey"
BAD_SIGNATURE_ALGORITHM = "badSignatureAlgorithm"
MALFORMED = "malformed"
ORDER_NOT_READY = "orderNotReady"
REJECTED_IDENTIFIER = "rejectedIdentifier"
SERVER_INTERNAL = "serverInternal"
UNAUTHORIZED = "unauthorized"
UNSUPPORTED_IDENTIFIER = "unsupportedIdentifier"

STATUS = {
    ACCOUNT_DOES_NOT_EXIST: 400,
    BAD_ATTESTATION_STATEMENT: 400,
    BAD_CSR: 400,
    BAD_NONCE: 400,
    BAD_PUBLIC_KEY: 400,
    BAD_SIGNATURE_ALGORITHM: 400,
    MALFORMED: 400,
    ORDER_NOT_READY: 403,
    REJECTED_IDENTIFIER: 400,
    SERVER_INTERNAL: 500,
    UNAUTHORIZED: 403,
    UNSUPPORTED_IDENTIFIER: 400,
}


class AcmeProblem(Exception):
    """A refusal: an ACME error type (without its urn prefix), a detail for people, the HTTP
    status (the type's usual one unless given) and any extra members of the document (e.g.
    `algorithms` for badSignatureAlgorithm). `audit` names the audit action to record it under
    (with `audit_details`), for refusals an administrator should see (a ClientIdentifier
    refused, say): it is written after the request's transaction was rolled back."""

    def __init__(
        self,
        type_: str,
        detail: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        audit: str = "",
        audit_details: dict[str, Any] | None = None,
        **extra: Any,
    ):
        super().__init__(f"{type_}: {detail}")
        self.type = type_
        self.detail = detail
        self.status = status or STATUS.get(type_, 400)
        self.headers = headers or {}
        self.audit = audit
        self.audit_details = audit_details or {}
        self.extra = extra

    def document(self) -> dict[str, Any]:
        """The problem document (a JSON object)."""
        return {"type": PREFIX + self.type, "detail": self.detail, **self.extra}


def malformed(detail: str, *, status: int = 400, **kwargs: Any) -> AcmeProblem:
    return AcmeProblem(MALFORMED, detail, status=status, **kwargs)
