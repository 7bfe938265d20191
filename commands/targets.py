"""The devices a command is for, as the command form is told them: `device=<udid>` (repeatable),
or `filter=<querystring of the device list>` (every device it matches), or `group=<id>`.

Named devices go to enqueue as they are, so it says which of them it refuses and why; a filter
or a group is a bulk selection and keeps only the devices enqueue accepts (managed, push token
valid), saying how many it left out.
"""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import QueryDict

from devices.models import Device, DeviceGroup
from devices.selection import (
    FILTER_KEYS,
    MAX_UDIDS,
    SEEN,
    SelectionError,
    devices_matching,
    group_by_name,
    group_named,
)

from .queue import queueable

SHOWN_NAMES = 5  # devices named in the summary


class TargetError(ValueError):
    """The target parameters name no devices, or name them in more than one way."""


@dataclass
class Targets:
    kind: str  # "devices", "filter" or "group"
    devices: QuerySet  # what enqueue is given
    count: int
    summary: str  # "3 devices: a, b, c" / "every device matching ...: N"
    query: str  # the querystring naming these targets, to keep them in links and forms
    left_out: int = 0  # matched by a filter or a group, but not queueable
    single: Device | None = None  # the one named device
    platforms: set[str] = field(default_factory=set)  # "" when a device has not said yet
    common_rights: int = 0  # the AccessRights every target has

    @property
    def has_macs(self) -> bool:
        return "macOS" in self.platforms

    @property
    def platform_names(self) -> list[str]:
        return sorted(platform or "not reported yet" for platform in self.platforms)

    def erase_confirmation(self) -> str:
        """What a person types to confirm EraseDevice: the device's name, or the count."""
        return str(self.single) if self.single is not None else str(self.count)


def _names(devices: QuerySet, count: int) -> str:
    names = [str(device) for device in devices.order_by("device_name", "udid")[:SHOWN_NAMES]]
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _plural(count: int) -> str:
    return f"{count} device" + ("" if count == 1 else "s")


def describe_filter(params: QueryDict) -> str:
    """A filter of the device list in words: "state enrolled, seen in the last 24 hours"."""
    parts = []
    for key in FILTER_KEYS:  # what else a device list's querystring holds (sort, page) is not one
        value = params.get(key, "")
        if not value:
            continue
        if key == "seen":
            parts.append(SEEN.get(value, value))
        elif key == "group":
            group = DeviceGroup.objects.filter(pk=value).first() if value.isdigit() else None
            parts.append(f"group {group.name if group else value}")
        elif key == "q":
            parts.append(f"“{value}”")
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts) or "no filter: the whole fleet"


def _by_udid(udids: list[str]) -> Targets:
    devices = Device.objects.filter(udid__in=udids)
    found = set(devices.values_list("udid", flat=True))
    missing = [udid for udid in udids if udid not in found]
    if missing:
        raise TargetError("unknown device(s): " + ", ".join(missing[:SHOWN_NAMES]))
    count = len(found)
    single = devices.first() if count == 1 else None
    return Targets(
        kind="devices",
        devices=devices,
        count=count,
        summary=f"{_plural(count)}: {_names(devices, count)}",
        query=urlencode([("device", udid) for udid in dict.fromkeys(udids)]),
        single=single,
    )


def _bulk(kind: str, matched: QuerySet, words: str, query: str) -> Targets:
    devices = queueable(matched)
    count = devices.count()
    left_out = matched.count() - count
    summary = f"{words}: {_plural(count)}"
    if count:
        summary += f" ({_names(devices, count)})"
    return Targets(
        kind=kind, devices=devices, count=count, summary=summary, query=query, left_out=left_out
    )


def resolve_targets(params: QueryDict) -> Targets | None:
    """The targets `params` name, or None when they name none. Raises TargetError."""
    udids = [udid.strip() for udid in params.getlist("device") if udid.strip()]
    has_filter = "filter" in params
    group = params.get("group", "").strip()
    if sum((bool(udids), has_filter, bool(group))) > 1:
        raise TargetError("name the devices one way: device=, filter= or group=")
    if udids:
        targets = _by_udid(udids)
    elif has_filter:
        criteria = QueryDict(params.get("filter", ""))
        try:
            matched = devices_matching(criteria)
        except SelectionError as exc:
            raise TargetError(f"the device filter is not valid: {exc}") from None
        words = f"Every device matching {describe_filter(criteria)}"
        targets = _bulk("filter", matched, words, urlencode({"filter": params.get("filter", "")}))
    elif group:
        found = DeviceGroup.objects.filter(pk=group).first() if group.isdigit() else None
        if found is None:
            raise TargetError(f"no group with id {group!r}")
        targets = _bulk(
            "group", found.devices.all(), f"Group “{found.name}”", urlencode({"group": found.pk})
        )
    else:
        return None
    unordered = targets.devices.order_by()  # DISTINCT over the value alone, not the ordering
    targets.platforms = set(unordered.values_list("platform", flat=True).distinct())
    rights = ~0
    for value in unordered.values_list("access_rights", flat=True).distinct():
        rights &= value
    targets.common_rights = rights if targets.count else 0
    return targets


def targets_from_json(*, udids=None, group=None, filters=None) -> Targets:
    """The targets a JSON request names (the REST API: `devices`, a list of UDIDs; `group`, a
    name or id; `filter`, the device list's keys), resolved as the command form's are: named
    devices as they are, a group or a filter keeping the devices enqueue accepts."""
    given = [udids is not None, group is not None, filters is not None]
    if sum(given) != 1:
        raise TargetError("target: name the devices with one of devices, group or filter")
    params = QueryDict(mutable=True)
    if udids is not None:
        if not udids:
            raise TargetError("devices: the list is empty")
        if len(udids) > MAX_UDIDS:
            raise TargetError(f"devices: at most {MAX_UDIDS} UDIDs (use a group or a filter)")
        params.setlist("device", list(udids))
    elif group is not None:
        found = group_named(group)
        if found is None:
            raise TargetError(f"group: no group {group!r}")
        params["group"] = str(found.pk)
    else:
        criteria = group_by_name({key: str(value) for key, value in filters.items()})
        params["filter"] = criteria.urlencode()
    targets = resolve_targets(params)
    if targets.count == 0:
        raise TargetError(
            f"{targets.kind}: no device can take a command now "
            f"({targets.left_out} not managed, or with a push token APNs declared invalid)"
        )
    return targets
