"""Which devices a filter of the device list names: its querystring turned into a queryset, so
the list, its bulk actions and the command form select the very same devices.

Parameters, each optional (an empty one is ignored): `q` (name, serial number, UDID or model
contains), `state` (a Device.State), `group` (a group id), `platform`,
`os_version` (that version or any below it: "17" matches "17.4"), `model` (model, model name
or product name, e.g. iPhone15,2), `seen` (`24h`, `7d`, `stale`: not seen for 7 days or
never, `inactive`, `token_invalid`), `last_seen_after` and `last_seen_before` (ISO 8601 dates
and times). A value that names nothing known raises SelectionError instead of being ignored:
an ignored typo would widen a bulk command to the whole fleet. The REST API takes the same
keys (devices list, and a command's or a push's `filter`), a group by its name too
(`group_by_name`).
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import Device, DeviceGroup

FILTER_KEYS = (
    "q",
    "state",
    "group",
    "platform",
    "os_version",
    "model",
    "seen",
    "last_seen_after",
    "last_seen_before",
)
# A command's `devices` list (the API): one `IN (...)` below SQLite's limit of bound variables.
MAX_UDIDS = 20_000
SEEN = {
    "24h": "seen in the last 24 hours",
    "7d": "seen in the last 7 days",
    "stale": "not seen for 7 days or more",
    "inactive": "inactive",
    "token_invalid": "push token invalid",
}


class SelectionError(ValueError):
    """A filter value that names nothing the device list knows."""


def group_named(reference) -> DeviceGroup | None:
    """A group by its name, or by its id when `reference` is digits."""
    text = str(reference).strip()
    found = DeviceGroup.objects.filter(name=text).first()
    if found is None and text.isdigit():
        found = DeviceGroup.objects.filter(pk=int(text)).first()
    return found


def group_by_name(params: Mapping) -> dict:
    """`params` as a dict, a `group` given by name turned into its id (an unknown name stays,
    for devices_matching to refuse)."""
    params = {key: params.get(key) for key in params}
    group = str(params.get("group") or "").strip()
    if group and not group.isdigit():
        found = DeviceGroup.objects.filter(name=group).first()
        if found is not None:
            params["group"] = str(found.pk)
    return params


def _moment(key: str, text: str) -> datetime:
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise SelectionError(f"{key} must be an ISO 8601 date and time, not {text!r}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _seen(value: str, now: datetime) -> Q:
    if value == "24h":
        return Q(last_seen_at__gte=now - timedelta(hours=24))
    if value == "7d":
        return Q(last_seen_at__gte=now - timedelta(days=7))
    if value == "stale":
        return Q(last_seen_at__lt=now - timedelta(days=7)) | Q(last_seen_at__isnull=True)
    if value == "inactive":
        return Q(inactive_since__isnull=False)
    if value == "token_invalid":
        return Q(token_invalid_at__isnull=False)
    raise SelectionError(f"seen must be one of {', '.join(SEEN)}, not {value!r}")


def devices_matching(params: Mapping, *, now: datetime | None = None) -> QuerySet:
    """The devices the device list's filter `params` (a QueryDict or a dict) selects."""
    value = {key: str(params.get(key) or "").strip() for key in FILTER_KEYS}
    devices = Device.objects.all()
    if value["q"]:
        q = value["q"]
        devices = devices.filter(
            Q(device_name__icontains=q)
            | Q(serial_number__icontains=q)
            | Q(udid__icontains=q)
            | Q(model__icontains=q)
            | Q(model_name__icontains=q)
            | Q(product_name__icontains=q)
        )
    if value["state"]:
        if value["state"] not in Device.State.values:
            states = ", ".join(Device.State.values)
            raise SelectionError(f"state must be one of {states}, not {value['state']!r}")
        devices = devices.filter(state=value["state"])
    if value["group"]:
        if not value["group"].isdigit():
            raise SelectionError(f"group must be a group id, not {value['group']!r}")
        devices = devices.filter(group_id=int(value["group"]))
    if value["platform"]:
        devices = devices.filter(platform__iexact=value["platform"])
    if value["os_version"]:
        version = value["os_version"]
        devices = devices.filter(Q(os_version=version) | Q(os_version__startswith=version + "."))
    if value["model"]:
        model = value["model"]
        devices = devices.filter(
            Q(model__iexact=model) | Q(model_name__iexact=model) | Q(product_name__iexact=model)
        )
    if value["seen"]:
        devices = devices.filter(_seen(value["seen"], now or timezone.now()))
    if value["last_seen_after"]:
        devices = devices.filter(
            last_seen_at__gte=_moment("last_seen_after", value["last_seen_after"])
        )
    if value["last_seen_before"]:
        devices = devices.filter(
            last_seen_at__lt=_moment("last_seen_before", value["last_seen_before"])
        )
    return devices
