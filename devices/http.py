"""The HTTP side of the device endpoints: a Django request in, a DeviceRequest out, and a
Reply back as an HttpResponse. The protocol itself (devices/protocol.py) knows no HTTP."""

import datetime as dt
import logging

from django.conf import settings
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mdm_portal.proxy import meta_key

from .downloads import DownloadHandler, serve_device_download
from .protocol import DeviceRequest, Handler, ProtocolError, Reply, refusal, serve_device_request

log = logging.getLogger("mdm.devices")

# PostgreSQL gave up one of two transactions waiting on each other (deadlock_detected,
# serialization_failure). Its work was rolled back, so the request can simply run again.
RETRIED_SQLSTATES = {"40P01", "40001"}


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
    try:
        reply = serve_device_request(
            device, limit, handler, handler_checks_revocation=handler_checks_revocation
        )
    except OperationalError as exc:
        if not _lost_a_lock_race(exc):
            raise  # an outage: DatabaseUnavailableMiddleware answers 503
        # Running it again is what the device would do after a 503, only sooner: every device
        # request is safe to repeat (a status recorded twice is an upsert), and the transaction
        # that lost left nothing behind. Once: a second loss goes to the device as a 503.
        log.warning(
            "%s %s lost a lock race (%s): running it again",
            device.method,
            device.path,
            getattr(exc.__cause__, "sqlstate", ""),
        )
        reply = serve_device_request(
            device, limit, handler, handler_checks_revocation=handler_checks_revocation
        )
    return http_response(reply)


def _lost_a_lock_race(exc: OperationalError) -> bool:
    return (
        getattr(exc.__cause__, "sqlstate", None) in RETRIED_SQLSTATES
        and not connection.in_atomic_block  # the whole request's work was rolled back
    )


def serve_http_download(request: HttpRequest, handler: DownloadHandler) -> HttpResponse:
    """A device GET (devices.downloads): HTTP in, the device authenticated, HTTP out."""
    return http_response(
        serve_device_download(device_request(request, b"", timezone.now()), handler)
    )
