"""What goes onto a device: enrollment profiles and the configuration-profile library."""

import secrets

from django.db import models


def new_token() -> str:
    """A link token; never starting with "-", which a command line would read as an option
    (`mdm_enrollment deactivate -Xy...`)."""
    while (token := secrets.token_urlsafe(24)).startswith("-"):
        continue
    return token


class Enrollment(models.Model):
    """An enrollment profile definition, shared by link (its token)."""

    class Identity(models.TextChoices):
        ACME = "acme", "ACME (the key never leaves the device; attested by the hardware)"
        SCEP = "scep", "SCEP (the key never leaves the device)"
        PKCS12 = "pkcs12", "PKCS#12 (a server-generated key in the profile)"

    name = models.CharField(max_length=150)
    token = models.CharField(max_length=64, unique=True, default=new_token)
    access_rights = models.PositiveIntegerField(default=8191)
    identity = models.CharField(max_length=10, choices=Identity.choices, default=Identity.SCEP)
    # ACME only: devices must prove in hardware which device they are (Apple's device
    # attestation). Off only for older devices that cannot attest, and shown as such.
    acme_attestation = models.BooleanField(default=True)
    check_out_when_removed = models.BooleanField(default=True)
    sign_message = models.BooleanField(default=False)
    group = models.ForeignKey(
        "devices.DeviceGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)  # profiles handed out
    active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """A configuration profile in the library, stored as its unsigned plist."""

    name = models.CharField(max_length=255)
    identifier = models.CharField(max_length=255, unique=True)
    uuid = models.CharField(max_length=64)
    version = models.IntegerField(default=1)
    payload = models.BinaryField()  # XML plist of the profile (signed uploads are unwrapped)
    sha256 = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    uploaded_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class ProfileAssignment(models.Model):
    """A profile that belongs on a device, or on every device of a group."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="assignments")
    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    group = models.ForeignKey(
        "devices.DeviceGroup", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(device__isnull=False, group__isnull=True)
                | models.Q(device__isnull=True, group__isnull=False),
                name="assignment_to_device_or_group",
            ),
            models.UniqueConstraint(fields=["profile", "device"], name="one_device_assignment"),
            models.UniqueConstraint(fields=["profile", "group"], name="one_group_assignment"),
        ]

    def __str__(self) -> str:
        return f"{self.profile} -> {self.device or self.group}"


class EnrollmentChallenge(models.Model):
    """What a SCEP challenge in one of our profiles is for: its enrollment, and for a renewal
    profile the device whose new identity the challenge authorises."""

    challenge = models.OneToOneField(
        "certs.ScepChallenge", on_delete=models.CASCADE, related_name="enrollment_link"
    )
    enrollment = models.ForeignKey(
        Enrollment, null=True, blank=True, on_delete=models.CASCADE, related_name="challenges"
    )
    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    def __str__(self) -> str:
        return f"challenge {self.challenge_id} of {self.enrollment}"


class EnrollmentCertificate(models.Model):
    """The enrollment whose profile led to an identity certificate (SCEP or PKCS#12)."""

    certificate = models.OneToOneField(
        "certs.IssuedCertificate", on_delete=models.CASCADE, related_name="enrollment_link"
    )
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"certificate {self.certificate_id} from {self.enrollment}"


class DeviceEnrollment(models.Model):
    """The enrollment whose profile a device installed last: its AccessRights and group came
    from it, and renewal profiles are built from it."""

    device = models.OneToOneField(
        "devices.Device", on_delete=models.CASCADE, related_name="enrollment_link"
    )
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="devices")
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"device {self.device_id} in {self.enrollment}"


class ProfileCommand(models.Model):
    """An InstallProfile or RemoveProfile the library queued, and for which profile: the queue
    itself knows no profile."""

    command = models.OneToOneField(
        "commands.Command", on_delete=models.CASCADE, related_name="profile_link"
    )
    identifier = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return f"{self.identifier} ({self.command_id})"


class IdentityRenewal(models.Model):
    """An InstallProfile that carries a renewal profile (a new identity for one device)."""

    command = models.OneToOneField(
        "commands.Command", on_delete=models.CASCADE, related_name="identity_renewal"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"identity renewal {self.command_id}"


from .dep_models import DepDevice, DepProfile, DepServer  # noqa: E402, F401 - models of the app
