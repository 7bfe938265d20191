"""How declarations answer what the layers below announce, connected by DeclarationsConfig:

- devices.checkin's DeclarativeManagement messages: protocol.handle answers them;
- an Authenticate (devices.signals.device_authenticated): a new enrollment, whose device
  holds no declarations: what it was told and reported before is forgotten;
- a first TokenUpdate (devices.signals.device_enrolled): a device whose group or direct
  assignment already gives it declarations is told to sync;
- group membership changes (enrollment.signals.membership_changed): the devices that moved
  may have another manifest now.
"""

from devices.checkin import register_declarative_handler
from devices.signals import device_authenticated, device_enrolled
from enrollment.signals import membership_changed

from .manifest import set_ids_by_device
from .protocol import handle
from .sync import forget_enrollment, resync


def on_authenticated(sender, device, **kwargs) -> None:
    forget_enrollment(device)


def on_enrolled(sender, device, **kwargs) -> None:
    # Most enrollments have no declarations waiting: then the first TokenUpdate pays for
    # finding the device's sets only, not for a resync (an Authenticate just forgot its sync).
    if set_ids_by_device([device.pk])[device.pk]:
        resync([device.pk], by="enrollment")


def on_membership_changed(sender, device_ids, **kwargs) -> None:
    resync(device_ids)


def connect() -> None:
    register_declarative_handler(handle)
    device_authenticated.connect(on_authenticated, dispatch_uid="declarations.on_authenticated")
    device_enrolled.connect(on_enrolled, dispatch_uid="declarations.on_enrolled")
    membership_changed.connect(on_membership_changed, dispatch_uid="declarations.on_membership")
