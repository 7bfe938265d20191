"""The command forms: a small form per common command, the advanced form that any RequestType
gets from the catalog, and the raw form. Each turns what a person typed into a payload and
queues it through commands.queue.enqueue; a refusal comes back next to the field it names.

A form knows its targets (commands.targets.Targets) to offer what they can take: keys no
target's platform supports are left out, DeviceInformation ticks the queries every target's
AccessRights allow, RemoveProfile lists what the targets report installed. What is valid stays
the catalog's judgement.
"""

import json
import plistlib
import re

from django import forms

from devices.models import InstalledProfile
from mdm_portal.roles import ADMIN, OPERATOR

from .catalog import ADMIN_ONLY, DEFINITIONS, SERVER_SUPPLIED_KEYS, CatalogError, allowed_queries
from .catalog.definitions import from_json
from .catalog.device_queries import QUERY_RIGHTS
from .fields import NOT_SET, key_fields, key_value, shown_for
from .models import Command
from .queue import EnqueueError, enqueue
from .targets import Targets

INSTALLED_SHOWN = 300  # installed profiles offered by RemoveProfile
# Sent with their own form only, never the advanced one: it asks for the typed confirmation
# (EraseDevice) or the reason (ClearPasscode). A raw EraseDevice is refused for the same reason.
OWN_FORM_ONLY = frozenset({"EraseDevice", "ClearPasscode"})


def required_role(request_type: str, raw: bool = False) -> str:
    """The role that may send it: administrators for raw commands and ADMIN_ONLY ones."""
    return ADMIN if raw or request_type in ADMIN_ONLY else OPERATOR


class CommandForm(forms.Form):
    """A command's form: catalog keys as fields (`keys`, in order; None for every key)."""

    request_type = ""
    title = ""
    description = ""
    keys: tuple[str, ...] | None = None
    labels: dict[str, str] = {}
    helps: dict[str, str] = {}
    checkboxes: frozenset[str] = frozenset()
    value_labels: dict[str, dict] = {}  # what the values of an enumeration mean
    danger = ""  # a destructive command: what it does, said in a banner above the form
    raw = False

    def __init__(self, data=None, files=None, *, targets: Targets, request_type="", page=None):
        super().__init__(data, files, label_suffix="")
        self.request_type = request_type or self.request_type
        self.targets = targets
        self.page = page or {}  # the page's query parameters (Settings reads its item there)
        self.specs = {}
        self.command_payload: dict = {}
        self.add_fields()

    @property
    def role(self) -> str:
        return required_role(self.request_type, self.raw)

    @property
    def heading(self) -> str:
        """The page's title: the form's, or the catalog's ("Schedule OS Update")."""
        if self.title:
            return self.title
        definition = DEFINITIONS.get(self.request_type)
        title = definition.title if definition is not None else self.request_type
        return title.removesuffix(" Command")

    @property
    def explanation(self) -> str:
        if self.description:
            return self.description
        definition = DEFINITIONS.get(self.request_type)
        return definition.description if definition is not None else ""

    def add_fields(self) -> None:
        definition = DEFINITIONS[self.request_type]
        supplied = SERVER_SUPPLIED_KEYS.get(self.request_type, {})
        by_name = {spec.name: spec for spec in definition.keys}
        for name in self.keys if self.keys is not None else list(by_name):
            spec = by_name[name]
            if name in supplied or not shown_for(spec, self.targets.platforms):
                continue
            self.add_key(spec)

    def add_key(self, spec) -> None:
        self.specs[spec.name] = spec
        fields = key_fields(
            spec,
            label=self.labels.get(spec.name, ""),
            help_text=self.helps.get(spec.name, ""),
            checkbox=spec.name in self.checkboxes,
            value_labels=self.value_labels.get(spec.name),
        )
        if spec.name == "PIN":  # typed from a number pad, never remembered by the browser
            fields["PIN"].widget.attrs.update(inputmode="numeric", autocomplete="off")
        self.fields.update(fields)

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.command_payload = self.build_payload()
            except CatalogError as exc:
                self.add_error(self.field_for_key(exc.key), str(exc))
        return cleaned

    def key_values(self) -> dict:
        """The value of each key field that was given."""
        values = {}
        for name, spec in self.specs.items():
            value = key_value(spec, self.cleaned_data)
            if value is not None:
                values[name] = value
        return values

    def build_payload(self) -> dict:
        """The Command dictionary's keys from the cleaned data (JSON data keys as bytes)."""
        return from_json(DEFINITIONS[self.request_type], self.key_values())

    def enqueue_options(self) -> dict:
        return {}

    def enqueue(self, *, user, address) -> Command:
        return enqueue(
            self.targets.devices,
            self.request_type,
            self.command_payload,
            user=user,
            address=address,
            **self.enqueue_options(),
        )

    def queue(self, *, user, address) -> Command | None:
        """Queue the command (call after is_valid); on a refusal, note it and return None."""
        try:
            return self.enqueue(user=user, address=address)
        except (EnqueueError, CatalogError) as exc:
            self.add_error(self.field_for_key(exc.key), str(exc))
            return None

    def field_for_key(self, key: str | None) -> str | None:
        """The field showing the key a message names (its top-level key), or None."""
        if not key:
            return None
        top = re.match(r"[^.\[]+", key)
        name = top.group() if top else ""
        return name if name in self.fields else None


