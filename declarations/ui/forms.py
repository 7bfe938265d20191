"""The forms of the declaration pages.

The declaration form is built from the Type's schema as the command forms are built from the
catalog (commands.fields.key_fields): one field per top-level key, chosen by its type (text,
number, a select for Apple's allowed values, "not set / Yes / No" for an optional boolean so
that a key left unset is not sent, JSON for dictionaries, arrays and `any`), labelled with
Apple's title, description and default. What is valid stays declarations.schema's judgement
(through store.save_declaration): its DeclarationError lands next to the key it names.
"""

import json
import re
from dataclasses import replace

from django import forms

from commands.catalog.definitions import KeySpec
from commands.fields import JSONText, Lines, key_fields, key_value
from enrollment.ui.forms import AssignForm, Form

from ..assets import ACME_DEFAULTS, MAX_DATA_BYTES, SCEP_DEFAULTS
from ..models import Declaration, DeclarationSet, Kind, ServedAsset
from ..schema import CREDENTIALS, MAX_IDENTIFIER_OCTETS, TYPES, DeclarationType
from .tables import type_title

IDENTIFIER = "Identifier"
DESCRIPTION = "description"
MAX_JSON_BYTES = 1024 * 1024  # an uploaded JSON file of declarations
REFERENCES_SHOWN = 12
# The keys of a credential document the portal fills in per device (declarations.assets).
SUPPLIED = {
    ServedAsset.Source.ACME: {"DirectoryURL", "ClientIdentifier", "Subject"},
    ServedAsset.Source.SCEP: {"URL", "Challenge", "Subject"},
}
DEFAULTS = {ServedAsset.Source.ACME: ACME_DEFAULTS, ServedAsset.Source.SCEP: SCEP_DEFAULTS}
# SetAssignForm is the profile library's: a group, or devices by UDID or serial number.
SetAssignForm = AssignForm


def field_name(key: str) -> str:
    """A form field's name for a key (SCEP's "Key Type", Exchange's "External Path")."""
    return re.sub(r"\W", "_", key)


def key_help(raw: dict) -> str:
    """Apple's description of a key, with its default."""
    text = raw.get("description") or ""
    default = raw.get("default")
    if default is not None:
        shown = ("Yes" if default else "No") if isinstance(default, bool) else default
        text = f"{text} Default: {shown}." if text else f"Default: {shown}."
    return text


def initial_value(field: forms.Field, value):
    """A stored value as the field shows it (the reverse of commands.fields.key_value)."""
    if isinstance(field, JSONText):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if isinstance(field, Lines) and isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if isinstance(field, forms.MultipleChoiceField) and isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(field, forms.ChoiceField):
        return str(value)
    return value


def _unset_label(field: forms.Field, default) -> None:
    """An optional select's empty choice says what the device does without the key."""
    if default is None or not isinstance(field, forms.ChoiceField):
        return
    choices = list(field.choices)
    if choices and choices[0][0] == "":
        shown = ("Yes" if default else "No") if isinstance(default, bool) else default
        field.choices = [("", f"— not set (default: {shown}) —"), *choices[1:]]


def _references_hint(name: str) -> str:
    """For keys that name other declarations: which the portal holds."""
    if name == "StandardConfigurations":
        kind = Kind.CONFIGURATION
    elif "AssetReference" in name:
        kind = Kind.ASSET
    else:
        return ""
    held = list(
        Declaration.objects.filter(kind=kind)
        .order_by("identifier")
        .values_list("identifier", flat=True)[: REFERENCES_SHOWN + 1]
    )
    if not held:
        return f"The portal holds no {kind} yet."
    more = " …" if len(held) > REFERENCES_SHOWN else ""
    return f"{kind.capitalize()}s in the portal: {', '.join(held[:REFERENCES_SHOWN])}{more}"


