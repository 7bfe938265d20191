"""How the queue answers what the check-in announces (devices.signals), connected by
CommandsConfig.ready. Each runs inside the check-in's transaction."""

from devices.signals import device_authenticated, device_checked_out, device_enrolled

from .catalog import initial_inventory_commands
from .queue import cancel_pending, enqueue


def cancel_for_new_enrollment(sender, device, certificate, **kwargs) -> None:
    """Authenticate starts a new enrollment: what was queued for the earlier one is canceled
    (kept in history)."""
    cancel_pending(device, "new enrollment (Authenticate)")


def queue_initial_inventory(sender, device, **kwargs) -> None:
    """The first TokenUpdate of an enrollment: ask for the inventory the rights allow."""
    for request_type, payload in initial_inventory_commands(device.access_rights):
        enqueue(device, request_type, payload, queued_by="enrollment")


def cancel_on_check_out(sender, device, **kwargs) -> None:
    cancel_pending(device, "CheckOut")


def connect() -> None:
    device_authenticated.connect(cancel_for_new_enrollment, dispatch_uid="commands.cancel-new")
    device_enrolled.connect(queue_initial_inventory, dispatch_uid="commands.initial-inventory")
    device_checked_out.connect(cancel_on_check_out, dispatch_uid="commands.cancel-checkout")
