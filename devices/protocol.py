"""The shared front half of every device endpoint: read, authenticate, parse, validate.

A device request is an HTTP PUT whose body is an XML plist. This module turns one into a
verified (identity, message) pair or a clear 4xx, before anything is written.
"""

import datetime as dt
import logging
import plistlib
from collections.abc import Callable
from xml.parsers.expat import ExpatError

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from certs.identity import DeviceIdentity, IdentityError, authenticate_device

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


# plist types by the names Apple's schema uses.
PLIST_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "data": (bytes,),
    "boolean": (bool,),
    "integer": (int,),
    "real": (float, int),
    "array": (list,),
    "dict": (dict,),
    "date": (dt.datetime,),
}


def has_type(value: object, type_name: str) -> bool:
    # bool is an int in Python, but <true/> is no <integer>.
    if type_name in ("integer", "real") and isinstance(value, bool):
        return False
    return isinstance(value, PLIST_TYPES[type_name])


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
            actual = type(message[key]).__name__
            raise ProtocolError(400, f"{what}: key {key} must be <{type_name}>, not {actual}")


def device_id(message: dict) -> str:
    """The identifier of the device: its UDID, or the EnrollmentID of a User Enrollment."""
    value = message.get("UDID", message.get("EnrollmentID"))
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(400, "the message carries no UDID (or EnrollmentID) string")
    if len(value) > 128:
        raise ProtocolError(400, "the UDID is too long")
    return value


def read_body(request: HttpRequest, limit: int) -> bytes:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        if int(declared) > limit:
            raise ProtocolError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    except ValueError:
        raise ProtocolError(400, "invalid Content-Length") from None
    body = request.read(limit + 1)
    if len(body) > limit:
        raise ProtocolError(413, f"body is over the {limit}-byte limit")
    if not body:
        raise ProtocolError(400, "empty body")
    return body


def parse_plist(body: bytes) -> dict:
    try:
        message = plistlib.loads(body)
    except (plistlib.InvalidFileException, ExpatError, ValueError, TypeError, OverflowError):
        raise ProtocolError(400, "the body is not a property list") from None
    if not isinstance(message, dict):
        raise ProtocolError(400, "the property list is not a dictionary")
    return message


Handler = Callable[[dict, DeviceIdentity, dt.datetime], HttpResponse]


def serve_device_request(request: HttpRequest, limit: int, handler: Handler) -> HttpResponse:
    """Run the checks every device request needs, then `handler(message, identity, started)`.

    `started` is when the request arrived, before any lock was taken: the queue uses it to
    tell a concurrent poll from a later one.
    """
    started = timezone.now()
    try:
        if request.method != "PUT":
            raise ProtocolError(405, f"method {request.method} not allowed: devices use PUT")
        body = read_body(request, limit)
        try:
            identity = authenticate_device(request, body)
        except IdentityError as exc:
            # Never 401 here: a proxy that lost the client certificate must not unenroll the
            # fleet. 403 changes nothing on the device.
            raise ProtocolError(403, f"device identity refused: {exc}") from None
        message = parse_plist(body)
        return handler(message, identity, started)
    except ProtocolError as exc:
        log.warning(
            "%s %s from %s refused with %s: %s",
            request.method,
            request.path,
            request.META.get("REMOTE_ADDR", "?"),
            exc.status,
            exc.reason,
        )
        response = HttpResponse(exc.reason + "\n", status=exc.status, content_type="text/plain")
        if exc.status == 405:
            response["Allow"] = "PUT"
        return response
