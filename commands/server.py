"""The server URL: a device reports a status (or Idle) and gets its next command."""

from datetime import datetime

from django.http import HttpResponse

from certs.identity import DeviceIdentity
from devices.checkin import bound_device, handle_checkin
from devices.protocol import NotManaged, ProtocolError, check_keys, device_id

from . import queue

CHECKIN_CONTENT_TYPE = "application/x-apple-aspen-mdm-checkin"
STATUSES = {"Acknowledged", "Error", "CommandFormatError", "Idle", "NotNow"}
REPORT_KEYS = {
    "Status": ("string", True),
    "CommandUUID": ("string", False),
    "ErrorChain": ("array", False),
    "UDID": ("string", False),
    "EnrollmentID": ("string", False),
}


def is_checkin(request, message: dict) -> bool:
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    return "MessageType" in message or content_type == CHECKIN_CONTENT_TYPE


def handle_report(message: dict, identity: DeviceIdentity, started: datetime) -> HttpResponse:
    check_keys(message, REPORT_KEYS, "command report")
    status = message["Status"]
    if status not in STATUSES:
        raise ProtocolError(400, f"unknown Status {status!r}")
    if status != "Idle" and "CommandUUID" not in message:
        raise ProtocolError(400, f"a {status} report must carry its CommandUUID")
    udid = device_id(message)
    device = bound_device(identity, udid)
    if not device.is_managed:
        raise NotManaged(f"{udid} is not managed (no TokenUpdate since Authenticate)")
    if "UserID" in message:
        return HttpResponse(status=200)  # no user-channel commands
    body = queue.process_report(device.pk, message, started)
    if body is None:
        return HttpResponse(status=200)
    return HttpResponse(body, status=200, content_type="application/xml; charset=UTF-8")


def route(request):
    """Check-in messages may come to the server URL too: tell them apart and dispatch."""

    def handler(message: dict, identity: DeviceIdentity, started: datetime) -> HttpResponse:
        if is_checkin(request, message):
            return handle_checkin(message, identity, started)
        return handle_report(message, identity, started)

    return handler
