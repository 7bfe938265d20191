"""Automated Device Enrollment as the pages and the API list it: DEP servers with their device
counts and token expiry, DEP devices with the managed device of the same serial number, one
filter for both surfaces, and the dashboard's counts.

Nothing here talks to Apple or changes anything: the sync (enrollment.dep_sync) writes these
rows, and these functions only read them, in a fixed number of queries whatever the fleet.
"""

import django_filters
from django import forms
from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models import Value as V
from django.utils import timezone

from certs.expiry import expiry_entry, warning_days
from devices.models import Device

from .dep_models import DepDevice, DepProfile, DepServer

# Apple's profile_status values (an unset one reads as "empty"), in the order of the process.
PROFILE_STATUSES = {
    "empty": "no profile",
    "assigned": "assigned",
    "pushed": "pushed to the device",
    "removed": "removed",
}
# A device Apple holds no profile for: it would go through Setup Assistant unmanaged.
UNASSIGNED_STATUSES = ("", "empty", "removed")
UNASSIGNED = Q(profile_status__in=UNASSIGNED_STATUSES)
LIVE = Q(removed=False)  # still in ABM (a sync reported no "deleted" for it)


def _managed_device(field: str) -> Subquery:
    """`field` of the portal's device with this serial number: the enrolled one if any, else
    the newest (a device enrolled again after an erase keeps its UDID, so this is rare)."""
    same_serial = Device.objects.filter(serial_number=OuterRef("serial_number")).order_by(
        Case(
            When(state=Device.State.ENROLLED, then=V(0)),
            default=V(1),
            output_field=IntegerField(),
        ),
        "-id",
    )
    return Subquery(same_serial.values(field)[:1])


def enrolled_device() -> Exists:
    """Whether an enrolled (managed) device of the portal has the DEP device's serial."""
    return Exists(
        Device.objects.filter(serial_number=OuterRef("serial_number"), state=Device.State.ENROLLED)
    )


def dep_devices() -> QuerySet[DepDevice]:
    """Every DEP device with its server and assigned profile read in the same statement, and
    `device_udid`, `device_state` and `enrolled` from the managed device with its serial."""
    return DepDevice.objects.select_related("server", "assigned_profile").annotate(
        device_udid=_managed_device("udid"),
        device_state=_managed_device("state"),
        enrolled=enrolled_device(),
    )


class DepDeviceFilter(django_filters.FilterSet):
    """The DEP device list's filters, for the page and for /api/v1/dep/devices/."""

    q = django_filters.CharFilter(
        label="Serial, model or description",
        method="search",
        widget=forms.TextInput(attrs={"type": "search", "spellcheck": "false"}),
    )
    server = django_filters.ModelChoiceFilter(
        label="Server", queryset=DepServer.objects.order_by("name"), empty_label="any"
    )
    profile_status = django_filters.ChoiceFilter(
        label="Profile status",
        choices=[*PROFILE_STATUSES.items(), ("unassigned", "unassigned (none or removed)")],
        empty_label="any",
        method="by_profile_status",
    )
    assigned_profile = django_filters.ModelChoiceFilter(
        label="Assigned profile",
        queryset=DepProfile.objects.select_related("server").order_by("name", "id"),
        empty_label="any",
        null_label="none",
    )
    enrolled = django_filters.BooleanFilter(
        label="Enrolled",
        widget=forms.Select(choices=[("", "any"), ("true", "yes"), ("false", "no")]),
    )
    removed = django_filters.BooleanFilter(
        label="Removed from ABM",
        widget=forms.Select(choices=[("", "any"), ("true", "yes"), ("false", "no")]),
    )

    class Meta:
        model = DepDevice
        fields = ["q", "server", "profile_status", "assigned_profile", "enrolled", "removed"]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(serial_number__iexact=value)
            | Q(model__icontains=value)
            | Q(description__icontains=value)
        )

    def by_profile_status(self, queryset, name, value):
        if value == "unassigned":
            return queryset.filter(UNASSIGNED)
        if value == "empty":
            return queryset.filter(profile_status__in=["", "empty"])
        return queryset.filter(profile_status=value)


def dep_servers() -> QuerySet[DepServer]:
    """Every DEP server with `device_count` and `unassigned_count` (devices still in ABM),
    its auto-assign profile read in the same statement; never its secrets."""
    return (
        DepServer.objects.select_related("auto_assign_profile", "key")
        .defer("consumer_secret", "access_secret", "session_token", "key__private_key_pem")
        .annotate(
            device_count=Count("devices", filter=Q(devices__removed=False)),
            unassigned_count=Count(
                "devices",
                filter=Q(devices__removed=False, devices__profile_status__in=UNASSIGNED_STATUSES),
            ),
        )
    )


def token_expiry(server: DepServer, now=None) -> dict | None:
    """The server token's expiry as certs.expiry grades certificates (days_left, severity:
    ok, notice, warning, critical, expired), or None before a token is imported."""
    if server.access_token_expiry is None:
        return None
    now = now or timezone.now()
    return expiry_entry(
        "dep-token", server.name, server.org_name, server.access_token_expiry, now, warning_days()
    )


def dep_summary() -> dict[str, int]:
    """The dashboard's counts: servers, DEP devices still in ABM, those Apple holds no profile
    for, and those no enrolled device of the portal has the serial of (two queries)."""
    live = DepDevice.objects.filter(LIVE)
    counts = live.aggregate(
        devices=Count("id"),
        unassigned=Count("id", filter=UNASSIGNED),
        not_enrolled=Count("id", filter=~enrolled_device()),
    )
    return {"servers": DepServer.objects.count(), **counts}


def serials_problem(serials: list[str], server: DepServer) -> str | None:
    """Why these serial numbers cannot be acted on for `server` (assign its profile, disown
    from it), or None: each must be a DEP device of the portal, and of that server (Apple
    defines a profile for one server, and only the server holding a device may disown it)."""
    found = dict(
        DepDevice.objects.filter(serial_number__in=serials).values_list(
            "serial_number", "server_id"
        )
    )
    unknown = [serial for serial in serials if serial not in found]
    if unknown:
        return "not a DEP device of the portal: " + _some(unknown)
    elsewhere = [serial for serial in serials if found[serial] != server.pk]
    if elsewhere:
        verb = "is" if len(elsewhere) == 1 else "are"
        return f"{_some(elsewhere)} {verb} not on {server.name}"
    return None


def _some(serials: list[str], shown: int = 20) -> str:
    more = len(serials) - shown
    return ", ".join(serials[:shown]) + (f" and {more} more" if more > 0 else "")
