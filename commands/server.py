"""The server URL: a device reports a status (or Idle) and gets its next command.

Check-in messages may come here too (when the MDM payload has no CheckInURL): they carry
MessageType, or the check-in content type, and go to the check-in handlers. Handlers return a
Reply (data, not HTTP); commands/views.py serves it.
"""

from django.db import transaction

from certs.identity import DeviceIdentity, IdentityError
from devices.checkin import handle_checkin
from devices.polling import polling_device
from devices.protocol import (
    DeviceRequest,
    ProtocolError,
    Reply,
    check_keys,
    device_id,
)

from . import loop

CHECKIN_CONTENT_TYPE = "application/x-apple-aspen-mdm-checkin"
STATUSES = {"Acknowledged", "Error", "CommandFormatError", "Idle", "NotNow"}
REPORT_KEYS = {
    "Status": ("string", True),
    "CommandUUID": ("string", False),
    "ErrorChain": ("array", False),
    "UDID": ("string", False),
    "EnrollmentID": ("string", False),
}


def is_checkin(request: DeviceRequest, message: dict) -> bool:
    content_type = request.content_type.split(";")[0].strip().lower()
    return "MessageType" in message or content_type == CHECKIN_CONTENT_TYPE


def handle_report(message: dict, identity: DeviceIdentity, request: DeviceRequest) -> Reply:
    check_keys(message, REPORT_KEYS, "command report")
    status = message["Status"]
    if status not in STATUSES:
        raise ProtocolError(400, f"unknown Status {status!r}")
    if status != "Idle" and "CommandUUID" not in message:
        raise ProtocolError(400, f"a {status} report must carry its CommandUUID")
    udid = device_id(message)
    if "UserID" in message:  # no user-channel commands; the device channel's checks still hold
        with transaction.atomic():
            polling_device(identity, udid)
        return Reply()
    # Revocation, binding and managed state are checked by the loop's first statement.
    body = loop.poll(identity, udid, message, request.started, request)
    if body is None:
        return Reply()
    return Reply(body=body, content_type="application/xml; charset=UTF-8")


def handle_connect(message: dict, identity: DeviceIdentity, request: DeviceRequest) -> Reply:
    """Everything the server URL receives: check-in messages and command reports."""
    if is_checkin(request, message):
        try:  # the server URL leaves revocation to its handlers (commands/views.py)
            identity.require_unrevoked()
        except IdentityError as exc:
            raise ProtocolError(403, f"device identity refused: {exc}") from None
        return handle_checkin(message, identity, request)
    return handle_report(message, identity, request)
