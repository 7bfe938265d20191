"""The inventory: devices, their groups, and what the latest command results said about them."""

from django.conf import settings
from django.db import models

from mdm_portal.encryption import EncryptedBinaryField


class DeviceGroup(models.Model):
    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


def default_access_rights() -> int:
    return settings.MDM_DEFAULT_ACCESS_RIGHTS


class Device(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending (authenticated, no TokenUpdate yet)"
        ENROLLED = "enrolled", "Enrolled (managed)"
        CHECKED_OUT = "checked_out", "Checked out (not managed)"

    udid = models.CharField(max_length=128, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    group = models.ForeignKey(
        DeviceGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    access_rights = models.PositiveIntegerField(default=default_access_rights)

    # What the device told us about itself (Authenticate, then DeviceInformation).
    serial_number = models.CharField(max_length=64, blank=True)  # indexed with id (Meta)
    device_name = models.CharField(max_length=255, blank=True)
    model = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=128, blank=True)
    product_name = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=32, blank=True)
    build_version = models.CharField(max_length=32, blank=True)
    imei = models.CharField(max_length=32, blank=True)
    meid = models.CharField(max_length=32, blank=True)
    # iOS, macOS, tvOS, visionOS or watchOS (devices.platforms), for the catalog's checks.
    platform = models.CharField(max_length=16, blank=True)  # indexed with os_version (Meta)
    is_supervised = models.BooleanField(null=True)
    # Set when EnableLostMode is acknowledged, cleared by DisableLostMode: ClearPasscode is
    # never sent to a lost device.
    lost_mode = models.BooleanField(default=False)

    # Push: what TokenUpdate gave us. The token and PushMagic only let the holder of the push
    # certificate's private key wake the device; UnlockToken is a master passcode: encrypted.
    topic = models.CharField(max_length=200, blank=True)
    push_token = models.CharField(max_length=200, blank=True)  # hex
    push_magic = models.CharField(max_length=200, blank=True)
    unlock_token = EncryptedBinaryField(null=True, blank=True, editable=False)
    bootstrap_token = EncryptedBinaryField(null=True, blank=True, editable=False)
    awaiting_configuration = models.BooleanField(default=False)

    # The enrollment lifecycle.
    enrollment_count = models.PositiveIntegerField(default=0)
    authenticated_at = models.DateTimeField(null=True, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)  # first TokenUpdate of enrollment
    token_updated_at = models.DateTimeField(null=True, blank=True)
    checked_out_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)  # indexed for managed devices
    created_at = models.DateTimeField(auto_now_add=True)

    # Set by a NotNow status, cleared by the next Idle: until then only commands that never
    # answer NotNow are sent.
    awaiting_idle_after_not_now = models.BooleanField(default=False)

    # Push bookkeeping. APNs said the token is invalid (410 / BadDeviceToken): no pushes and
    # no new commands until the next TokenUpdate.
    token_invalid_at = models.DateTimeField(null=True, blank=True)
    # Not seen for MDM_INACTIVE_DAYS: set by the inactivity sweep, cleared by the next request.
    inactive_since = models.DateTimeField(null=True, blank=True)
    # A push is wanted (commands were queued); the push task claims it (moves it to the end
    # of a lease) and clears it once APNs has the push, so many commands in a short window make
    # one push and a worker killed mid-batch loses none.
    push_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_push_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["udid"]
        indexes = [
            # The inactivity and keep-alive sweeps scan managed devices by last_seen_at.
            models.Index(
                fields=["last_seen_at"],
                name="managed_by_last_seen",
                condition=models.Q(state="enrolled"),
            ),
            # The device list's sorts (devices.tables): each ends with the primary key, so a
            # page is a short index scan at any fleet size, deep pages included. A search has
            # its trigram index (PostgreSQL), made by migration 0010.
            models.Index(fields=["device_name", "id"], name="device_by_name"),
            models.Index(fields=["serial_number", "id"], name="device_by_serial"),
            models.Index(fields=["model_name", "product_name", "id"], name="device_by_model"),
            models.Index(fields=["platform", "os_version", "id"], name="device_by_os"),
            models.Index(fields=["state", "id"], name="device_by_state"),
            models.Index(fields=["last_seen_at", "id"], name="device_by_last_seen"),
        ]

    def __str__(self) -> str:
        return self.device_name or self.udid

    @property
    def is_managed(self) -> bool:
        return self.state == self.State.ENROLLED


class DailyActivity(models.Model):
    """A device that sent at least one request on `day` (UTC): one row per device and day, written
    by its first request of the day, for the dashboard's check-ins chart."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "day"], name="one_activity_per_day")
        ]
        indexes = [models.Index(fields=["day"], name="activity_by_day")]

    def __str__(self) -> str:
        return f"device {self.device_id} on {self.day}"


class CertificateBinding(models.Model):
    """An identity certificate our CA issued, bound to the device it identifies.

    Bound on the device's first Authenticate with it, or at issuance when the certificate
    renews one that was bound (SCEP renewal, a renewal profile). A certificate binds to one
    device for life; a device has as many as it was issued, the newest unrevoked one current.
    """

    certificate = models.OneToOneField(
        "certs.IssuedCertificate", on_delete=models.CASCADE, related_name="binding"
    )
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="bindings")
    bound_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"certificate {self.certificate_id} of device {self.device_id}"


class InventoryReport(models.Model):
    """The latest answer of one query command for one device, as JSON-safe data."""

    class Kind(models.TextChoices):
        DEVICE_INFORMATION = "DeviceInformation"
        SECURITY_INFO = "SecurityInfo"
        PROFILE_LIST = "ProfileList"
        PROVISIONING_PROFILE_LIST = "ProvisioningProfileList"
        CERTIFICATE_LIST = "CertificateList"
        INSTALLED_APPLICATION_LIST = "InstalledApplicationList"
        MANAGED_APPLICATION_LIST = "ManagedApplicationList"
        RESTRICTIONS = "Restrictions"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="reports")
    kind = models.CharField(max_length=40, choices=Kind.choices)
    data = models.JSONField()
    reported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "kind"], name="one_report_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of device {self.device_id}"


class InstalledProfile(models.Model):
    """A configuration profile the device's latest ProfileList reported."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="profiles")
    identifier = models.CharField(max_length=255, db_index=True)
    uuid = models.CharField(max_length=64, blank=True)
    display_name = models.CharField(max_length=255, blank=True)
    organization = models.CharField(max_length=255, blank=True)
    version = models.IntegerField(null=True, blank=True)
    is_managed = models.BooleanField(null=True)
    is_encrypted = models.BooleanField(null=True)
    reported_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.identifier


class InstalledApplication(models.Model):
    """An app the device's latest InstalledApplicationList reported."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="applications")
    identifier = models.CharField(max_length=255, db_index=True)
    name = models.CharField(max_length=255, blank=True)
    version = models.CharField(max_length=64, blank=True)
    short_version = models.CharField(max_length=64, blank=True)
    bundle_size = models.BigIntegerField(null=True, blank=True)
    dynamic_size = models.BigIntegerField(null=True, blank=True)
    is_managed = models.BooleanField(null=True)
    reported_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.identifier


class InstalledCertificate(models.Model):
    """A certificate the device's latest CertificateList reported."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="installed_certs")
    common_name = models.CharField(max_length=255, blank=True)
    is_identity = models.BooleanField(default=False)
    sha256 = models.CharField(max_length=64, db_index=True)
    not_after = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.common_name or self.sha256