class DeviceInformationForm(CommandForm):
    request_type = "DeviceInformation"
    title = "Refresh device information"
    description = "Ask for the device's details; the inventory is updated from the answer."
    keys = ()

    def add_fields(self) -> None:
        allowed = allowed_queries(self.targets.common_rights)
        self.fields["Queries"] = forms.MultipleChoiceField(
            choices=[(query, query) for query in sorted(QUERY_RIGHTS)],
            initial=allowed,
            widget=forms.CheckboxSelectMultiple(attrs={"class": "choices"}),
            help_text=f"Ticked: the {len(allowed)} queries every target's AccessRights allow.",
        )
        self.fields["drop_disallowed"] = forms.BooleanField(
            required=False,
            label="Leave out the queries some target's AccessRights do not allow",
            help_text="Otherwise such a query refuses the whole command.",
        )

    def build_payload(self) -> dict:
        return {"Queries": self.cleaned_data["Queries"]}

    def enqueue_options(self) -> dict:
        return {"drop_disallowed_queries": self.cleaned_data.get("drop_disallowed", False)}


class ProfileListForm(CommandForm):
    request_type = "ProfileList"
    title = "List installed profiles"
    description = "The answer updates the device's installed profiles and the library."
    keys = ("ManagedOnly",)
    checkboxes = frozenset(keys)
    labels = {"ManagedOnly": "Managed profiles only"}


class SecurityInfoForm(CommandForm):
    request_type = "SecurityInfo"
    title = "Security information"
    description = "Passcode, encryption and Find My state, as the device reports them."
    keys = ()


class InstalledApplicationListForm(CommandForm):
    request_type = "InstalledApplicationList"
    title = "List installed apps"
    description = "The answer replaces the device's app inventory."
    keys = ("ManagedAppsOnly", "Identifiers", "Items")
    checkboxes = frozenset({"ManagedAppsOnly"})
    labels = {
        "ManagedAppsOnly": "Managed apps only",
        "Identifiers": "Only these bundle identifiers",
        "Items": "Attributes to report (none ticked: the device's default set)",
    }


class DeviceLockForm(CommandForm):
    request_type = "DeviceLock"
    title = "Lock"
    description = "Lock the screen now; the message and phone number show on it."
    keys = ("Message", "PhoneNumber", "PIN")
    labels = {
        "Message": "Message on the lock screen",
        "PhoneNumber": "Phone number on the lock screen",
        "PIN": "Find My PIN (Macs)",
    }
    helps = {"PIN": "six digits; the locked Mac asks for it"}


class RestartDeviceForm(CommandForm):
    request_type = "RestartDevice"
    title = "Restart"
    description = "Restart the device now; unsaved work on it may be lost."
    keys = ("NotifyUser", "RebuildKernelCache")
    checkboxes = frozenset(keys)
    labels = {
        "NotifyUser": "Let the user choose when (Macs)",
        "RebuildKernelCache": "Rebuild the kernel cache (Macs)",
    }


class ShutDownDeviceForm(CommandForm):
    request_type = "ShutDownDevice"
    title = "Shut down"
    description = "Turn the device off; it gets no command until someone turns it on."
    keys = ()


