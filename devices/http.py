"""The HTTP side of the device endpoints: a Django request in, a DeviceRequest out, and a
Reply back as an HttpResponse. The protocol itself (devices/protocol.py) knows no HTTP."""

import datetime as dt

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mdm_portal.proxy import meta_key

from .protocol import DeviceRequest, Handler, ProtocolError, Reply, refusal, serve_device_request


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The body, refusing one over `limit` before reading it when its length is declared."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        if int(declared) > limit:
            raise ProtocolError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    except ValueError:
        raise ProtocolError(400, "invalid Content-Length") from None
    return request.read(limit + 1)


def device_request(request: HttpRequest, body: bytes, started: dt.datetime) -> DeviceRequest:
    """The request as plain data. The client-certificate header counts only when the portal
    is told to trust it (MDM_CLIENT_CERT_HEADER, set by the TLS proxy, never by a client)."""
    header = settings.MDM_CLIENT_CERT_HEADER
    return DeviceRequest(
        method=request.method or "",
        body=body,
        content_type=request.META.get("CONTENT_TYPE", ""),
        client_certificate=request.META.get(meta_key(header), "") if header else "",
        mdm_signature=request.META.get("HTTP_MDM_SIGNATURE", ""),
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        path=request.path,
        query={key: request.GET[key] for key in request.GET},
        started=started,
    )


def http_response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers.items():
        response[name] = value
    return response


def serve_http(
    request: HttpRequest, limit: int, handler: Handler, *, handler_checks_revocation=False
) -> HttpResponse:
    """A device endpoint: HTTP in, the protocol pipeline, HTTP out (serve_device_request)."""
    started = timezone.now()  # before the body is read and before any lock is waited for
    body = b""
    if request.method == "PUT":
        try:
            body = read_body(request, limit)
        except ProtocolError as exc:
            return http_response(refusal(exc))
    device = device_request(request, body, started)
    reply = serve_device_request(
        device, limit, handler, handler_checks_revocation=handler_checks_revocation
    )
    return http_response(reply)
