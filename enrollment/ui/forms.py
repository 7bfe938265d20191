"""The forms of the library, enrollment and group pages. Each one parses what a person typed
and hands it to the plain modules, whose checks decide (their messages land on the field)."""

from django import forms

from commands.catalog import ACCESS_RIGHTS_IN_WORDS
from devices.groups import GroupError, clean_group_name, find_devices
from devices.models import DeviceGroup

from ..enrollments import EnrollmentSpec, enrollment_problems
from ..library import max_profile_bytes
from ..models import Enrollment, Profile

DEVICES_HELP = "UDIDs or serial numbers, one per line (or separated by spaces or commas)."


class Form(forms.Form):
    """A form whose labels read as the portal's others: no colon after them."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class UploadForm(Form):
    file = forms.FileField(
        label="Configuration profile (.mobileconfig)",
        help_text=(
            "XML, binary or signed. A profile whose PayloadIdentifier is already in the library "
            "replaces it."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".mobileconfig,.plist,.xml"}),
    )
    name = forms.CharField(
        label="Name (optional)",
        required=False,
        max_length=255,
        help_text="Shown in the library; the profile's PayloadDisplayName by default.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit = max_profile_bytes() / (1024 * 1024)
        self.fields["file"].help_text += f" At most {limit:g} MiB (MDM_PROFILE_MAX_BYTES)."


class DevicesField(forms.CharField):
    """UDIDs or serial numbers, resolved to devices: every one must match."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "off"})

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", DEVICES_HELP)
        kwargs.setdefault("error_messages", {"required": "list at least one UDID or serial number"})
        super().__init__(**kwargs)

    def clean(self, value):
        text = super().clean(value)
        if not text.strip() and not self.required:
            return None
        try:
            return find_devices(text)
        except GroupError as exc:
            raise forms.ValidationError(str(exc)) from None


class DevicesForm(Form):
    devices = DevicesField(label="Devices")


class AssignForm(Form):
    """Assign a profile to a group, or to devices listed by UDID or serial."""

    group = forms.ModelChoiceField(
        label="Group",
        queryset=DeviceGroup.objects.order_by("name"),
        required=False,
        empty_label="— no group —",
    )
    devices = DevicesField(label="Or devices", required=False)

    def clean(self):
        data = super().clean()
        if not self.errors and (data.get("group") is None) == (data.get("devices") is None):
            raise forms.ValidationError("choose a group or list devices (one of the two)")
        return data


class GroupProfileForm(Form):
    """Assign a library profile to the group whose page this is."""

    profile = forms.ModelChoiceField(
        label="Profile", queryset=Profile.objects.order_by("name"), empty_label="— choose —"
    )


class GroupForm(Form):
    name = forms.CharField(label="Name", max_length=150)
    description = forms.CharField(
        label="Description (optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean_name(self):
        try:
            return clean_group_name(self.cleaned_data["name"])
        except GroupError as exc:
            raise forms.ValidationError(str(exc)) from None


class RightsField(forms.TypedMultipleChoiceField):
    """AccessRights as one checkbox per bit, labelled with what the bit allows."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        choices = [(bit, f"{bit}: {words}") for bit, words in ACCESS_RIGHTS_IN_WORDS]
        super().__init__(choices=choices, coerce=int, **kwargs)


class EnrollmentForm(Form):
    name = forms.CharField(
        label="Name", max_length=150, help_text="What it is for, e.g. “Staff iPhones”."
    )
    access_rights = RightsField(
        label="What the organization may do on enrolled devices (AccessRights)",
        initial=[bit for bit, _ in ACCESS_RIGHTS_IN_WORDS],
        required=False,
        help_text="Installing profiles (2) needs seeing them (1); installing provisioning "
        "profiles (128) needs seeing them (64).",
    )
    identity = forms.ChoiceField(
        label="Device identity",
        choices=Enrollment.Identity.choices,
        initial=Enrollment.Identity.SCEP,
        widget=forms.RadioSelect,
        help_text="ACME for iOS and iPadOS 16, macOS 13.1, tvOS 16 and later (recommended): "
        "the key is made in the device's hardware and the hardware proves which device it is. "
        "SCEP for older OS versions: the key never leaves the device either. PKCS#12 only "
        "when neither works: the key is made on the server and travels in the profile.",
    )
    acme_without_attestation = forms.BooleanField(
        label="ACME: allow devices that cannot attest",
        required=False,
        help_text="Only for devices without hardware attestation (Macs before macOS 14, or "
        "without Apple silicon or a T2 chip): their key is not hardware-bound and only the "
        "one-time ClientIdentifier in the profile vouches for them.",
    )
    group = forms.ModelChoiceField(
        label="Group of its devices",
        queryset=DeviceGroup.objects.order_by("name"),
        required=False,
        empty_label="— no group —",
    )
    expires_days = forms.IntegerField(
        label="Link works for (days)",
        required=False,
        min_value=1,
        help_text="Empty: the link never expires.",
    )
    max_uses = forms.IntegerField(
        label="Profiles it may hand out",
        required=False,
        min_value=1,
        help_text="Empty: no limit. Each download counts one.",
    )
    sign_message = forms.BooleanField(
        label="Devices sign every message (Mdm-Signature)", required=False
    )
    check_out_when_removed = forms.BooleanField(
        label="Devices tell the server when the profile is removed (CheckOut)",
        required=False,
        initial=True,
    )

    # The spec's names that are another field here.
    FIELD_OF = {"acme_attestation": "acme_without_attestation"}

    def spec(self) -> EnrollmentSpec:
        data = self.cleaned_data
        return EnrollmentSpec(
            name=data["name"],
            access_rights=sum(set(data.get("access_rights") or [])),
            identity=data["identity"],
            acme_attestation=not data["acme_without_attestation"],
            sign_message=data["sign_message"],
            check_out_when_removed=data["check_out_when_removed"],
            group=data.get("group"),
            expires_days=data.get("expires_days"),
            max_uses=data.get("max_uses"),
        )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        for name, problem in enrollment_problems(self.spec()).items():
            self.add_error(self.FIELD_OF.get(name, name), problem)
        return data
