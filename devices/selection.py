"""Choosing devices: the fleet filter (state, group, platform, OS version, model, last seen,
search) that the devices list and a command's or a push's target share, and the three ways to
name a target (UDIDs, a group, a filter). Every result is a queryset, never a list of
devices, so that a command for 10,000 devices stays a handful of SQL statements."""

from collections.abc import Mapping

import django_filters
from django.db.models import Q, QuerySet

from .models import Device, DeviceGroup

# A command's `devices` list: one `IN (...)` below SQLite's limit of bound variables.
MAX_UDIDS = 20_000


class SelectionError(ValueError):
    """A selection that names nothing or something unknown; the message says which key."""


def group_named(reference) -> DeviceGroup | None:
    """A group by name, or by id when `reference` is a number (or digits)."""
    text = str(reference).strip()
    found = DeviceGroup.objects.filter(name=text).first()
    if found is None and text.isdigit():
        found = DeviceGroup.objects.filter(pk=int(text)).first()
    return found


class DeviceFilter(django_filters.FilterSet):
    """The fleet filter. Every key is optional; together they narrow the selection."""

    state = django_filters.ChoiceFilter(choices=Device.State.choices)
    group = django_filters.CharFilter(method="by_group", help_text="group name or id")
    platform = django_filters.CharFilter(
        lookup_expr="iexact", help_text="iOS, macOS, tvOS, visionOS or watchOS"
    )
    os_version = django_filters.CharFilter(
        method="by_os_version", help_text="an OS version or its prefix: 17 matches 17.4.1"
    )
    model = django_filters.CharFilter(
        method="by_model", help_text="model, model name or product name, e.g. iPhone15,2"
    )
    last_seen_after = django_filters.IsoDateTimeFilter(
        field_name="last_seen_at", lookup_expr="gte", help_text="ISO 8601 date and time"
    )
    last_seen_before = django_filters.IsoDateTimeFilter(
        field_name="last_seen_at", lookup_expr="lt", help_text="ISO 8601 date and time"
    )
    search = django_filters.CharFilter(
        method="by_search", help_text="part of the serial number, UDID or device name"
    )

    class Meta:
        model = Device
        fields = [
            "state",
            "group",
            "platform",
            "os_version",
            "model",
            "last_seen_after",
            "last_seen_before",
            "search",
        ]

    def by_group(self, queryset, name, value):
        group = group_named(value)
        return queryset.filter(group=group) if group is not None else queryset.none()

    def by_os_version(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(os_version=value) | Q(os_version__startswith=value + "."))

    def by_model(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(
            Q(model__iexact=value) | Q(model_name__iexact=value) | Q(product_name__iexact=value)
        )

    def by_search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(
            Q(serial_number__icontains=value)
            | Q(udid__icontains=value)
            | Q(device_name__icontains=value)
        )


FILTER_KEYS = frozenset(DeviceFilter.base_filters)


def devices_matching(params: Mapping, queryset: QuerySet | None = None) -> QuerySet:
    """The devices `params` (a QueryDict or a dict of the filter's keys) select.

    Raises SelectionError naming the first unknown key or invalid value.
    """
    unknown = sorted(set(params) - FILTER_KEYS)
    if unknown:
        raise SelectionError(f"{unknown[0]}: unknown filter (use {', '.join(sorted(FILTER_KEYS))})")
    data = {key: "" if value is None else str(value) for key, value in params.items()}
    selection = DeviceFilter(data, queryset=queryset if queryset is not None else Device.objects)
    if not selection.is_valid():
        key, messages = next(iter(selection.errors.items()))
        raise SelectionError(f"{key}: {' '.join(messages)}")
    return selection.qs


def select_devices(
    *, udids: list[str] | None = None, group=None, filters: Mapping | None = None
) -> QuerySet:
    """A command's or a push's target, named in exactly one way: a list of UDIDs (every one
    must exist), a group (its managed devices) or a fleet filter (its managed devices)."""
    given = [udids is not None, group is not None, filters is not None]
    if sum(given) != 1:
        raise SelectionError("target: name the devices with one of devices, group or filter")
    if udids is not None:
        if not udids:
            raise SelectionError("devices: the list is empty")
        if len(udids) > MAX_UDIDS:
            raise SelectionError(
                f"devices: at most {MAX_UDIDS} UDIDs per request (use a group or a filter)"
            )
        wanted = set(udids)
        found = set(Device.objects.filter(udid__in=wanted).values_list("udid", flat=True))
        missing = sorted(wanted - found)
        if missing:
            raise SelectionError(
                f"devices: {len(missing)} unknown device(s): " + ", ".join(missing[:5])
            )
        return Device.objects.filter(udid__in=wanted)
    managed = Device.objects.filter(state=Device.State.ENROLLED)
    if group is not None:
        found = group if isinstance(group, DeviceGroup) else group_named(group)
        if found is None:
            raise SelectionError(f"group: no group {group!r}")
        selection = managed.filter(group=found)
        if not selection.exists():
            raise SelectionError(f"group: {found.name!r} has no managed device")
        return selection
    selection = devices_matching(filters or {}, managed)
    if not selection.exists():
        raise SelectionError("filter: no managed device matches")
    return selection
