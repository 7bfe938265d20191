"""What enrollment records about certificates and devices: which enrollment led to an identity
certificate, what a one-time secret in a profile (a SCEP challenge, an ACME ClientIdentifier) is
for, and each device's enrollment.

These used to be foreign keys on the certificate models; they live here because certificates
know no device and no enrollment.
"""

from django.utils import timezone

from certs.challenges import create_challenge
from certs.models import IssuedCertificate, ScepChallenge
from devices.identities import bind
from devices.models import Device

from .models import DeviceEnrollment, Enrollment, EnrollmentCertificate, EnrollmentChallenge


def issue_enrollment_challenge(
    enrollment: Enrollment | None,
    device: Device | None = None,
    *,
    purpose: str = ScepChallenge.Purpose.SCEP,
) -> str:
    """A one-time secret for a profile of `enrollment`: a SCEP challenge, or with `purpose`
    "acme" an ACME ClientIdentifier (whose orders need a device attestation unless the
    enrollment allows ACME without one). With `device` (a renewal profile sent to that device)
    the certificate issued for it binds to that device."""
    attestation = enrollment.acme_attestation if enrollment is not None else True
    text, challenge = create_challenge(
        purpose=purpose,
        attestation_required=attestation if purpose == ScepChallenge.Purpose.ACME else True,
    )
    if enrollment is not None or device is not None:
        EnrollmentChallenge.objects.create(
            challenge=challenge, enrollment=enrollment, device=device
        )
    return text


def link_certificate(
    certificate: IssuedCertificate, enrollment: Enrollment | None, device: Device | None = None
) -> None:
    """Record that `enrollment`'s profile led to `certificate`, bound to `device` if given."""
    if enrollment is not None:
        EnrollmentCertificate.objects.get_or_create(
            certificate=certificate, defaults={"enrollment": enrollment}
        )
    if device is not None:
        bind(certificate, device)


def enrollment_of(certificate: IssuedCertificate) -> Enrollment | None:
    link = (
        EnrollmentCertificate.objects.filter(certificate=certificate)
        .select_related("enrollment")
        .first()
    )
    return link.enrollment if link is not None else None


def challenge_link(challenge) -> EnrollmentChallenge | None:
    if challenge is None:
        return None
    return EnrollmentChallenge.objects.filter(challenge=challenge).first()


def device_enrollment(device: Device) -> Enrollment | None:
    """The enrollment whose profile the device installed last."""
    link = DeviceEnrollment.objects.filter(device=device).select_related("enrollment").first()
    return link.enrollment if link is not None else None


def record_device_enrollment(device: Device, enrollment: Enrollment) -> None:
    DeviceEnrollment.objects.update_or_create(
        device=device, defaults={"enrollment": enrollment, "since": timezone.now()}
    )


def scep_request_enrollment(request) -> Enrollment | None:
    """The enrollment a SCEP request is for: its challenge's, or that of the certificate it
    renews."""
    link = challenge_link(request.challenge)
    if link is not None:
        return link.enrollment
    return enrollment_of(request.renewal_of) if request.renewal_of is not None else None