class RemoveProfileForm(CommandForm):
    request_type = "RemoveProfile"
    title = "Remove a profile"
    description = (
        "A profile the library assigns to the device comes back at its next ProfileList: "
        "unassign it on the Profiles page instead."
    )
    keys = ("Identifier",)
    labels = {"Identifier": "…or its identifier"}
    helps = {"Identifier": "the PayloadIdentifier of the profile"}

    def add_fields(self) -> None:
        installed = (
            InstalledProfile.objects.filter(device__in=self.targets.devices.values("pk"))
            .order_by("identifier")
            .values_list("identifier", "display_name")
            .distinct()[:INSTALLED_SHOWN]
        )
        choices = [(ident, f"{name} ({ident})" if name else ident) for ident, name in installed]
        if choices:
            self.fields["installed"] = forms.ChoiceField(
                choices=[NOT_SET, *dict(choices).items()],
                required=False,
                label="Installed profile",
                help_text="as the targets' latest ProfileList reported",
            )
        super().add_fields()
        self.fields["Identifier"].required = False  # the catalog says it is required

    def build_payload(self) -> dict:
        chosen = self.cleaned_data.get("installed") or ""
        typed = self.cleaned_data.get("Identifier") or ""
        if chosen and typed and chosen != typed:
            raise forms.ValidationError({"Identifier": "choose a profile or type one, not both"})
        identifier = chosen or typed
        return {"Identifier": identifier} if identifier else {}


class InstallApplicationForm(CommandForm):
    request_type = "InstallApplication"
    title = "Install an app"
    description = "Give exactly one of App Store ID, manifest URL or bundle identifier."
    keys = ("iTunesStoreID", "ManifestURL", "Identifier", "ManagementFlags", "Configuration")
    labels = {
        "iTunesStoreID": "App Store ID",
        "ManifestURL": "Manifest URL (an in-house app)",
        "Identifier": "Bundle identifier (an app the organization bought)",
        "ManagementFlags": "Management flags",
        "Configuration": "Managed app configuration",
    }
    value_labels = {
        "ManagementFlags": {
            1: "remove the app with the MDM profile",
            4: "no backup of its data",
            5: "both",
        }
    }


class SettingsForm(CommandForm):
    """One settings item per command: its kind is chosen first (the page's `item` parameter),
    then its keys are fields."""

    request_type = "Settings"
    title = "Change a setting"
    description = "Choose the setting, then its values."
    keys = ()
    value_labels = {"Where": {1: "lock screen", 2: "home screen", 3: "both"}}

    def items(self) -> dict:
        array = next(spec for spec in DEFINITIONS["Settings"].keys if spec.name == "Settings")
        return {
            variant.name: variant
            for variant in array.subkeys
            if shown_for(variant, self.targets.platforms)
        }

    def add_fields(self) -> None:
        items = self.items()
        self.item = self.page.get("item") if self.page.get("item") in items else ""
        if not self.item:
            return
        for spec in items[self.item].subkeys:
            if spec.name != "Item" and shown_for(spec, self.targets.platforms):
                self.add_key(spec)

    def build_payload(self) -> dict:
        if not self.item:
            return {"Settings": []}  # the catalog refuses an empty list
        items = [{"Item": self.item, **self.key_values()}]
        return from_json(DEFINITIONS["Settings"], {"Settings": items})

    def field_for_key(self, key: str | None) -> str | None:
        return super().field_for_key(re.sub(r"^Settings\[0\]\.?", "", key or "") or None)


class EnableLostModeForm(CommandForm):
    request_type = "EnableLostMode"
    title = "Enable lost mode"
    description = "Lock a supervised device in lost mode, showing how to return it."
    keys = ("Message", "PhoneNumber", "Footnote")
    labels = {
        "Message": "Message on the lock screen",
        "PhoneNumber": "Phone number to call",
        "Footnote": "Footnote",
    }


class DisableLostModeForm(CommandForm):
    request_type = "DisableLostMode"
    title = "Disable lost mode"
    description = "Take the device out of lost mode."
    keys = ()


