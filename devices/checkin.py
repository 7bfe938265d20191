"""The check-in protocol: Authenticate, TokenUpdate, CheckOut and the newer check-in messages.

Each handler gets a message whose keys were checked and the verified identity of the sender,
and returns a Reply (data, not HTTP). Everything a handler writes is in one transaction. What
the layers above must do about a check-in (cancel commands, queue the initial inventory, apply
the enrollment) they do as receivers of devices.signals, inside that transaction.

A certificate whose key a device attested (ACME device-attest-01) names the device: on
Authenticate the message's UDID and SerialNumber must be the attested ones, or it is refused
with 403 and nothing is recorded but the audit entry. An attested serial needs the message to
carry SerialNumber (the device sends it when its AccessRights include device information, which
an enrollment with attestation requires): a message without one is refused too.
"""

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from certs.identity import DeviceIdentity
from certs.models import IssuedCertificate
from certs.pushcert import active_topic
from mdm_portal.audit import audit

from .activity import mark_seen, record_activity
from .identities import bind, bound_device_id
from .inventory import DEVICE_COLUMNS
from .models import Device
from .platforms import platform_for
from .protocol import (
    DeviceRequest,
    NotManaged,
    ProtocolError,
    Reply,
    check_keys,
    device_id,
    plist_reply,
)
from .signals import (
    checkin_received,
    device_authenticated,
    device_authenticating,
    device_awaiting_configuration,
    device_checked_out,
    device_enrolled,
)

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


OK = Reply()


class AuditedRefusal(ProtocolError):
    """A refusal that is audited: the entry is written after the message's transaction is
    rolled back, so it is the one thing the refused message leaves behind."""

    def __init__(self, status: int, reason: str, *, action: str, target: str, **details):
        super().__init__(status, reason)
        self.action, self.target, self.details = action, target, details

    def record(self) -> None:
        audit(self.action, actor="device", target=self.target, reason=self.reason, **self.details)


def _same(attested: str, claimed) -> bool:
    return isinstance(claimed, str) and claimed.strip().upper() == attested.strip().upper()


def check_attested(record: IssuedCertificate, message: dict, udid: str) -> None:
    """403 (audited) unless the device is the one the certificate's attestation named: its
    UDID, and its SerialNumber (which must then be in the message). Hex and serial letters
    compare without regard to case."""
    reason = ""
    if record.attested_udid and not _same(record.attested_udid, udid):
        reason = f"the UDID {udid} is not the one attested for this certificate"
    elif record.attested_serial and "SerialNumber" not in message:
        reason = "this certificate was attested with a serial number and Authenticate has none"
    elif record.attested_serial and not _same(record.attested_serial, message["SerialNumber"]):
        reason = "the SerialNumber is not the one attested for this certificate"
    if reason:
        raise AuditedRefusal(
            403,
            f"device attestation: {reason}",
            action="device.authenticate_refused",
            target=udid,
            certificate=record.sha256,
            certificate_serial=record.serial,
            attested_udid=record.attested_udid,
            attested_serial=record.attested_serial,
            serial_number=message.get("SerialNumber"),
        )


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
    devices = Device.objects.select_for_update() if lock else Device.objects
    device = devices.filter(udid=udid).first()
    bound_to = bound_device_id(identity.record)
    if bound_to is not None and (device is None or bound_to != device.pk):
        raise ProtocolError(403, f"the certificate is bound to another device, not {udid}")
    if device is None:
        raise NotManaged(f"unknown device {udid}")
    if bound_to is None:
        raise ProtocolError(403, f"the certificate was never bound to {udid} by Authenticate")
    if device.state == Device.State.CHECKED_OUT:
        raise NotManaged(f"{udid} checked out; it must authenticate again")
    return device


def handle_checkin(message: dict, identity: DeviceIdentity, request: DeviceRequest) -> Reply:
    message_type = message.get("MessageType")
    if not isinstance(message_type, str):
        raise ProtocolError(400, "MessageType is missing or not a string")
    spec = MESSAGE_KEYS.get(message_type)
    if spec is None:
        raise ProtocolError(400, f"unknown MessageType {message_type!r}")
    check_keys(message, spec, message_type)
    udid = device_id(message)
    handler = HANDLERS[message_type]
    # One transaction for the message and what it announces: a handler that refuses (raises)
    # announces nothing.
    try:
        with transaction.atomic():
            reply = handler(message, identity, udid)
            checkin_received.send(
                Device, message_type=message_type, udid=udid, message=message, request=request
            )
    except AuditedRefusal as refusal:
        refusal.record()
        raise
    log.info("%s from %s answered %s", message_type, udid, reply.status)
    return reply


