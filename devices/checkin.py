"""The check-in protocol: Authenticate, TokenUpdate, CheckOut and the newer check-in messages.

Each handler gets a message whose keys were checked and the verified identity of the sender,
and returns the HTTP response. Everything a handler writes is in one transaction.
"""

import logging
import plistlib
from datetime import datetime

from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone

from certs.identity import DeviceIdentity
from certs.models import IssuedCertificate
from certs.pushcert import active_topic
from commands import queue
from commands.catalog import initial_inventory_commands
from mdm_portal.audit import audit

from .inventory import DEVICE_COLUMNS
from .models import Device
from .platforms import platform_for
from .protocol import NotManaged, ProtocolError, check_keys, device_id

log = logging.getLogger("mdm.checkin")

# Keys each message must or may carry: key -> (plist type, required). The device identifier
# (UDID, or EnrollmentID for User Enrollment) is checked by device_id().
_ID_KEYS = {"UDID": ("string", False), "EnrollmentID": ("string", False)}
MESSAGE_KEYS: dict[str, dict[str, tuple[str, bool]]] = {
    "Authenticate": {
        **_ID_KEYS,
        "Topic": ("string", True),
        # Authenticate describes the device with the same keys DeviceInformation answers.
        **{key: ("string", False) for key in DEVICE_COLUMNS},
    },
    "TokenUpdate": {
        **_ID_KEYS,
        "Topic": ("string", True),
        "Token": ("data", True),
        "PushMagic": ("string", True),
        "UnlockToken": ("data", False),
        "AwaitingConfiguration": ("boolean", False),
        "NotOnConsole": ("boolean", False),
        "UserID": ("string", False),
        "UserShortName": ("string", False),
        "UserLongName": ("string", False),
    },
    "CheckOut": {**_ID_KEYS, "Topic": ("string", True)},
    "SetBootstrapToken": {
        **_ID_KEYS,
        "BootstrapToken": ("data", False),
        "AwaitingConfiguration": ("boolean", False),
    },
    "GetBootstrapToken": {**_ID_KEYS, "AwaitingConfiguration": ("boolean", False)},
    "UserAuthenticate": {
        **_ID_KEYS,
        "UserID": ("string", True),
        "DigestResponse": ("string", False),
    },
    "DeclarativeManagement": {**_ID_KEYS, "Endpoint": ("string", True), "Data": ("data", False)},
    "GetToken": {**_ID_KEYS, "TokenServiceType": ("string", True)},
}


def ok(body: bytes = b"", content_type: str = "application/xml") -> HttpResponse:
    return HttpResponse(body, status=200, content_type=content_type)


def check_topic(message: dict) -> None:
    topic = message.get("Topic")
    expected = active_topic()
    if topic is not None and expected is not None and topic != expected:
        raise ProtocolError(
            400, f"Topic {topic!r} is not the push certificate's topic {expected!r}"
        )


def bound_device(identity: DeviceIdentity, udid: str, *, lock: bool = False) -> Device:
    """The device `udid` if the presented certificate is bound to it.

    403 when the certificate belongs to another device or to none; 401 when the portal knows
    the device is not managed (unknown, or checked out).
    """
    record = identity.record
    devices = Device.objects.select_for_update() if lock else Device.objects
    device = devices.filter(udid=udid).first()
    if record.device_id is not None and (device is None or record.device_id != device.pk):
        raise ProtocolError(403, f"the certificate is bound to another device, not {udid}")
    if device is None:
        raise NotManaged(f"unknown device {udid}")
    if record.device_id is None:
        raise ProtocolError(403, f"the certificate was never bound to {udid} by Authenticate")
    if device.state == Device.State.CHECKED_OUT:
        raise NotManaged(f"{udid} checked out; it must authenticate again")
    return device


def handle_checkin(message: dict, identity: DeviceIdentity, started: datetime) -> HttpResponse:
    message_type = message.get("MessageType")
    if not isinstance(message_type, str):
        raise ProtocolError(400, "MessageType is missing or not a string")
    spec = MESSAGE_KEYS.get(message_type)
    if spec is None:
        raise ProtocolError(400, f"unknown MessageType {message_type!r}")
    check_keys(message, spec, message_type)
    udid = device_id(message)
    handler = HANDLERS[message_type]
    response = handler(message, identity, udid)
    log.info("%s from %s answered %s", message_type, udid, response.status_code)
    return response


