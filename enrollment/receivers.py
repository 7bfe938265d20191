"""How enrollment answers what the layers below announce, connected by EnrollmentConfig.ready:
a certificate our CA issued (certs.signals) and a device that authenticates (devices.signals)."""

from certs.signals import certificate_issued
from devices.signals import device_authenticated, device_authenticating

from .links import challenge_link, enrollment_of, link_certificate, record_device_enrollment


def link_issued_certificate(sender, certificate, challenge, renews, **kwargs) -> None:
    """The enrollment (and, for a renewal challenge, the device) the certificate came from; a
    renewed certificate keeps the enrollment of the one it renews."""
    link = challenge_link(challenge)
    if link is not None:
        link_certificate(certificate, link.enrollment, link.device)
    elif renews is not None:
        link_certificate(certificate, enrollment_of(renews))


def apply_enrollment(sender, device, certificate, **kwargs) -> None:
    """The enrollment profile the device installed decides its AccessRights and its group."""
    enrollment = enrollment_of(certificate)
    if enrollment is None:
        return
    device.access_rights = enrollment.access_rights
    if enrollment.group_id is not None:
        device.group_id = enrollment.group_id


def remember_enrollment(sender, device, certificate, **kwargs) -> None:
    enrollment = enrollment_of(certificate)
    if enrollment is not None:
        record_device_enrollment(device, enrollment)


def connect() -> None:
    certificate_issued.connect(link_issued_certificate, dispatch_uid="enrollment.link-issued")
    device_authenticating.connect(apply_enrollment, dispatch_uid="enrollment.apply")
    device_authenticated.connect(remember_enrollment, dispatch_uid="enrollment.remember")
