"""Which devices a filter names: the one definition behind the device list's filters, its
"every device that matches" selection, the command form's `filter=` target and the API.

A filter is a query string (or QueryDict) with any of these keys; the others (page, sort, ...)
are ignored:

- `q`: one search box over name, serial number, UDID and model (substring, any case);
- `state`: enrolled, pending or checked_out;
- `group`: a group's id, or `none` for devices in no group;
- `platform`: iOS, macOS, tvOS, visionOS or watchOS;
- `os_version`: a version or its prefix: `17` matches 17, 17.4 and 17.4.1, not 170;
- `seen`: `24h` / `7d` (seen within), `stale` (not seen for 7 days or more, or never),
  `inactive` (marked by the inactivity sweep), `token_invalid` (APNs refused the push token).

`devices_matching` refuses a filter it cannot read (SelectionError) rather than dropping the
unreadable part, which would widen the selection: a command must never go to more devices than
the person asked for.
"""

import datetime as dt
from urllib.parse import urlencode

import django_filters
from django import forms
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Concat
from django.http import QueryDict
from django.utils import timezone

from .models import Device, DeviceGroup

PLATFORMS = ("iOS", "macOS", "tvOS", "visionOS", "watchOS")
FILTER_KEYS = ("q", "state", "group", "platform", "os_version", "seen")
STALE_DAYS = 7

# Each `seen` value in words (the command form describes a filter with them).
SEEN = {
    "24h": "seen in the last 24 hours",
    "7d": "seen in the last 7 days",
    "stale": f"not seen for {STALE_DAYS} days or more",
    "inactive": "inactive",
    "token_invalid": "push token invalid",
}
SEEN_CHOICES = [(value, words[0].upper() + words[1:]) for value, words in SEEN.items()]
STATE_CHOICES = [
    (Device.State.ENROLLED, "Enrolled"),
    (Device.State.PENDING, "Pending"),
    (Device.State.CHECKED_OUT, "Checked out"),
]
NO_GROUP = "none"


class SelectionError(ValueError):
    """A filter that cannot be read; `errors` maps each bad key to its messages, each of which
    names its key."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(" ".join(messages) for messages in errors.values()))


class GroupFilter(django_filters.Filter):
    field_class = forms.ChoiceField

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        if value == NO_GROUP:
            return qs.filter(group__isnull=True)
        return qs.filter(group_id=int(value))


# What the search box looks in: the columns joined by a separator no one types, so that one
# LIKE reads a row (not six) and one trigram index (migration 0010, PostgreSQL) serves it.
SEARCHED = ("device_name", "serial_number", "udid", "model_name", "model", "product_name")
SEPARATOR = "\x1f"


def search_text() -> Concat:
    """The searched text of a device (the expression the trigram index is built on)."""
    parts = []
    for name in SEARCHED:
        parts += [name, Value(SEPARATOR)]
    return Concat(*parts[:-1])


def _search(queryset: QuerySet, name: str, value: str) -> QuerySet:
    value = value.strip()
    if not value:
        return queryset
    return queryset.alias(search=search_text()).filter(search__icontains=value)


def _os_version(queryset: QuerySet, name: str, value: str) -> QuerySet:
    value = value.strip().rstrip(".")
    if not value:
        return queryset
    return queryset.filter(Q(os_version=value) | Q(os_version__startswith=value + "."))


def seen_condition(value: str, now: dt.datetime | None = None) -> Q:
    """The condition of one `seen` choice."""
    now = now or timezone.now()
    if value == "24h":
        return Q(last_seen_at__gte=now - dt.timedelta(hours=24))
    if value == "7d":
        return Q(last_seen_at__gte=now - dt.timedelta(days=STALE_DAYS))
    if value == "stale":
        return Q(last_seen_at__lt=now - dt.timedelta(days=STALE_DAYS)) | Q(
            last_seen_at__isnull=True
        )
    if value == "inactive":
        return Q(inactive_since__isnull=False)
    if value == "token_invalid":
        return Q(token_invalid_at__isnull=False)
    raise ValueError(f"unknown seen value {value!r}")


def _seen(queryset: QuerySet, name: str, value: str) -> QuerySet:
    return queryset.filter(seen_condition(value)) if value else queryset


class DeviceFilter(django_filters.FilterSet):
    """The device list's filters, as a form (labels, choices) and as a queryset."""

    q = django_filters.CharFilter(
        label="Search",
        method=_search,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, serial, UDID or model"}
        ),
    )
    state = django_filters.ChoiceFilter(label="State", choices=STATE_CHOICES, empty_label="Any")
    group = GroupFilter(label="Group")
    platform = django_filters.ChoiceFilter(
        label="Platform", choices=[(p, p) for p in PLATFORMS], empty_label="Any"
    )
    os_version = django_filters.CharFilter(
        label="OS version",
        method=_os_version,
        widget=forms.TextInput(attrs={"placeholder": "e.g. 17 or 17.4", "size": 8}),
    )
    seen = django_filters.ChoiceFilter(
        label="Last seen", choices=SEEN_CHOICES, method=_seen, empty_label="Any time"
    )

    class Meta:
        model = Device
        fields = list(FILTER_KEYS)

    @property
    def form(self):
        form = super().form
        form.label_suffix = ""
        field = form.fields["group"]
        if not field.choices:
            groups = DeviceGroup.objects.order_by("name").values_list("id", "name")
            field.choices = [("", "Any"), (NO_GROUP, "No group")] + [
                (str(pk), name) for pk, name in groups
            ]
        return form


