"""What the portal serves a device by GET (an asset's data, for declarative management),
authenticated the way check-in is: the device's identity certificate, from the TLS proxy's
header or an Mdm-Signature (over the empty body of a GET), must chain to our CA, be in date,
unrevoked and bound to a managed device. Anything else is a 403 that changes nothing (never a
401: that would make the device drop its MDM profile)."""

from collections.abc import Callable

from certs.identity import IdentityError, authenticate_device

from .identities import bound_device_id
from .models import Device
from .protocol import DeviceRequest, ProtocolError, Reply, refused

DownloadHandler = Callable[[Device, DeviceRequest], Reply]


def requesting_device(request: DeviceRequest) -> Device:
    """The managed device whose identity made the request, or a ProtocolError (403)."""
    try:
        identity = authenticate_device(
            b"",
            client_certificate=request.client_certificate,
            mdm_signature=request.mdm_signature,
        )
        record = identity.require_unrevoked()
    except IdentityError as exc:
        raise ProtocolError(403, f"device identity refused: {exc}") from None
    device_id = bound_device_id(record)
    device = Device.objects.filter(pk=device_id).first() if device_id is not None else None
    if device is None:
        raise ProtocolError(403, "the certificate is not bound to a device by Authenticate")
    if device.state != Device.State.ENROLLED:
        raise ProtocolError(403, f"{device.udid} is not managed")
    return device


def serve_device_download(request: DeviceRequest, handler: DownloadHandler) -> Reply:
    """GET only; the device is authenticated before `handler(device, request)` runs."""
    try:
        if request.method not in ("GET", "HEAD"):
            raise ProtocolError(405, f"method {request.method} not allowed: use GET")
        return handler(requesting_device(request), request)
    except ProtocolError as exc:
        return refused(request, exc, allow="GET")
