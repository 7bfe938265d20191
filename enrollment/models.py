"""What goes onto a device: enrollment profiles and the configuration-profile library."""

import secrets

from django.db import models


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Enrollment(models.Model):
    """An enrollment profile definition, shared by link (its token)."""

    class Identity(models.TextChoices):
        SCEP = "scep", "SCEP (the key never leaves the device)"
        PKCS12 = "pkcs12", "PKCS#12 (a server-generated key in the profile)"

    name = models.CharField(max_length=150)
    token = models.CharField(max_length=64, unique=True, default=new_token)
    access_rights = models.PositiveIntegerField(default=8191)
    identity = models.CharField(max_length=10, choices=Identity.choices, default=Identity.SCEP)
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
