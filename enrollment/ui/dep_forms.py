"""The forms of the Automated Device Enrollment pages. Each parses what a person typed or
picked and hands it to the DEP modules (enrollment.dep_tokens, dep_sync, dep_profiles), whose
checks decide; their messages land on the field."""

from django import forms

from certs.dep_keys import MAX_TOKEN_BYTES  # a token is a few KiB: larger is not one
from devices.groups import GroupError, parse_references

from ..dep_listing import serials_problem
from ..dep_models import DepProfile, DepServer
from ..dep_profiles import TEXTS
from ..dep_skip_keys import SKIP_PANES
from ..models import Enrollment
from .forms import Form

SERIALS_HELP = "Serial numbers, one per line (or separated by spaces or commas)."


class ServerForm(Form):
    name = forms.CharField(
        label="Name",
        max_length=150,
        help_text="How the portal calls this server, e.g. “Main office”. Use the name of the "
        "MDM server in Apple Business Manager to find it again there.",
    )


class TokenForm(Form):
    file = forms.FileField(
        label="Server token (.p7m)",
        help_text="The file Apple Business Manager or Apple School Manager downloads for this "
        "server (“Download Token”). Uploading a new one renews the token and keeps the server, "
        "its devices and profiles.",
        widget=forms.ClearableFileInput(attrs={"accept": ".p7m,application/pkcs7-mime"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_TOKEN_BYTES:
            raise forms.ValidationError(
                f"this file is {upload.size // 1024} KiB: a server token is a few KiB"
            )
        return upload


class AutoAssignForm(Form):
    profile = forms.ModelChoiceField(
        label="Profile for new devices",
        queryset=DepProfile.objects.none(),
        required=False,
        empty_label="— none: new devices get no profile —",
        help_text="Devices the sync finds for the first time get this profile at once.",
    )

    def __init__(self, *args, server: DepServer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = server.profiles.order_by("name")
        self.fields["profile"].initial = server.auto_assign_profile_id


class SerialsField(forms.Field):
    """Serial numbers of DEP devices: hidden inputs from a selection, or typed in a text area
    (one per line, or separated by spaces or commas). Cleans to the serials, in order, once
    each; the form checks they are devices of the right server."""

    widget = forms.MultipleHiddenInput

    def __init__(self, **kwargs):
        kwargs.setdefault("error_messages", {"required": "select or list at least one device"})
        super().__init__(**kwargs)

    def to_python(self, value) -> list[str]:
        if value in self.empty_values:
            return []
        text = value if isinstance(value, str) else " ".join(value)
        try:  # the group pages' reading of a pasted list; Apple's serials are upper case
            return list(dict.fromkeys(serial.upper() for serial in parse_references(text)))
        except GroupError as exc:
            raise forms.ValidationError(str(exc)) from None


class SerialsTextField(SerialsField):
    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "off"})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value


class AssignForm(Form):
    """Assign a DEP profile to DEP devices: the selected rows of a list (`device`), or the
    serial numbers typed on a profile's page (`serials`)."""

    profile = forms.ModelChoiceField(
        label="Profile",
        queryset=DepProfile.objects.select_related("server").order_by("name", "id"),
        empty_label="— choose —",
    )
    device = SerialsField(required=False)
    serials = SerialsTextField(label="Devices", required=False, help_text=SERIALS_HELP)

    def __init__(self, *args, server: DepServer | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        profile = self.fields["profile"]
        if server is not None:  # on a server's page: its own profiles
            profile.queryset = profile.queryset.filter(server=server)
            profile.label_from_instance = lambda p: p.name
        else:
            profile.label_from_instance = lambda p: f"{p.name} ({p.server.name})"

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        serials = list(dict.fromkeys([*data.get("device", []), *data.get("serials", [])]))
        if not serials:
            raise forms.ValidationError("select or list at least one device")
        problem = serials_problem(serials, data["profile"].server)
        if problem:
            raise forms.ValidationError(problem)
        data["all_serials"] = serials
        return data


class DisownForm(Form):
    """Disown DEP devices of one server: the count (or the serial) typed to confirm."""

    device = SerialsField()
    confirm = forms.CharField(
        label="Type to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, server: DepServer, **kwargs):
        super().__init__(*args, **kwargs)
        self.server = server

    @staticmethod
    def expected(serials: list[str]) -> str:
        """What a person types: the serial of one device, else how many there are."""
        return serials[0] if len(serials) == 1 else str(len(serials))

    def clean(self):
        data = super().clean()
        serials = data.get("device")
        if not serials:
            return data
        problem = serials_problem(serials, self.server)
        if problem:
            self.add_error("device", problem)
            return data
        expected = self.expected(serials)
        if "confirm" in data and data["confirm"].strip() != expected:
            self.add_error("confirm", f"type “{expected}” exactly to disown; nothing was done")
        return data


def skip_choices() -> list[tuple[str, str]]:
    """Apple's skip keys as checkbox labels: the pane, the key and where it exists."""
    choices = []
    for key, title, platforms, deprecated in SKIP_PANES:
        where = ", ".join(platforms)
        label = f"{title} ({key}; {where}{'; deprecated' if deprecated else ''})"
        choices.append((key, label))
    return choices


class DepProfileForm(Form):
    """A DEP profile: what Setup Assistant shows and enforces, and the enrollment it gets."""

    name = forms.CharField(
        label="Name",
        max_length=150,
        help_text="Shown on the device in Setup Assistant (profile_name).",
    )
    server = forms.ModelChoiceField(
        label="Server",
        queryset=DepServer.objects.order_by("name"),
        empty_label="— choose —",
        help_text="The profile is defined with Apple for this server's devices.",
    )
    enrollment = forms.ModelChoiceField(
        label="Enrollment",
        queryset=Enrollment.objects.filter(active=True).order_by("name"),
        empty_label="— choose —",
        help_text="Devices get this enrollment's profile from /dep/enroll: its AccessRights, "
        "identity and group.",
    )
    is_supervised = forms.BooleanField(
        label="Supervised",
        required=False,
        initial=True,
        help_text="The organization gets full control: supervised-only commands and "
        "restrictions work.",
    )
    is_mdm_removable = forms.BooleanField(
        label="The person may remove the MDM profile",
        required=False,
        initial=False,
        help_text="Unticked, the enrollment cannot be removed on the device (supervised only).",
    )
    await_device_configured = forms.BooleanField(
        label="Hold the device in Setup Assistant until the portal releases it",
        required=False,
        help_text="The device waits at “Remote Management” for DeviceConfigured, so its "
        "profiles and apps are in place before anyone uses it.",
    )
    # The lengths dep_profiles accepts (so the form never promises more than it takes).
    department = forms.CharField(label="Department", max_length=TEXTS["department"], required=False)
    support_phone_number = forms.CharField(
        label="Support phone number", max_length=TEXTS["support_phone_number"], required=False
    )
    support_email_address = forms.EmailField(
        label="Support e-mail address", max_length=TEXTS["support_email_address"], required=False
    )
    skip_setup_items = forms.MultipleChoiceField(
        label="Setup Assistant panes to skip",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Ticked panes are not shown; the device uses Apple's defaults for them.",
    )
    auto_assign = forms.BooleanField(
        label="Assign to new devices of the server (auto-assign)",
        required=False,
        help_text="Devices the sync finds for the first time get this profile. A server has "
        "one such profile: ticking it here replaces the server's current one.",
    )

    SETTINGS = (
        "is_supervised",
        "is_mdm_removable",
        "await_device_configured",
        "department",
        "support_phone_number",
        "support_email_address",
        "skip_setup_items",
    )

    def __init__(self, *args, profile: DepProfile | None = None, **kwargs):
        if profile is not None:  # also when bound: the disabled server field reads it
            kwargs["initial"] = {**self.initial_of(profile), **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        self.profile = profile
        choices = skip_choices()
        if profile is not None:  # a key Apple added after this list was made stays ticked
            known = {key for key, _ in choices}
            kept = (profile.settings or {}).get("skip_setup_items") or []
            choices += [(key, key) for key in kept if key not in known]
        self.fields["skip_setup_items"].choices = choices
        if profile is not None:
            # Apple defines a profile for one server: a profile moves by being made anew.
            self.fields["server"].disabled = True
            self.fields["server"].help_text = "A profile stays with the server it was made for."
            # The enrollment it uses stays choosable even once turned off (shown as is).
            self.fields["enrollment"].queryset = Enrollment.objects.filter(
                pk=profile.enrollment_id
            ) | Enrollment.objects.filter(active=True)

    @classmethod
    def initial_of(cls, profile: DepProfile) -> dict:
        settings = profile.settings or {}
        initial = {key: settings[key] for key in cls.SETTINGS if key in settings}
        return {
            **initial,
            "name": profile.name,
            "server": profile.server_id,
            "enrollment": profile.enrollment_id,
            "auto_assign": profile.server.auto_assign_profile_id == profile.pk,
        }

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def settings(self) -> dict:
        """The profile's settings as enrollment.dep_profiles.save_profile takes them."""
        data = self.cleaned_data
        return {key: data[key] for key in self.SETTINGS}