def authenticate(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    """A new enrollment: the device is pending, its earlier enrollment's commands canceled."""
    check_topic(message)
    now = timezone.now()
    with transaction.atomic():
        record = IssuedCertificate.objects.select_for_update().get(pk=identity.record.pk)
        device = Device.objects.select_for_update().filter(udid=udid).first()
        if record.device_id is not None and (device is None or record.device_id != device.pk):
            raise ProtocolError(403, f"the certificate is bound to another device, not {udid}")
        if device is None:
            device = Device(udid=udid)
        else:
            queue.cancel_pending(device, "new enrollment (Authenticate)")
        for key, field in DEVICE_COLUMNS.items():
            if key in message:
                max_length = Device._meta.get_field(field).max_length
                setattr(device, field, message[key][:max_length])
        device.platform = platform_for(device.product_name, device.model_name) or device.platform
        device.state = Device.State.PENDING
        device.topic = message["Topic"]
        device.enrollment_count += 1
        device.authenticated_at = now
        device.last_seen_at = now
        # Nothing of the earlier enrollment carries over: no pushes until the next TokenUpdate.
        device.enrolled_at = None
        device.checked_out_at = None
        device.push_token = ""
        device.push_magic = ""
        device.unlock_token = None
        device.bootstrap_token = None
        device.awaiting_idle_after_not_now = False
        apply_enrollment(device, record)
        device.save()
        if record.device_id is None:
            record.device = device
            record.bound_at = now
            record.save(update_fields=["device", "bound_at"])
        audit(
            "device.authenticated",
            actor="device",
            target=udid,
            certificate=record.sha256,
            enrollment=device.enrollment_count,
            method=identity.method,
        )
    return ok()


def apply_enrollment(device: Device, record: IssuedCertificate) -> None:
    """The enrollment profile the device installed decides its AccessRights and its group.

    Its identity certificate records which enrollment led to it (SCEP challenge or PKCS#12).
    """
    enrollment = record.enrollment
    if enrollment is None:
        return
    device.enrollment = enrollment
    device.access_rights = enrollment.access_rights
    if enrollment.group_id is not None:
        device.group_id = enrollment.group_id


def token_update(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    """The device is managed: remember how to push to it; the first one queues inventory."""
    check_topic(message)
    if "UserID" in message or "UserShortName" in message:
        # The user channel is not supported: accept the token without storing it, so the
        # device does not retry, and keep the device channel's token intact.
        log.info("%s: user-channel TokenUpdate ignored (no user-channel support)", udid)
        return ok()
    now = timezone.now()
    with transaction.atomic():
        device = bound_device(identity, udid, lock=True)
        first = device.enrolled_at is None
        device.topic = message["Topic"]
        device.push_token = message["Token"].hex()
        device.push_magic = message["PushMagic"]
        if "UnlockToken" in message:
            device.unlock_token = message["UnlockToken"]
        device.awaiting_configuration = message.get("AwaitingConfiguration", False)
        device.state = Device.State.ENROLLED
        device.token_updated_at = now
        device.last_seen_at = now
        # A new token is reachable again; a device that checks in is not inactive.
        device.token_invalid_at = None
        device.inactive_since = None
        if first:
            device.enrolled_at = now
        device.save()
        if first:
            for request_type, payload in initial_inventory_commands(device.access_rights):
                queue.enqueue(device, request_type, payload, queued_by="enrollment")
            audit("device.enrolled", actor="device", target=udid, method=identity.method)
    return ok()


def check_out(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    with transaction.atomic():
        device = bound_device(identity, udid, lock=True)
        queue.cancel_pending(device, "CheckOut")
        device.state = Device.State.CHECKED_OUT
        device.checked_out_at = timezone.now()
        device.push_token = ""
        device.push_magic = ""
        device.unlock_token = None
        device.bootstrap_token = None
        device.save()
        audit("device.checked_out", actor="device", target=udid)
    return ok()


def set_bootstrap_token(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    with transaction.atomic():
        device = bound_device(identity, udid, lock=True)
        # A missing or empty token means "remove the escrowed one".
        device.bootstrap_token = message.get("BootstrapToken") or None
        device.awaiting_configuration = message.get("AwaitingConfiguration", False)
        device.save(update_fields=["bootstrap_token", "awaiting_configuration"])
        audit(
            "device.bootstrap_token_set",
            actor="device",
            target=udid,
            removed=device.bootstrap_token is None,
        )
    return ok()


def get_bootstrap_token(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    device = bound_device(identity, udid)
    if not device.bootstrap_token:
        return ok()
    audit("device.bootstrap_token_read", actor="device", target=udid)
    return ok(plistlib.dumps({"BootstrapToken": device.bootstrap_token}))


def user_authenticate(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    bound_device(identity, udid)
    # Apple: a server without user-channel support answers 410, and the user logs in unmanaged.
    return HttpResponse("user channel not supported\n", status=410, content_type="text/plain")


def not_implemented(message: dict, identity: DeviceIdentity, udid: str) -> HttpResponse:
    bound_device(identity, udid)
    raise ProtocolError(400, f"{message['MessageType']} is not supported by this server yet")


HANDLERS = {
    "Authenticate": authenticate,
    "TokenUpdate": token_update,
    "CheckOut": check_out,
    "SetBootstrapToken": set_bootstrap_token,
    "GetBootstrapToken": get_bootstrap_token,
    "UserAuthenticate": user_authenticate,
    "DeclarativeManagement": not_implemented,
    "GetToken": not_implemented,
}
