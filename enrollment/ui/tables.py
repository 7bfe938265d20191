"""The tables of the library, enrollment and group pages (django-tables2)."""

import django_tables2 as tables
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from devices.models import Device, DeviceGroup

from ..enrollments import enrollment_link
from ..library import installed_version, missing_devices
from ..mobileconfig import unavailable_reason
from ..models import DeviceEnrollment, Enrollment, Profile

NUM = {"td": {"class": "num"}, "th": {"class": "num"}}  # a column of numbers, right-aligned
STATE_WORDS = {None: "active", "inactive": "turned off", "expired": "expired", "used_up": "used up"}
STATE_BADGES = {None: "ok", "inactive": "none", "expired": "expired", "used_up": "warning"}


def state_badge(state: str, words: str = ""):
    return format_html('<span class="badge {}">{}</span>', state, words or state.replace("_", " "))


def by_name(queryset, field: str, descending: bool):
    """Ordered by a name as people sort it (case does not matter), then by UDID."""
    udid = field.replace("device_name", "udid")
    key = Lower(field).desc() if descending else Lower(field).asc()
    return queryset.order_by(key, udid)


def device_link(device: Device):
    return format_html(
        '<a href="/devices/{}/">{}</a>', device.udid, device.device_name or device.udid
    )


class ProfileTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("profile-detail", args=[record.pk]))
    identifier = tables.Column(attrs={"td": {"class": "mono"}})
    version = tables.Column(attrs=NUM)
    assignment_count = tables.Column(
        verbose_name="Assigned to",
        orderable=False,
        attrs=NUM,
    )
    installed = tables.Column(
        verbose_name="Installed on",
        empty_values=(),
        orderable=False,
        attrs=NUM,
    )
    missing = tables.Column(
        verbose_name="Missing on",
        empty_values=(),
        orderable=False,
        attrs=NUM,
    )
    updated_at = tables.DateTimeColumn(verbose_name="Updated", format="Y-m-d H:i")

    class Meta:
        model = Profile
        fields = ("name", "identifier", "version", "assignment_count", "installed", "missing")
        order_by = "name"
        empty_text = "The library is empty: upload a .mobileconfig to start."

    def render_assignment_count(self, value):
        return f"{value} group(s) or device(s)" if value != 1 else "1 group or device"

    def render_installed(self, record):
        return f"{installed_version(record).count()} device(s)"

    def render_missing(self, record):
        count = missing_devices(record).count()
        return state_badge("warning", f"{count} device(s)") if count else "—"


class EnrollmentTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("enrollment-detail", args=[record.pk]))
    link = tables.Column(verbose_name="Link", empty_values=(), orderable=False)
    identity = tables.TemplateColumn(
        '{% include "enrollment/_identity.html" with enrollment=record %}',
        verbose_name="Identity",
        orderable=False,
    )
    uses = tables.Column(verbose_name="Uses", attrs=NUM)
    expires_at = tables.DateTimeColumn(verbose_name="Expires", format="Y-m-d H:i", default="never")
    state = tables.Column(verbose_name="State", empty_values=(), orderable=False)
    device_count = tables.Column(verbose_name="Devices enrolled", attrs=NUM)
    group = tables.Column(verbose_name="Group", default="—", order_by=("group__name",))
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d")

    class Meta:
        model = Enrollment
        fields = (
            "name",
            "link",
            "identity",
            "uses",
            "expires_at",
            "state",
            "device_count",
            "group",
        )
        order_by = "-created_at"
        empty_text = "No enrollment yet."

    def render_link(self, record):
        return format_html('<code class="link">{}</code>', enrollment_link(record))

    def render_uses(self, record):
        return f"{record.uses} / {record.max_uses}" if record.max_uses else f"{record.uses} / —"

    def render_state(self, record):
        reason = unavailable_reason(record, timezone.now())
        return state_badge(STATE_BADGES[reason], STATE_WORDS[reason])


class DeviceTable(tables.Table):
    """Devices, each linked to its page: the members of a group, where a profile is."""

    name = tables.Column(
        verbose_name="Device",
        accessor="device_name",
        order_by=("device_name", "udid"),
        empty_values=(),
    )
    serial_number = tables.Column(verbose_name="Serial")
    model_name = tables.Column(verbose_name="Model", default="—")
    os_version = tables.Column(verbose_name="OS", default="—")
    state = tables.Column(verbose_name="State")
    last_seen_at = tables.DateTimeColumn(
        verbose_name="Last seen", format="Y-m-d H:i", default="never"
    )

    class Meta:
        model = Device
        fields = ("name", "serial_number", "model_name", "os_version", "state", "last_seen_at")
        order_by = "name"
        empty_text = "No device."

    def render_name(self, record):
        return device_link(record)

    def order_name(self, queryset, is_descending):
        return by_name(queryset, "device_name", is_descending), True

    def render_state(self, record):
        return state_badge(record.state, record.state.replace("_", " "))

    def render_os_version(self, record):
        return f"{record.platform} {record.os_version}".strip()


class MemberTable(DeviceTable):
    """A group's members, with a checkbox each to remove several at once."""

    select = tables.Column(verbose_name="Select", accessor="udid", orderable=False)

    class Meta(DeviceTable.Meta):
        sequence = ("select", "...")

    def render_select(self, value, record):
        return format_html(
            '<input type="checkbox" name="device" value="{}" form="remove-selected" '
            'aria-label="Select {}">',
            value,
            record.device_name or record.udid,
        )


class EnrolledDeviceTable(tables.Table):
    """The devices an enrollment enrolled (their latest enrollment)."""

    device = tables.Column(verbose_name="Device", order_by=("device__device_name", "device__udid"))
    serial = tables.Column(verbose_name="Serial", accessor="device__serial_number")
    model = tables.Column(verbose_name="Model", accessor="device__model_name", default="—")
    state = tables.Column(verbose_name="State", accessor="device__state")
    since = tables.DateTimeColumn(verbose_name="Enrolled since", format="Y-m-d H:i")

    class Meta:
        model = DeviceEnrollment
        fields = ("device", "serial", "model", "state", "since")
        order_by = "-since"
        empty_text = "No device has enrolled with it yet."

    def render_device(self, record):
        return device_link(record.device)

    def order_device(self, queryset, is_descending):
        return by_name(queryset, "device__device_name", is_descending), True

    def render_state(self, record):
        return state_badge(record.device.state, record.device.state.replace("_", " "))


class GroupTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("group-detail", args=[record.pk]))
    description = tables.Column(default="—", orderable=False)
    device_count = tables.Column(verbose_name="Devices", attrs=NUM)
    profile_count = tables.Column(verbose_name="Profiles", attrs=NUM)
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d")

    class Meta:
        model = DeviceGroup
        fields = ("name", "description", "device_count", "profile_count", "created_at")
        order_by = "name"
        empty_text = "No group yet."
