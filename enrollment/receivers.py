"""How enrollment answers what the layers below announce, connected by EnrollmentConfig.ready:
a certificate our CA issued (certs.signals), a device that authenticates, and a device waiting
in Setup Assistant to be configured (devices.signals)."""

from certs.signals import certificate_issued
from devices.signals import (
    device_authenticated,
    device_authenticating,
    device_awaiting_configuration,
)
from mdm_portal.audit import audit

from .links import challenge_link, enrollment_of, link_certificate, record_device_enrollment
from .setup_assistant import on_awaiting_configuration


def attestation_mismatch(certificate, device) -> str:
    """Why the device an attestation named is not `device` ("" when it is, or says nothing)."""
    if certificate.attested_udid and certificate.attested_udid != device.udid:
        return f"the attestation names UDID {certificate.attested_udid}, not {device.udid}"
    serial = device.serial_number
    if certificate.attested_serial and serial and certificate.attested_serial != serial:
        return f"the attestation names serial {certificate.attested_serial}, not {serial}"
    return ""


def link_issued_certificate(sender, certificate, challenge, renews, **kwargs) -> None:
    """The enrollment (and, for a renewal challenge, the device) the certificate came from; a
    renewed certificate keeps the enrollment of the one it renews.

    A renewal's certificate whose attestation names another device is not bound to the device
    the renewal was for: its messages are refused until it Authenticates, as the attested
    device."""
    link = challenge_link(challenge)
    if link is not None:
        device = link.device
        mismatch = attestation_mismatch(certificate, device) if device is not None else ""
        if mismatch:
            audit(
                "certificate.binding_refused",
                actor="enrollment",
                target=device.udid,
                serial=certificate.serial,
                reason=mismatch,
            )
            device = None
        link_certificate(certificate, link.enrollment, device)
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
    device_awaiting_configuration.connect(
        on_awaiting_configuration, dispatch_uid="enrollment.setup-assistant"
    )
