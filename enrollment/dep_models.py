"""Automated Device Enrollment (Apple Business Manager / School Manager): the DEP servers the
portal is (one per server token), their devices as Apple lists them, and the DEP profiles
that send those devices to an enrollment from Setup Assistant."""

from django.db import models

from mdm_portal.encryption import EncryptedBinaryField


class DepServer(models.Model):
    """One MDM server in ABM, known by its server token: OAuth credentials (encrypted at rest),
    the sync cursor, and how the last sync went. Renewing the token keeps this record."""

    name = models.CharField(max_length=150, unique=True)
    key = models.ForeignKey("certs.DepTokenKey", on_delete=models.PROTECT, related_name="+")
    # From the server token (.p7m); empty until one is imported.
    consumer_key = models.CharField(max_length=200, blank=True)
    consumer_secret = EncryptedBinaryField(null=True, blank=True)
    access_token = models.CharField(max_length=200, blank=True)
    access_secret = EncryptedBinaryField(null=True, blank=True)
    access_token_expiry = models.DateTimeField(null=True, blank=True)
    token_imported_at = models.DateTimeField(null=True, blank=True)
    # The X-ADM-Auth-Session of the OAuth session (/session), kept until Apple refuses it.
    session_token = EncryptedBinaryField(null=True, blank=True)
    # From /account.
    server_uuid = models.CharField(max_length=64, blank=True)
    server_name = models.CharField(max_length=200, blank=True)
    org_name = models.CharField(max_length=200, blank=True)
    org_email = models.CharField(max_length=200, blank=True)
    # Sync: the cursor Apple gave last (empty: the next run fetches everything).
    cursor = models.CharField(max_length=1000, blank=True)
    cursor_at = models.DateTimeField(null=True, blank=True)
    # The cursor is a fetch's, cut short (page bound, error): the next run goes on fetching.
    # (A sync from it would never list the devices the fetch had not reached.)
    fetch_more = models.BooleanField(default=False)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_ok = models.BooleanField(null=True)
    last_sync_result = models.TextField(blank=True)  # what happened, for people
    failed_syncs = models.PositiveIntegerField(default=0)  # in a row
    # The DEP profile assigned to devices as they are added (auto-assign), if any.
    auto_assign_profile = models.ForeignKey(
        "DepProfile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class DepProfile(models.Model):
    """An ADE enrollment profile defined with Apple (POST /profile) for one DEP server. Its
    `url` is the portal's /dep/enroll; the device then gets `enrollment`'s profile."""

    server = models.ForeignKey(DepServer, on_delete=models.CASCADE, related_name="profiles")
    name = models.CharField(max_length=150)  # profile_name
    enrollment = models.ForeignKey(
        "enrollment.Enrollment", on_delete=models.PROTECT, related_name="dep_profiles"
    )
    # The profile's keys as sent to Apple (is_supervised, await_device_configured,
    # is_mdm_removable, department, support_phone_number, support_email_address,
    # skip_setup_items, ...); url and anchor_certs are added when it is defined.
    settings = models.JSONField(default=dict)
    profile_uuid = models.CharField(max_length=64, blank=True)  # Apple's, once defined
    defined_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server", "name"], name="one_dep_profile_name")
        ]

    def __str__(self) -> str:
        return self.name


class DepDevice(models.Model):
    """A device assigned to one of our DEP servers in ABM, as the device sync reports it."""

    server = models.ForeignKey(DepServer, on_delete=models.CASCADE, related_name="devices")
    serial_number = models.CharField(max_length=64, unique=True)
    model = models.CharField(max_length=200, blank=True)
    description = models.CharField(max_length=300, blank=True)
    color = models.CharField(max_length=100, blank=True)
    asset_tag = models.CharField(max_length=200, blank=True)
    os = models.CharField(max_length=50, blank=True)
    device_family = models.CharField(max_length=50, blank=True)
    device_assigned_date = models.DateTimeField(null=True, blank=True)
    device_assigned_by = models.CharField(max_length=200, blank=True)
    # Apple's view of the profile: profile_status (empty, assigned, pushed, removed), the
    # profile's uuid and when it was assigned.
    profile_status = models.CharField(max_length=30, blank=True)
    profile_uuid = models.CharField(max_length=64, blank=True)
    profile_assign_time = models.DateTimeField(null=True, blank=True)
    # The portal's assignment and Apple's answer for this serial (SUCCESS, NOT_ACCESSIBLE,
    # FAILED), and when.
    assigned_profile = models.ForeignKey(
        DepProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    assign_result = models.CharField(max_length=30, blank=True)
    assign_result_at = models.DateTimeField(null=True, blank=True)
    # The last op_type of a sync (added, modified, deleted) and its op_date; deleted devices
    # are kept, marked, until the admin disowns or forgets them.
    op_type = models.CharField(max_length=20, blank=True)
    op_date = models.DateTimeField(null=True, blank=True)
    removed = models.BooleanField(default=False)
    added_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.serial_number
