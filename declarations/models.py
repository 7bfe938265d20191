"""Declarative Device Management: the declarations the portal holds, the sets they are assigned
in, what each device was last told, and what each device reports back.

- Declaration: one declaration (Type, Identifier, Payload) with the ServerToken computed over
  its content, so it changes exactly when the content does.
- ServedAsset: data the portal itself serves for an asset declaration (an uploaded file, or
  a credential document made per device: ACME or SCEP), behind an MDM-authenticated URL.
- DeclarationSet: declarations that go together, assigned to devices and groups. A device
  should have every declaration of the sets assigned to it or to its group, and what those
  reference (an activation's configurations, a configuration's assets).
- DeviceDeclarations: per device, the DeclarationsToken and Timestamp last advertised, the
  items of that manifest, and the device's status as it last reported it.
- DeclarationState: per device and declaration, the state the device reported (active,
  valid / invalid / unknown, reasons).
"""

from django.db import models

from mdm_portal.encryption import EncryptedBinaryField


class Kind(models.TextChoices):
    ACTIVATION = "activation"
    ASSET = "asset"
    CONFIGURATION = "configuration"
    MANAGEMENT = "management"


class Declaration(models.Model):
    identifier = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    payload = models.JSONField(default=dict)
    # SHA-256 over the declaration's canonical JSON (declarations.tokens.server_token).
    server_token = models.CharField(max_length=64)
    description = models.TextField(blank=True)  # the admin's note; never sent to devices
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "identifier"]
        indexes = [models.Index(fields=["kind", "identifier"], name="declaration_by_kind")]

    def __str__(self) -> str:
        return self.identifier


class ServedAsset(models.Model):
    """What the portal serves at an asset declaration's DataURL (/mdm/assets/<public_id>).

    DATA: bytes an admin uploaded (encrypted at rest: a credential document may hold a
    password or a PKCS#12), with their media type, size and SHA-256 (the declaration's
    Reference carries the last two). ACME / SCEP: a com.apple.credential.acme / .scep document
    made for the device that asks, with a fresh one-time ClientIdentifier or challenge.
    """

    class Source(models.TextChoices):
        DATA = "data"
        ACME = "acme"
        SCEP = "scep"

    declaration = models.OneToOneField(Declaration, on_delete=models.CASCADE, related_name="served")
    public_id = models.CharField(max_length=64, unique=True)  # random: the URL's last segment
    source = models.CharField(max_length=8, choices=Source.choices)
    content = EncryptedBinaryField(null=True, blank=True)  # DATA only
    content_type = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    # ACME / SCEP: the credential's key type and size, subject, attestation …
    options = models.JSONField(default=dict, blank=True)
    downloads = models.PositiveIntegerField(default=0)
    last_download_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.declaration.identifier} ({self.source})"


class DeclarationSet(models.Model):
    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    declarations = models.ManyToManyField(Declaration, blank=True, related_name="sets")
    devices = models.ManyToManyField("devices.Device", blank=True, related_name="declaration_sets")
    groups = models.ManyToManyField(
        "devices.DeviceGroup", blank=True, related_name="declaration_sets"
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeviceDeclarations(models.Model):
    """A device's declarative sync: what it was last told and what it last reported."""

    device = models.OneToOneField(
        "devices.Device", on_delete=models.CASCADE, related_name="declarative"
    )
    # The DeclarationsToken last advertised (a DeclarativeManagement command, `tokens` or
    # `declaration-items`) and when that token was first advertised (SyncTokens' Timestamp:
    # it stays the same as long as the token does).
    token = models.CharField(max_length=64, blank=True)
    token_timestamp = models.DateTimeField(null=True, blank=True)
    # The manifest behind `token`: {identifier: server_token}.
    advertised = models.JSONField(default=dict, blank=True)
    first_sync_at = models.DateTimeField(null=True, blank=True)  # its first DeclarativeManagement
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_endpoint = models.CharField(max_length=200, blank=True)
    # The status channel: the status items as they stand after every report so far (a full
    # report replaces them), the last report as sent, and its errors.
    status_items = models.JSONField(default=dict, blank=True)
    last_report = models.JSONField(null=True, blank=True)
    last_report_at = models.DateTimeField(null=True, blank=True)
    last_report_full = models.BooleanField(default=False)
    reports = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"declarative sync of {self.device_id}"


class DeclarationState(models.Model):
    """One declaration on one device, as the device last reported it (management.declarations).

    `declaration` links the portal's own declaration when the identifier is one of ours.
    """

    class Validity(models.TextChoices):
        VALID = "valid"
        INVALID = "invalid"
        UNKNOWN = "unknown"

    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="declaration_states"
    )
    declaration = models.ForeignKey(
        Declaration, null=True, blank=True, on_delete=models.SET_NULL, related_name="states"
    )
    identifier = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    server_token = models.CharField(max_length=64)
    active = models.BooleanField(default=False)
    valid = models.CharField(max_length=8, choices=Validity.choices, default=Validity.UNKNOWN)
    reasons = models.JSONField(default=list, blank=True)
    # An error reason (Error.*) or valid = invalid: what the UI and the dashboard call failed.
    failed = models.BooleanField(default=False)
    reported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "identifier"], name="one_state_per_device_declaration"
            )
        ]
        indexes = [models.Index(fields=["failed", "declaration"], name="declaration_state_failed")]

    def __str__(self) -> str:
        return f"{self.identifier} on {self.device_id}"


class DeclarationRevision(models.Model):
    """A revision of a declaration as it was advertised: a device that was given this
    ServerToken in its manifest is served this content when it fetches the declaration, even
    if the declaration changed in between (the change has queued it another sync). The last
    few revisions of each declaration are kept (store.KEPT_REVISIONS)."""

    identifier = models.CharField(max_length=64)
    server_token = models.CharField(max_length=64)
    type = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["identifier", "server_token"], name="one_revision_per_token"
            )
        ]

    def __str__(self) -> str:
        return f"{self.identifier} at {self.server_token[:12]}"