def as_querydict(data) -> QueryDict:
    if isinstance(data, QueryDict):
        return data
    if isinstance(data, str):
        return QueryDict(data.lstrip("?"))
    query = QueryDict(mutable=True)
    for key, value in dict(data or {}).items():
        query.setlist(key, value if isinstance(value, list | tuple) else [value])
    return query


def read_filter(data, queryset: QuerySet | None = None) -> DeviceFilter:
    """The DeviceFilter of `data` (a QueryDict, a dict or a query string)."""
    query = as_querydict(data)
    # Only the filter's own keys: an empty filter is unbound (every device), not invalid.
    bound = {key: query.getlist(key) for key in FILTER_KEYS if any(query.getlist(key))}
    filterset_data = QueryDict(mutable=True)
    for key, values in bound.items():
        filterset_data.setlist(key, values)
    return DeviceFilter(filterset_data if bound else None, queryset=queryset)


def devices_matching(data, queryset: QuerySet | None = None) -> QuerySet:
    """Every device the filter `data` names (a QueryDict, a dict or a query string).

    Raises SelectionError if a value cannot be read (an unknown state, a group that does not
    exist...): the selection is never silently widened.
    """
    selection = read_filter(data, queryset if queryset is not None else Device.objects.all())
    if selection.is_bound and not selection.is_valid():
        raise SelectionError({key: [_refusal(selection, key)] for key in selection.errors})
    return selection.qs


def _refusal(selection: DeviceFilter, key: str) -> str:
    """Why `key`'s value was refused, naming what it may be (for the command line and forms
    that name a filter in text: the list shows the form's own errors by its fields)."""
    value = selection.data.get(key, "")
    if key == "group":
        return f"group must be a group id or {NO_GROUP!r}, and {value!r} names no group"
    # Only choice fields list what they accept; a text filter's error says what is wrong.
    field_choices = getattr(selection.form.fields[key], "choices", ())
    choices = [str(choice) for choice, _label in field_choices if choice]
    if choices:
        return f"{key} must be one of {', '.join(choices)}, not {value!r}"
    return " ".join(selection.errors[key])


def filter_querystring(data) -> str:
    """The filter part of a query string (its FILTER_KEYS, non-empty), url-encoded: what
    `/commands/new/?filter=` carries."""
    query = as_querydict(data)
    pairs = [(key, value) for key in FILTER_KEYS for value in query.getlist(key) if value]
    return urlencode(pairs)


# -- the REST API's ways of naming a group and devices -----------------------------------------

# A command's `devices` list: one `IN (...)` below SQLite's limit of bound variables.
MAX_UDIDS = 20_000


def group_named(reference) -> DeviceGroup | None:
    """A group by its name, or by its id when `reference` is digits."""
    text = str(reference).strip()
    found = DeviceGroup.objects.filter(name=text).first()
    if found is None and text.isdigit():
        found = DeviceGroup.objects.filter(pk=int(text)).first()
    return found


def group_by_name(data) -> QueryDict:
    """The filter `data` with a `group` given by its name turned into its id (the API takes
    either); an unknown name stays, for devices_matching to refuse."""
    query = as_querydict(data).copy()
    group = (query.get("group") or "").strip()
    if group and group != NO_GROUP and not group.isdigit():
        found = DeviceGroup.objects.filter(name=group).first()
        if found is not None:
            query["group"] = str(found.pk)
    return query