class SchemaFields:
    """Fields for the keys of one schema definition, and the values read back."""

    def __init__(self, form: forms.Form, definition: DeclarationType, *, skip=(), optional=False):
        self.form = form
        self.specs: dict[str, KeySpec] = {}  # by field name, each spec named as its field
        self.keys: dict[str, str] = {}  # field name -> key
        for raw, spec in zip(definition.fields, definition.keys, strict=True):
            if spec.name in skip:
                continue
            name = field_name(spec.name)
            spec = replace(spec, name=name, required=spec.required and not optional)
            help_text = " ".join(filter(None, (key_help(raw), _references_hint(spec.name))))
            built = key_fields(spec, label=raw.get("title") or raw["name"], help_text=help_text)
            for field in built.values():
                _unset_label(field, raw.get("default"))
                # JSON holds no data type: the command forms' base64 note says nothing here.
                field.help_text = field.help_text.replace(" (data as base64)", "")
                if field.label != raw["name"]:
                    field.key = raw["name"]  # shown beside the label
            form.fields.update(built)
            self.specs[name] = spec
            self.keys[name] = raw["name"]

    def fill(self, values: dict) -> None:
        """Show `values` (a payload) in the fields."""
        for name, key in self.keys.items():
            if key in values:
                self.form.initial[name] = initial_value(self.form.fields[name], values[key])

    def values(self, cleaned: dict) -> dict:
        """The keys given, with their values (keys left empty are not sent)."""
        found = {}
        for name, spec in self.specs.items():
            value = key_value(spec, cleaned)
            if value is not None:
                found[self.keys[name]] = value
        return found

    def field_for(self, key: str | None) -> str | None:
        """The field that shows the key a message names (its top-level key), or None."""
        top = re.match(r"[^.\[]+", key or "")
        name = field_name(top.group()) if top else ""
        return name if name in self.specs else None


def without_type(message: str, type_name: str, field: str | None) -> str:
    """The schema's message ("<Type>: <key>: …") as shown next to its field: without the
    Type, which the page names already."""
    return message.removeprefix(f"{type_name}: ") if field else message


def identifier_field(**kwargs) -> forms.CharField:
    return forms.CharField(
        label="Identifier",
        max_length=200,  # the schema's check (64 octets) says more than a browser's limit
        help_text=f"Unique in the portal, at most {MAX_IDENTIFIER_OCTETS} octets, no '/'; "
        "devices know the declaration by it, e.g. com.example.passcode.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "off"}),
        **kwargs,
    )


def description_field() -> forms.CharField:
    return forms.CharField(
        label="Description (optional)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="A note for the portal's staff; never sent to devices.",
    )


class DeclarationForm(Form):
    """A declaration of one Type: its Identifier, one field per key, and a description.

    Editing (`declaration` given), the Identifier and Type are fixed; `kept` keys are not
    shown and keep their stored values (the Reference of data the portal serves)."""

    def __init__(
        self,
        data=None,
        *,
        declaration_type: DeclarationType,
        declaration: Declaration | None = None,
        kept=(),
    ):
        super().__init__(data)
        self.declaration_type = declaration_type
        self.existing = declaration
        payload = declaration.payload if declaration is not None else {}
        self.kept = {key: payload[key] for key in kept if key in payload}
        self.fields[IDENTIFIER] = identifier_field(disabled=declaration is not None)
        self.keys = SchemaFields(self, declaration_type, skip=kept)
        self.fields[DESCRIPTION] = description_field()
        if declaration is not None:
            self.fields[
                IDENTIFIER
            ].help_text = "Fixed, as its Type is: devices know the declaration by it."
            self.initial[IDENTIFIER] = declaration.identifier
            self.initial[DESCRIPTION] = declaration.description
            self.keys.fill(payload)

    def key_fields(self):
        return [self[name] for name in self.keys.specs]

    def declaration(self) -> dict:
        """The declaration as store.save_declaration takes it (after is_valid)."""
        return {
            "Type": self.declaration_type.name,
            "Identifier": self.cleaned_data[IDENTIFIER].strip(),
            "Payload": {**self.keys.values(self.cleaned_data), **self.kept},
        }

    def add_declaration_error(self, exc) -> None:
        """A DeclarationError next to the field of the key it names (else above the form)."""
        field = IDENTIFIER if exc.key == IDENTIFIER else self.keys.field_for(exc.key)
        self.add_error(field, without_type(str(exc), self.declaration_type.name, field))


