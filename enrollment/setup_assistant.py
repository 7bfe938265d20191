"""A device in Setup Assistant, waiting to be configured (Automated Device Enrollment).

When a DEP profile sets `await_device_configured`, the device enrolls from Setup Assistant and
stays there: its TokenUpdate says AwaitingConfiguration, and it goes on only once the server
sends DeviceConfigured (Apple: "Informs the device that it can continue past DEP enrollment.
Only works on devices in DEP that have their cloud configuration set to await
configuration."). So when devices announces such a TokenUpdate (device_awaiting_configuration,
after the initial inventory was queued), the portal queues the device's configuration, the
library profiles assigned to it or its group, and then DeviceConfigured, last: the queue
delivers in the order rows were made (and holds a NotNow'd command's followers back), so the
device is released once the rest is answered. The catalog's DeviceConfigured hook clears
Device.awaiting_configuration when the device acknowledges it.

Once per enrollment: a second TokenUpdate with the flag (a token refresh in Setup Assistant)
finds the DeviceConfigured already queued since the Authenticate and queues nothing.

A device whose DEP profile does not await configuration never sends the flag: it leaves Setup
Assistant as soon as it has enrolled, gets no DeviceConfigured (it would answer an error), and
its library profiles come the usual way, after its first ProfileList.
"""

import logging

from commands.models import ArchivedCommand, QueuedCommand
from commands.queue import EnqueueError, enqueue
from devices.models import Device
from mdm_portal.audit import audit

from .library import install_assigned

log = logging.getLogger("mdm.dep")

ACTOR = "setup-assistant"
RELEASE = "DeviceConfigured"


def release_queued(device: Device) -> bool:
    """Whether this enrollment of the device (since its Authenticate) has a DeviceConfigured
    already: queued, sent, answered, or archived since."""
    rows = {"device": device, "request_type": RELEASE}
    if device.authenticated_at is not None:
        rows["created_at__gte"] = device.authenticated_at
    return (
        QueuedCommand.objects.filter(**rows).exists()
        or ArchivedCommand.objects.filter(**rows).exists()
    )


def configure_then_release(device: Device) -> bool:
    """Queue the device's library profiles, then DeviceConfigured, unless this enrollment has
    one already. Returns whether DeviceConfigured was queued. Call inside the check-in's
    transaction, with the device row locked (TokenUpdate holds it)."""
    if release_queued(device):
        return False
    installs, skipped = install_assigned(device, by=ACTOR)
    try:
        command = enqueue(device, RELEASE, {}, queued_by=ACTOR)
    except EnqueueError as exc:
        # The device would stay in Setup Assistant: say so loudly, but take its TokenUpdate
        # (refusing it would leave the device unmanaged as well as stuck).
        log.error("%s: DeviceConfigured cannot be queued: %s", device.udid, exc)
        audit("device.release_refused", actor=ACTOR, target=device.udid, reason=str(exc))
        return False
    audit(
        "device.release_queued",
        actor=ACTOR,
        target=device.udid,
        command=command.uuid,
        profiles_queued=installs,
        profiles_skipped=skipped,
    )
    return True


def on_awaiting_configuration(sender, device: Device, **kwargs) -> None:
    configure_then_release(device)
