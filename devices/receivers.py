"""How devices answers what certs announces (certs.signals), connected by DevicesConfig.ready."""

from certs.signals import certificate_issued

from .identities import bind, bound_device_id
from .models import Device


def bind_renewed_certificate(sender, certificate, renews, **kwargs) -> None:
    """A certificate that renews a bound one (SCEP renewal) identifies the same device."""
    if renews is None:
        return
    device_id = bound_device_id(renews)
    if device_id is not None:
        bind(certificate, Device(pk=device_id))


def connect() -> None:
    certificate_issued.connect(bind_renewed_certificate, dispatch_uid="devices.bind-renewed")