def authenticate(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    """A new enrollment: the device is pending, its earlier enrollment's commands canceled."""
    check_topic(message)
    now = timezone.now()
    with transaction.atomic():
        record = IssuedCertificate.objects.select_for_update().get(pk=identity.record_id)
        check_attested(record, message, udid)
        device = Device.objects.select_for_update().filter(udid=udid).first()
        bound_to = bound_device_id(record)
        if bound_to is not None and (device is None or bound_to != device.pk):
            raise ProtocolError(403, f"the certificate is bound to another device, not {udid}")
        if device is None:
            device = Device(udid=udid)
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
        device.inactive_since = None
        # Nothing of the earlier enrollment carries over: no pushes until the next TokenUpdate.
        device.enrolled_at = None
        device.checked_out_at = None
        device.push_token = ""
        device.push_magic = ""
        device.unlock_token = None
        device.bootstrap_token = None
        device.awaiting_idle_after_not_now = False
        # Setup Assistant says again, in this enrollment's TokenUpdate, whether it waits.
        device.awaiting_configuration = False
        # The enrollment that led to the certificate decides AccessRights and group.
        device_authenticating.send(Device, device=device, certificate=record)
        device.save()
        record_activity(device.pk, now.date())
        if bound_to is None:
            bind(record, device)
        device_authenticated.send(Device, device=device, certificate=record)
        audit(
            "device.authenticated",
            actor="device",
            target=udid,
            certificate=record.sha256,
            enrollment=device.enrollment_count,
            method=identity.method,
        )
    return OK


def token_update(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    """The device is managed: remember how to push to it; the first one queues inventory.
    AwaitingConfiguration true (a device in Setup Assistant) is recorded and announced."""
    check_topic(message)
    if "UserID" in message or "UserShortName" in message:
        # The user channel is not supported: accept the token without storing it, so the
        # device does not retry, and keep the device channel's token intact.
        log.info("%s: user-channel TokenUpdate ignored (no user-channel support)", udid)
        return OK
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
        mark_seen(device, now)
        # A new token is reachable again.
        device.token_invalid_at = None
        if first:
            device.enrolled_at = now
        device.save()
        if first:
            device_enrolled.send(Device, device=device)
            audit("device.enrolled", actor="device", target=udid, method=identity.method)
        if device.awaiting_configuration:
            # After the initial inventory (queued just above for a first TokenUpdate): what
            # the device needs before it leaves Setup Assistant comes after it.
            device_awaiting_configuration.send(Device, device=device)
    return OK


def check_out(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    with transaction.atomic():
        device = bound_device(identity, udid, lock=True)
        device.state = Device.State.CHECKED_OUT
        device.checked_out_at = timezone.now()
        device.push_token = ""
        device.push_magic = ""
        device.unlock_token = None
        device.bootstrap_token = None
        device.save()
        device_checked_out.send(Device, device=device)
        audit("device.checked_out", actor="device", target=udid)
    return OK


def set_bootstrap_token(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
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
    return OK


def get_bootstrap_token(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    device = bound_device(identity, udid)
    if not device.bootstrap_token:
        return OK
    audit("device.bootstrap_token_read", actor="device", target=udid)
    return plist_reply({"BootstrapToken": device.bootstrap_token})


def user_authenticate(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    bound_device(identity, udid)
    # Apple: a server without user-channel support answers 410, and the user logs in unmanaged.
    return Reply(410, b"user channel not supported\n", "text/plain")


# Who answers DeclarativeManagement: the declarations app (a layer above) registers it.
DeclarativeHandler = Callable[[Device, str, bytes | None], Reply]
_declarative: list[DeclarativeHandler] = []


def register_declarative_handler(handler: DeclarativeHandler) -> None:
    """Called by the app that answers DeclarativeManagement: handler(device, Endpoint, Data)."""
    _declarative[:] = [handler]


def declarative_management(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    """The declarative channel (tokens, declaration-items, declaration/…, status), for a
    managed device whose certificate is bound to it, in the message's transaction. The device
    row is locked first, as everything that changes a device's declarations locks it first."""
    device = bound_device(identity, udid, lock=True)
    if device.state != Device.State.ENROLLED:
        raise ProtocolError(400, "DeclarativeManagement: the device has not sent TokenUpdate")
    if not _declarative:
        raise ProtocolError(400, "DeclarativeManagement is not supported by this server")
    seen = mark_seen(device, timezone.now())
    if seen:
        device.save(update_fields=seen)
    return _declarative[0](device, message["Endpoint"], message.get("Data"))


def not_implemented(message: dict, identity: DeviceIdentity, udid: str) -> Reply:
    bound_device(identity, udid)
    raise ProtocolError(400, f"{message['MessageType']} is not supported by this server yet")


HANDLERS = {
    "Authenticate": authenticate,
    "TokenUpdate": token_update,
    "CheckOut": check_out,
    "SetBootstrapToken": set_bootstrap_token,
    "GetBootstrapToken": get_bootstrap_token,
    "UserAuthenticate": user_authenticate,
    "DeclarativeManagement": declarative_management,
    "GetToken": not_implemented,
}
