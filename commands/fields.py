"""Form fields built from the catalog: one field per key of a command, chosen by the key's type
(strings, integers and reals as inputs, booleans and enumerations as selects, data as a file
or base64, arrays of strings one per line, other arrays, dictionaries and `any` as JSON), with
its platforms and OS versions as help. The value read back is the plist value; whether it is
a valid command stays the catalog's judgement (commands.queue.enqueue)."""

import base64
import binascii
import json
from datetime import UTC

from django import forms

from .catalog.definitions import KeySpec

BASE64_SUFFIX = "__base64"  # the textarea beside a data key's file input
NOT_SET = ("", "— not set —")
TRUE_FALSE = (("true", "Yes"), ("false", "No"))


class JSONText(forms.CharField):
    """JSON typed into a textarea; `kind` is "object", "array" or "" (any value)."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"})

    def __init__(self, *, kind: str = "", **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None
        wanted = {"object": dict, "array": list}.get(self.kind)
        if wanted is not None and not isinstance(parsed, wanted):
            raise forms.ValidationError(f"must be a JSON {self.kind}")
        return parsed


class Lines(forms.CharField):
    """Strings, one per line (blank lines ignored)."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def to_python(self, value):
        text = super().to_python(value) or ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines or None


class Flag(forms.BooleanField):
    """A checkbox that sets the key to true when ticked and leaves it out otherwise."""

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        return True if super().to_python(value) else None


class Base64Text(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"})

    def to_python(self, value):
        text = "".join((super().to_python(value) or "").split())
        if not text:
            return None
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise forms.ValidationError(f"not valid base64: {exc}") from None


def platform_note(spec: KeySpec) -> str:
    """Where Apple says the key works: "macOS 10.8+; not on iOS, watchOS"."""
    since = [f"{name} {version}+" for name, version in sorted(spec.platforms.items()) if version]
    never = [name for name, version in sorted(spec.platforms.items()) if version is None]
    parts = [", ".join(since)] if since else []
    if never:
        parts.append("not on " + ", ".join(never))
    return "; ".join(parts)


def shown_for(spec: KeySpec, platforms: set[str]) -> bool:
    """Whether some target can take the key: hide keys no target's platform supports.

    A device that has not reported its platform ("") could be anything: every key shows.
    """
    if not platforms or "" in platforms:
        return True
    return any(spec.platforms.get(platform, "") is not None for platform in platforms)


_EXAMPLES = {
    "string": "…",
    "integer": 0,
    "real": 0.0,
    "boolean": True,
    "date": "2025-01-31T09:00:00Z",
    "data": "<base64>",
    "any": "…",
}


def example(spec: KeySpec):
    """An illustration of a value of `spec` as JSON (the help of JSON fields): required
    subkeys first, a few of them, and the first allowed value where Apple lists them."""
    if spec.allowed:
        return spec.allowed[0]
    if spec.type == "dictionary":
        if spec.is_open_dictionary:
            return {"key": example(spec.subkeys[0])}
        shown = sorted(spec.subkeys, key=lambda sub: not sub.required)[:4]
        return {sub.name: example(sub) for sub in shown}
    if spec.type == "array":
        return [example(spec.subkeys[0])] if spec.subkeys else []
    return _EXAMPLES[spec.type]


def _help(spec: KeySpec, kind: str) -> str:
    parts = [kind] if kind else []
    note = platform_note(spec)
    if note:
        parts.append(note)
    return " · ".join(parts)


def key_fields(
    spec: KeySpec,
    *,
    label: str = "",
    help_text: str = "",
    checkbox: bool = False,
    value_labels: dict | None = None,
):
    """The form field(s) for one key, by name: {name: field} (a data key has two).

    `value_labels` names the values of an enumeration ({1: "Lock screen"}) in its select.
    """
    required = spec.required
    label = label or spec.name
    common = {"label": label, "required": required}

    def helped(kind: str) -> str:
        return " · ".join(part for part in (help_text, _help(spec, kind)) if part)

    if spec.type == "boolean" and checkbox and not required:
        return {spec.name: Flag(label=label, help_text=helped(""))}
    if spec.type == "boolean":
        choices = TRUE_FALSE if required else (NOT_SET, *TRUE_FALSE)
        field = forms.TypedChoiceField(
            choices=choices, coerce=lambda v: v == "true", empty_value=None, **common
        )
        field.help_text = helped("")
        return {spec.name: field}
    if spec.allowed is not None and spec.type in ("string", "integer"):
        names = value_labels or {}
        choices = [
            (str(value), f"{value}: {names[value]}" if value in names else str(value))
            for value in spec.allowed
        ]
        coerce = int if spec.type == "integer" else str
        field = forms.TypedChoiceField(
            choices=choices if required else [NOT_SET, *choices],
            coerce=coerce,
            empty_value=None,
            **common,
        )
        field.help_text = helped("one of the values Apple lists")
        return {spec.name: field}
    if spec.type == "string":
        return {spec.name: forms.CharField(help_text=helped(""), **common)}
    if spec.type == "integer":
        return {spec.name: forms.IntegerField(help_text=helped("a whole number"), **common)}
    if spec.type == "real":
        return {spec.name: forms.FloatField(help_text=helped("a number"), **common)}
    if spec.type == "date":
        widget = forms.DateTimeInput(attrs={"type": "datetime-local"})
        return {spec.name: forms.DateTimeField(widget=widget, help_text=helped("UTC"), **common)}
    if spec.type == "data":
        return {
            spec.name: forms.FileField(
                label=f"{label} (file)", required=False, help_text=helped("a file, or base64 below")
            ),
            spec.name + BASE64_SUFFIX: Base64Text(label=f"{label} (or as base64)", required=False),
        }
    if spec.type == "array" and _is_string_list(spec):
        item = spec.subkeys[0]
        if item.allowed:
            choices = [(str(value), str(value)) for value in item.allowed]
            field = forms.MultipleChoiceField(
                choices=choices, widget=forms.CheckboxSelectMultiple, **common
            )
            field.help_text = helped("")
            return {spec.name: field}
        return {spec.name: Lines(help_text=helped("one per line"), **common)}
    kind = {"array": "array", "dictionary": "object"}.get(spec.type, "")
    what = {"array": "a JSON array", "object": "a JSON object"}.get(kind, "any JSON value")
    shape = json.dumps(example(spec), ensure_ascii=False)
    text = f"{what} (data as base64), e.g. {shape}"
    return {spec.name: JSONText(kind=kind, help_text=helped(text), **common)}


def _is_string_list(spec: KeySpec) -> bool:
    return len(spec.subkeys) == 1 and spec.subkeys[0].type == "string"


def key_value(spec: KeySpec, cleaned: dict):
    """The plist value of a key from a form's cleaned data, or None when it is not given."""
    if spec.type == "data":
        upload = cleaned.get(spec.name)
        pasted = cleaned.get(spec.name + BASE64_SUFFIX)
        if upload and pasted:
            raise forms.ValidationError(
                {spec.name: "give the file or the base64, not both"}, code="both"
            )
        return upload.read() if upload else pasted
    value = cleaned.get(spec.name)
    if value is None or value == "" or value == []:
        return None
    if spec.type == "date":
        return value.astimezone(UTC).replace(tzinfo=None)  # plists carry UTC dates, naive
    return value
