"""The shared front half of every device endpoint: authenticate, parse, validate, answer.

A device request is an HTTP PUT whose body is an XML plist. This module takes it as plain data
(DeviceRequest: no HTTP framework), turns it into a verified (identity, message) pair or a clear
4xx before anything is written, hands that to the endpoint's handler and returns its Reply.
Only the views (devices/http.py) turn requests and replies into HTTP.
"""

import datetime as dt
import logging
import plistlib
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.parsers.expat import ExpatError

from django.utils import timezone

from certs.identity import DeviceIdentity, IdentityError, authenticate_device
from mdm_portal.plist import has_type
from mdm_portal.plist import type_name as plist_type_name

log = logging.getLogger("mdm.protocol")


class ProtocolError(Exception):
    """A request the portal refuses with `status`; `reason` is logged and sent as plain text."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class NotManaged(ProtocolError):
    """401: the portal knows this device is not managed (the device then drops its profile)."""

    def __init__(self, reason: str):
        super().__init__(401, reason)


def check_keys(message: dict, spec: dict[str, tuple[str, bool]], what: str) -> None:
    """Raise a 400 if a required key is missing or any known key has the wrong type.

    spec maps key -> (plist type name, required).
    """
    for key, (type_name, required) in spec.items():
        if key not in message:
            if required:
                raise ProtocolError(400, f"{what}: required key {key} is missing")
            continue
        if not has_type(message[key], type_name):
            actual = plist_type_name(message[key])
            raise ProtocolError(400, f"{what}: key {key} must be <{type_name}>, not {actual}")


def device_id(message: dict) -> str:
    """The identifier of the device: its UDID, or the EnrollmentID of a User Enrollment."""
    value = message.get("UDID", message.get("EnrollmentID"))
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(400, "the message carries no UDID (or EnrollmentID) string")
    if len(value) > 128:
        raise ProtocolError(400, "the UDID is too long")
    return value


def parse_plist(body: bytes) -> dict:
    try:
        message = plistlib.loads(body)
    except (plistlib.InvalidFileException, ExpatError, ValueError, TypeError, OverflowError):
        raise ProtocolError(400, "the body is not a property list") from None
    if not isinstance(message, dict):
        raise ProtocolError(400, "the property list is not a dictionary")
    return message


@dataclass(frozen=True)
class DeviceRequest:
    """What a device sent, as plain data: the HTTP layer fills it, tests may build it."""

    method: str
    body: bytes
    content_type: str = ""
    # The certificate the TLS proxy forwarded ("" when none, or when its header is not trusted).
    client_certificate: str = ""
    mdm_signature: str = ""  # the Mdm-Signature header
    remote_addr: str = ""
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)  # the URL's query parameters
    # When the request arrived, before any lock was taken: the queue uses it to tell a
    # concurrent poll from a later one.
    started: dt.datetime = field(default_factory=timezone.now)


@dataclass(frozen=True)
class Reply:
    """The answer to a device: status, body and content type (no HTTP framework)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/xml"
    headers: dict[str, str] = field(default_factory=dict)


def plist_reply(message: dict) -> Reply:
    return Reply(body=plistlib.dumps(message), content_type="application/xml; charset=UTF-8")


def refusal(error: ProtocolError, allow: str = "PUT") -> Reply:
    headers = {"Allow": allow} if error.status == 405 else {}
    return Reply(error.status, (error.reason + "\n").encode(), "text/plain", headers)


def refused(request: DeviceRequest, error: ProtocolError, allow: str = "PUT") -> Reply:
    """The refusal of a device request, logged with who sent what (one line, no body)."""
    log.warning(
        "%s %s from %s refused with %s: %s",
        request.method,
        request.path,
        request.remote_addr or "?",
        error.status,
        error.reason,
    )
    return refusal(error, allow)


Handler = Callable[[dict, DeviceIdentity, DeviceRequest], Reply]


def check_body(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise ProtocolError(413, f"body is over the {limit}-byte limit")
    if not body:
        raise ProtocolError(400, "empty body")


def serve_device_request(
    request: DeviceRequest, limit: int, handler: Handler, *, handler_checks_revocation=False
) -> Reply:
    """Run the checks every device request needs, then `handler(message, identity, request)`.

    Revocation is read from the database here, unless the handler reads it itself in the
    statement that also locks the device (`handler_checks_revocation`: the server-URL loop,
    which calls DeviceIdentity.require_unrevoked for anything else it serves).
    """
    try:
        if request.method != "PUT":
            raise ProtocolError(405, f"method {request.method} not allowed: devices use PUT")
        check_body(request.body, limit)
        try:
            identity = authenticate_device(
                request.body,
                client_certificate=request.client_certificate,
                mdm_signature=request.mdm_signature,
            )
            if not handler_checks_revocation:
                identity.require_unrevoked()
        except IdentityError as exc:
            # Never 401 here: a proxy that lost the client certificate must not unenroll the
            # fleet. 403 changes nothing on the device.
            raise ProtocolError(403, f"device identity refused: {exc}") from None
        message = parse_plist(request.body)
        return handler(message, identity, request)
    except ProtocolError as exc:
        return refused(request, exc)
