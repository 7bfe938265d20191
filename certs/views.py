"""HTTP for the SCEP server: `GET/POST /scep?operation=...`.

The protocol is in plain modules: certs/scep_py (the messages, GetCACaps, GetCACert) and
certs/scep_service.py (PKIOperation). This view maps bytes and errors to HTTP.
"""

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .ca import CAError
from .scep_codec import (
    CA_RA_CERT_CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    PKI_MESSAGE_CONTENT_TYPE,
    NotScepMessage,
    ca_capabilities,
    ca_certificates_der,
    decode_get_message,
)
from .scep_service import pki_operation

log = logging.getLogger("mdm.scep")

# operation -> the HTTP methods it accepts (RFC 8894 section 4).
OPERATIONS = {
    "getcacaps": ("GET",),
    "getcacert": ("GET",),
    "pkioperation": ("GET", "POST"),
}


class HttpError(Exception):
    def __init__(self, status: int, reason: str, allow: tuple[str, ...] = ()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.allow = allow


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def _operation(request: HttpRequest) -> str:
    if request.method not in ("GET", "POST"):
        raise HttpError(405, f"method {request.method} not allowed", ("GET", "POST"))
    operation = request.GET.get("operation", "")
    if not operation:
        raise HttpError(400, "missing 'operation' (GetCACaps, GetCACert or PKIOperation)")
    name = operation.lower()
    if name not in OPERATIONS:
        raise HttpError(400, f"unknown operation {operation[:40]!r}")
    if request.method not in OPERATIONS[name]:
        raise HttpError(405, f"{operation} does not accept {request.method}", OPERATIONS[name])
    return name


def _pki_message(request: HttpRequest) -> bytes:
    """The DER pkiMessage: the POST body, or the GET `message` parameter (base64)."""
    if request.method == "GET":
        return decode_get_message(request.GET.get("message"))
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        raise HttpError(400, "invalid Content-Length")
    if int(declared) > MAX_MESSAGE_BYTES:
        raise HttpError(413, f"the body is over {MAX_MESSAGE_BYTES} bytes")
    body = request.read(MAX_MESSAGE_BYTES + 1)
    if len(body) > MAX_MESSAGE_BYTES:
        raise HttpError(413, f"the body is over {MAX_MESSAGE_BYTES} bytes")
    if not body:
        raise HttpError(400, "PKIOperation by POST needs the DER pkiMessage as its body")
    return body


def _serve(request: HttpRequest) -> HttpResponse:
    operation = _operation(request)
    if operation == "getcacaps":
        return HttpResponse(ca_capabilities(), content_type="text/plain; charset=utf-8")
    if operation == "getcacert":
        return HttpResponse(ca_certificates_der(), content_type=CA_RA_CERT_CONTENT_TYPE)
    cert_rep = pki_operation(_pki_message(request))
    return HttpResponse(cert_rep, content_type=PKI_MESSAGE_CONTENT_TYPE)


@csrf_exempt  # devices POST without a CSRF token; the pkiMessage's signature protects it
def scep(request: HttpRequest) -> HttpResponse:
    """GET/POST /scep: the SCEP server (RFC 8894)."""
    try:
        return _serve(request)
    except HttpError as exc:
        log.info("SCEP %s %s: %d %s", request.method, request.path, exc.status, exc.reason)
        response = _text(exc.status, exc.reason)
        if exc.allow:
            response["Allow"] = ", ".join(exc.allow)
        return response
    except NotScepMessage as exc:
        log.info("SCEP %s: not a SCEP message: %s", request.method, exc)
        return _text(400, f"not a SCEP message: {exc}")
    except CAError as exc:
        log.error("SCEP is unavailable: %s", exc)
        return _text(503, f"SCEP is unavailable: {exc}")