class EraseDeviceForm(CommandForm):
    request_type = "EraseDevice"
    title = "Erase"
    description = "Return the device to factory settings."
    keys = (
        "PIN",
        "ObliterationBehavior",
        "PreserveDataPlan",
        "DisallowProximitySetup",
        "ReturnToService",
    )
    checkboxes = frozenset({"PreserveDataPlan", "DisallowProximitySetup"})
    labels = {
        "PIN": "Find My PIN (six digits, Macs)",
        "ObliterationBehavior": "Obliteration (Macs)",
        "PreserveDataPlan": "Keep the cellular data plan",
        "DisallowProximitySetup": "Disallow Quick Start setup from a nearby device",
        "ReturnToService": "Return to service (Wi-Fi and MDM profiles for setup)",
    }
    danger = (
        "Every setting and all data are erased, which cannot be undone; the device leaves "
        "management and has to be enrolled again."
    )

    def add_fields(self) -> None:
        super().add_fields()
        mixed = self.targets.has_macs and self.targets.platforms - {"macOS"}
        if "PIN" in self.fields and mixed:
            pin = self.fields["PIN"]
            pin.help_text += " · Macs need it and other devices refuse it: erase Macs on their own"
        expected = self.targets.erase_confirmation()
        what = "the device's name" if self.targets.single is not None else "the number of devices"
        self.fields["confirm"] = forms.CharField(
            label=f"Type {what} to confirm",
            help_text=f"Type “{expected}”.",
            widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        )

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        expected = self.targets.erase_confirmation()
        if typed != expected:
            raise forms.ValidationError(f"Type “{expected}” exactly to erase; nothing was queued.")
        return typed


class ClearPasscodeForm(CommandForm):
    request_type = "ClearPasscode"
    title = "Clear the passcode"
    description = (
        "Remove the passcode with the escrowed UnlockToken; the person holding the device can "
        "then open it. Never sent to a device in lost mode."
    )
    keys = ()
    danger = "Whoever holds the device can open it once its passcode is cleared."

    def add_fields(self) -> None:
        self.fields["reason"] = forms.CharField(
            label="Reason",
            help_text="Why, and who asked: it goes into the audit log.",
            widget=forms.Textarea(attrs={"rows": 2}),
        )

    def build_payload(self) -> dict:
        return {}

    def enqueue_options(self) -> dict:
        return {"reason": self.cleaned_data["reason"]}


class RawForm(CommandForm):
    """Any command as JSON or an XML plist, without the catalog's key checks (administrators)."""

    title = "Raw command"
    description = (
        "Sent without the catalog's key checks, for keys or RequestTypes it does not know yet; "
        "AccessRights and ClearPasscode's rules still apply; EraseDevice has its own form."
    )
    raw = True
    danger = "The catalog does not check it: a device may refuse it or act on it unexpectedly."

    def add_fields(self) -> None:
        self.fields["RequestType"] = forms.CharField(
            initial=self.request_type, label="RequestType", max_length=100
        )
        self.fields["body"] = forms.CharField(
            label="Command keys, as JSON or an XML plist",
            required=False,
            initial="{}",
            widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "mono"}),
            help_text="a dictionary; in JSON, data keys the catalog knows as base64",
        )
        self.fields["reason"] = forms.CharField(
            required=False, label="Reason (ClearPasscode needs one)", max_length=500
        )

    @property
    def heading(self) -> str:
        return self.title

    def build_payload(self) -> dict:
        self.request_type = self.cleaned_data["RequestType"].strip()
        if self.request_type == "EraseDevice":
            raise forms.ValidationError(
                {"RequestType": "EraseDevice is sent with its own form, which asks to confirm"}
            )
        text = (self.cleaned_data.get("body") or "").strip() or "{}"
        try:
            body = plistlib.loads(text.encode()) if text.startswith("<") else json.loads(text)
        except (ValueError, plistlib.InvalidFileException) as exc:
            raise forms.ValidationError({"body": f"neither JSON nor an XML plist: {exc}"}) from None
        if not isinstance(body, dict):
            raise forms.ValidationError({"body": "the command must be a dictionary"})
        definition = DEFINITIONS.get(self.request_type)
        if definition is not None and not text.startswith("<"):
            body = from_json(definition, body)
        return body

    def enqueue_options(self) -> dict:
        return {"raw": True, "reason": self.cleaned_data.get("reason", "")}

    def field_for_key(self, key: str | None) -> str | None:
        return "body" if key else None


COMMON_FORMS: dict[str, type[CommandForm]] = {
    form.request_type: form
    for form in (
        DeviceInformationForm,
        ProfileListForm,
        InstalledApplicationListForm,
        SecurityInfoForm,
        DeviceLockForm,
        RestartDeviceForm,
        ShutDownDeviceForm,
        RemoveProfileForm,
        InstallApplicationForm,
        SettingsForm,
        EnableLostModeForm,
        DisableLostModeForm,
        EraseDeviceForm,
        ClearPasscodeForm,
    )
}
