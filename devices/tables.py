"""The device list as a django-tables2 table: what each column shows and how it sorts.

Every sort ends with the primary key so that pages never overlap or skip a device, and each
sort has an index (migration 0010) so a page is a short index scan at any fleet size.
"""

import django_tables2 as tables
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django_tables2.data import TableQuerysetData

from mdm_portal.templatetags.readable import ago

from .models import Device

# The columns a page needs: never the secrets (UnlockToken, bootstrap token) or push details.
LIST_FIELDS = (
    "id",
    "udid",
    "device_name",
    "serial_number",
    "model",
    "model_name",
    "product_name",
    "platform",
    "os_version",
    "build_version",
    "state",
    "lost_mode",
    "inactive_since",
    "token_invalid_at",
    "last_seen_at",
    "group__id",
    "group__name",
)
STATE_LABELS = {
    Device.State.ENROLLED: "enrolled",
    Device.State.PENDING: "pending",
    Device.State.CHECKED_OUT: "checked out",
}


def state_badges(device: Device) -> str:
    """The state badge, then what else a person must notice (inactive, token invalid, lost)."""
    badges = [
        format_html(
            '<span class="badge {}">{}</span>',
            device.state,
            STATE_LABELS.get(device.state, device.state),
        )
    ]
    if device.inactive_since is not None:
        badges.append(mark_safe('<span class="badge inactive">inactive</span>'))
    if device.token_invalid_at is not None:
        badges.append(mark_safe('<span class="badge token_invalid">token invalid</span>'))
    if device.lost_mode:
        badges.append(mark_safe('<span class="badge warning">lost mode</span>'))
    return format_html(" ".join(["{}"] * len(badges)), *badges)


class KeysFirstData(TableQuerysetData):
    """Table data that reads a deep page in two steps: the page's primary keys first, from the
    sort's index alone (each sort index ends with the key), then only those rows.

    With OFFSET the database would otherwise fetch every skipped row in full: page 1,000 of a
    100,000-device list read 50,000 rows to show 50. The first page keeps the single query.
    """

    def __getitem__(self, key):
        if not isinstance(key, slice) or not key.start:
            return super().__getitem__(key)
        ids = list(self.data.values_list("pk", flat=True)[key])
        rows = {row.pk: row for row in self.data.filter(pk__in=ids).order_by()}
        return [rows[pk] for pk in ids if pk in rows]


class DeviceTable(tables.Table):
    select = tables.Column(
        accessor="udid",
        verbose_name="Select",
        orderable=False,
        attrs={"th": {"class": "select"}, "td": {"class": "select"}},
    )
    device_name = tables.Column(
        verbose_name="Name", order_by=("device_name", "id"), empty_values=()
    )
    serial_number = tables.Column(verbose_name="Serial", order_by=("serial_number", "id"))
    model = tables.Column(
        verbose_name="Model",
        accessor="model_name",
        order_by=("model_name", "product_name", "id"),
        empty_values=(),
    )
    os = tables.Column(
        verbose_name="OS", accessor="os_version", order_by=("platform", "os_version", "id")
    )
    state = tables.Column(verbose_name="State", order_by=("state", "id"))
    group = tables.Column(
        verbose_name="Group", accessor="group__name", order_by=("group__name", "id")
    )
    last_seen_at = tables.Column(
        verbose_name="Last seen",
        order_by=("last_seen_at", "id"),
        attrs={"td": {"class": "nowrap"}},
        empty_values=(),
    )

    class Meta:
        model = Device
        fields = ()
        sequence = (
            "select",
            "device_name",
            "serial_number",
            "model",
            "os",
            "state",
            "group",
            "last_seen_at",
        )
        order_by = ("device_name",)
        empty_text = "No device matches these filters."
        attrs = {"class": "devices"}
        template_name = "devices/table.html"

    def __init__(self, *args, selectable: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not selectable:
            self.columns.hide("select")

    def render_select(self, value, record):
        return format_html(
            '<input type="checkbox" name="device" value="{}" form="device-actions" '
            'aria-label="Select {}">',
            value,
            record.device_name or value,
        )

    def render_device_name(self, value, record):
        return format_html(
            '<a href="/devices/{}/">{}</a><span class="udid mono muted small">{}</span>',
            record.udid,
            value or "(no name yet)",
            record.udid,
        )

    def render_model(self, value, record):
        name = record.model_name or record.model
        if record.product_name and record.product_name != name:
            return format_html('{} <span class="muted small">{}</span>', name, record.product_name)
        return name or "—"

    def render_os(self, value, record):
        build = (
            format_html(' <span class="muted small">({})</span>', record.build_version)
            if record.build_version
            else ""
        )
        return format_html("{} {}{}", record.platform, value, build)

    def render_state(self, value, record):
        return state_badges(record)

    def render_group(self, value, record):
        return format_html('<a href="/devices/?group={}">{}</a>', record.group.id, value)

    def render_last_seen_at(self, value, record):
        return ago(value)