class UploadJSONForm(Form):
    """Declarations as JSON: one object, or an array of them, as a file or pasted."""

    file = forms.FileField(
        label="JSON file",
        required=False,
        help_text='One declaration ({"Type", "Identifier", "Payload"}) or an array of them. '
        "A ServerToken given is ignored: the portal computes its own.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    text = forms.CharField(
        label="Or paste the JSON",
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "mono"}),
    )

    def clean(self):
        data = super().clean()
        upload, text = data.get("file"), (data.get("text") or "").strip()
        if bool(upload) == bool(text):
            raise forms.ValidationError("give a JSON file or paste the JSON (one of the two)")
        where = "file" if upload else "text"
        if upload is not None and upload.size > MAX_JSON_BYTES:
            self.add_error("file", f"the file is over {MAX_JSON_BYTES} bytes")
            return data
        raw = upload.read() if upload is not None else text.encode()
        try:
            parsed = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            self.add_error(where, f"not valid JSON: {exc}")
            return data
        items = parsed if isinstance(parsed, list) else [parsed]
        if not items:
            self.add_error(where, "the array holds no declaration")
        data["declarations"], data["where"] = items, where
        return data


class ServeDataForm(Form):
    """Data for the portal to serve at an asset's DataURL: a file and its media type."""

    def __init__(self, data=None, files=None, *, declaration_type: str, new: bool):
        super().__init__(data, files)
        if new:
            self.fields[IDENTIFIER] = identifier_field()
        self.fields["file"] = forms.FileField(
            label="Data",
            help_text=f"At most {MAX_DATA_BYTES // (1024 * 1024)} MiB, stored encrypted. "
            "The page never shows it again: only its size and SHA-256.",
        )
        allowed = content_types(declaration_type)
        if allowed:
            self.fields["content_type"] = forms.ChoiceField(
                label="Media type", choices=[(t, t) for t in allowed]
            )
        else:
            self.fields["content_type"] = forms.CharField(
                label="Media type",
                max_length=200,
                initial="application/octet-stream",
                help_text="What the data is, e.g. application/json, text/plain, "
                "application/x-x509-ca-cert.",
            )
        self.fields[DESCRIPTION] = description_field()

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_DATA_BYTES:
            raise forms.ValidationError(f"the file is over {MAX_DATA_BYTES} bytes")
        return upload


def content_types(declaration_type: str) -> list[str]:
    """The media types Apple allows for an asset Type's data (none listed: any)."""
    for raw in TYPES[declaration_type].fields:
        if raw["name"] == "Reference":
            return list(raw.get("content_types") or [])
    return []


class CredentialForm(Form):
    """The options of an ACME or SCEP credential the portal makes per device: the keys of
    Apple's credential document that the portal does not fill in itself."""

    def __init__(self, data=None, *, source: str, options: dict | None = None, new: bool):
        super().__init__(data)
        if new:
            self.fields[IDENTIFIER] = identifier_field()
        credential = CREDENTIALS[f"com.apple.credential.{source}"]
        self.credential = credential.name
        data_keys = {spec.name for spec in credential.keys if spec.type == "data"}
        self.keys = SchemaFields(self, credential, skip=SUPPLIED[source] | data_keys, optional=True)
        self.fields[DESCRIPTION] = description_field()
        self.keys.fill({**DEFAULTS[source], **(options or {})})

    def key_fields(self):
        return [self[name] for name in self.keys.specs]

    def options(self) -> dict:
        return self.keys.values(self.cleaned_data)

    def add_declaration_error(self, exc) -> None:
        field = IDENTIFIER if exc.key == IDENTIFIER else self.keys.field_for(exc.key)
        field = field if field in self.fields else None
        self.add_error(field, without_type(str(exc), self.credential, field))


class SetForm(Form):
    name = forms.CharField(label="Name", max_length=150)
    description = forms.CharField(
        label="Description (optional)", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class AddDeclarationsForm(Form):
    """Declarations to put in a set (those not in it yet)."""

    declarations = forms.ModelMultipleChoiceField(
        label="Declarations",
        queryset=Declaration.objects.none(),
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Hold Ctrl (⌘ on a Mac) to choose several. What they reference (an "
        "activation's configurations, assets) goes with them.",
    )

    def __init__(self, *args, declaration_set: DeclarationSet, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["declarations"]
        field.queryset = Declaration.objects.exclude(sets=declaration_set).order_by("identifier")
        field.label_from_instance = lambda d: f"{d.identifier} ({type_title(d.type)})"
