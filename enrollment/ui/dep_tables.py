"""The tables of the Automated Device Enrollment pages (django-tables2): DEP servers, DEP
devices (with the managed device of the same serial) and DEP profiles. Cells show names,
dates and Apple's statuses only: never a token, a secret or a key."""

import django_tables2 as tables
from django.db.models import F, QuerySet
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..dep_listing import PROFILE_STATUSES, token_expiry
from ..dep_models import DepDevice, DepProfile, DepServer
from .tables import NUM, state_badge

NOWRAP = {"td": {"class": "nowrap"}}
# Apple's per-serial answers to an assignment (and to a disown), as badges.
RESULT_BADGES = {"SUCCESS": "ok", "NOT_ACCESSIBLE": "warning", "FAILED": "error"}
STATUS_BADGES = {"assigned": "pending", "pushed": "ok", "removed": "none", "empty": "none"}


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


def result_badge(result: str) -> str:
    if not result:
        return "—"
    return state_badge(RESULT_BADGES.get(result, "error"), result.replace("_", " ").lower())


def token_badge(server: DepServer, now=None) -> str:
    """The token's expiry as a badge: none yet, days left (graded), or expired."""
    entry = token_expiry(server, now)
    if entry is None:
        return state_badge("none", "no token yet")
    if entry["severity"] == "expired":
        return state_badge("expired", f"expired {entry['not_after']:%Y-%m-%d}")
    words = f"{entry['not_after']:%Y-%m-%d} · {entry['days_left']} day(s) left"
    return state_badge(entry["severity"], words)


def sync_badge(server: DepServer) -> str:
    """How the last sync went: never, ok, or failed (with its message beside it)."""
    if server.last_sync_at is None:
        return state_badge("none", "never synced")
    when = _when(server.last_sync_at)
    badge = state_badge("ok", "ok") if server.last_sync_ok else state_badge("error", "failed")
    return format_html(
        '{} <span class="small">{}</span><br><span class="small muted syncmessage">{}</span>',
        badge,
        when,
        server.last_sync_result or "",
    )


def order_nulls_last(queryset: QuerySet, field: str, descending: bool) -> tuple[QuerySet, bool]:
    key = F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
    return queryset.order_by(key, "pk"), True


class ServerTable(tables.Table):
    name = tables.Column(
        linkify=lambda record: reverse("dep-server", args=[record.pk]), attrs=NOWRAP
    )
    # empty_values=(): a server with no token or no sync yet says so, rather than "—".
    organisation = tables.Column(
        verbose_name="Organisation",
        accessor="org_name",
        order_by=("org_name", "name"),
        empty_values=(),
    )
    token = tables.Column(
        verbose_name="Token expiry",
        accessor="access_token_expiry",
        attrs=NOWRAP,
        empty_values=(),
    )
    token_imported_at = tables.DateTimeColumn(
        verbose_name="Token imported", format="Y-m-d H:i", default="—", attrs=NOWRAP
    )
    last_sync = tables.Column(verbose_name="Last sync", accessor="last_sync_at", empty_values=())
    device_count = tables.Column(verbose_name="Devices", attrs=NUM)
    unassigned_count = tables.Column(verbose_name="Unassigned", attrs=NUM)
    auto_assign_profile = tables.Column(
        verbose_name="Auto-assign", default="—", order_by=("auto_assign_profile__name",)
    )

    class Meta:
        model = DepServer
        fields = (
            "name",
            "organisation",
            "token",
            "token_imported_at",
            "last_sync",
            "device_count",
            "unassigned_count",
            "auto_assign_profile",
        )
        order_by = "name"
        attrs = {"aria-label": "DEP servers"}
        empty_text = "No DEP server yet: add one, then upload its token from Apple."

    def render_organisation(self, record):
        if not (record.org_name or record.server_name):
            return format_html('<span class="muted">{}</span>', "known once a token works")
        return format_html(
            '{}<br><span class="small muted">{}</span>',
            record.org_name or "—",
            f"server “{record.server_name}” in ABM" if record.server_name else "",
        )

    def render_token(self, record):
        return token_badge(record)

    def order_token(self, queryset, is_descending):
        return order_nulls_last(queryset, "access_token_expiry", is_descending)

    def render_last_sync(self, record):
        return sync_badge(record)

    def order_last_sync(self, queryset, is_descending):
        return order_nulls_last(queryset, "last_sync_at", is_descending)

    def render_unassigned_count(self, value):
        return state_badge("warning", str(value)) if value else "0"


class DepDeviceTable(tables.Table):
    """DEP devices as Apple lists them, with the portal's assignment and, when a device of
    the portal has the serial, a link to it. `selectable` adds a checkbox to each row."""

    select = tables.Column(
        verbose_name="Select", accessor="serial_number", orderable=False, empty_values=()
    )
    serial_number = tables.Column(verbose_name="Serial", attrs={"td": {"class": "mono nowrap"}})
    model = tables.Column(verbose_name="Model", default="—")
    description = tables.Column(verbose_name="Description", default="—")
    os = tables.Column(verbose_name="OS", default="—")
    server = tables.Column(
        verbose_name="Server", order_by=("server__name", "serial_number"), attrs=NOWRAP
    )
    profile_status = tables.Column(verbose_name="Profile status", empty_values=())
    assigned_profile = tables.Column(
        verbose_name="Assigned profile",
        default="—",
        order_by=("assigned_profile__name", "serial_number"),
    )
    assign_result = tables.Column(verbose_name="Assign result", empty_values=(), attrs=NOWRAP)
    # When the portal first saw it, and below when a sync or an assignment last changed it.
    added_at = tables.Column(verbose_name="Added · updated", attrs=NOWRAP)
    enrolled = tables.Column(verbose_name="Enrolled", empty_values=(), attrs=NOWRAP)

    class Meta:
        model = DepDevice
        fields = (
            "select",
            "serial_number",
            "model",
            "description",
            "os",
            "server",
            "profile_status",
            "assigned_profile",
            "assign_result",
            "added_at",
            "enrolled",
        )
        order_by = "-added_at"
        attrs = {"aria-label": "DEP devices"}
        row_attrs = {"class": lambda record: "removed" if record.removed else ""}
        empty_text = "No DEP device matches. Devices appear when a sync finds them in ABM."
        template_name = "devices/table.html"  # its header checkbox selects the page

    def __init__(self, *args, selectable: bool = False, show_server: bool = True, **kwargs):
        exclude = [*kwargs.pop("exclude", ())]
        if not selectable:
            exclude.append("select")
        if not show_server:
            exclude.append("server")
        super().__init__(*args, exclude=exclude, **kwargs)

    def render_select(self, value):
        return format_html(
            '<input type="checkbox" name="device" value="{}" form="device-actions" '
            'aria-label="Select {}">',
            value,
            value,
        )

    def render_serial_number(self, value, record):
        if record.removed:
            return format_html(
                '{} <span class="badge none" title="{}">removed</span>',
                value,
                "Removed from this server in ABM (a sync reported it deleted)",
            )
        return value

    def render_server(self, value):
        return format_html('<a href="{}">{}</a>', reverse("dep-server", args=[value.pk]), value)

    def render_added_at(self, value, record):
        return format_html(
            '{}<br><span class="small muted">{}</span>', _when(value), _when(record.updated_at)
        )

    def render_profile_status(self, value):
        status = value or "empty"
        return state_badge(STATUS_BADGES.get(status, "none"), PROFILE_STATUSES.get(status, status))

    def order_profile_status(self, queryset, is_descending):
        key = Lower("profile_status")
        return queryset.order_by(key.desc() if is_descending else key.asc(), "serial_number"), True

    def render_assigned_profile(self, value):
        return format_html(
            '<a href="{}">{}</a>', reverse("dep-profile", args=[value.pk]), value.name
        )

    def render_assign_result(self, value, record):
        if not value:
            return "—"
        return format_html(
            '{}<br><span class="small muted">{}</span>',
            result_badge(value),
            _when(record.assign_result_at),
        )

    def render_enrolled(self, record):
        if not record.device_udid:
            return state_badge("none", "not enrolled")
        words = "enrolled" if record.enrolled else (record.device_state or "").replace("_", " ")
        return format_html(
            '<a href="/devices/{}/">{}</a>',
            record.device_udid,
            state_badge("enrolled" if record.enrolled else "none", words),
        )

    def order_enrolled(self, queryset, is_descending):
        key = F("enrolled").desc() if is_descending else F("enrolled").asc()
        return queryset.order_by(key, "serial_number"), True


class DepProfileTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("dep-profile", args=[record.pk]))
    server = tables.Column(verbose_name="Server", order_by=("server__name", "name"))
    enrollment = tables.Column(verbose_name="Enrollment", order_by=("enrollment__name", "name"))
    supervised = tables.Column(
        verbose_name="Supervised", accessor="settings__is_supervised", orderable=False
    )
    removable = tables.Column(
        verbose_name="MDM removable", accessor="settings__is_mdm_removable", orderable=False
    )
    await_configured = tables.Column(
        verbose_name="Await configured",
        accessor="settings__await_device_configured",
        orderable=False,
    )
    device_count = tables.Column(verbose_name="Devices", attrs=NUM)
    auto_assign = tables.Column(verbose_name="Auto-assign", empty_values=(), orderable=False)
    defined_at = tables.DateTimeColumn(
        verbose_name="Defined with Apple", format="Y-m-d H:i", default="not yet"
    )
    updated_at = tables.DateTimeColumn(verbose_name="Updated", format="Y-m-d H:i")

    class Meta:
        model = DepProfile
        fields = (
            "name",
            "server",
            "enrollment",
            "supervised",
            "removable",
            "await_configured",
            "device_count",
            "auto_assign",
            "defined_at",
            "updated_at",
        )
        order_by = "name"
        attrs = {"aria-label": "DEP profiles"}
        empty_text = "No DEP profile yet."

    def render_server(self, value):
        return format_html('<a href="{}">{}</a>', reverse("dep-server", args=[value.pk]), value)

    def render_enrollment(self, value):
        return format_html(
            '<a href="{}">{}</a>', reverse("enrollment-detail", args=[value.pk]), value.name
        )

    def render_supervised(self, value):
        return "yes" if value else "no"

    def render_removable(self, value):
        return "yes" if value else "no"

    def render_await_configured(self, value):
        return "yes" if value else "no"

    def render_auto_assign(self, record):
        if record.server.auto_assign_profile_id == record.pk:
            return state_badge("ok", "new devices")
        return "—"


class ResultTable(tables.Table):
    """Apple's answer for each serial of an assignment or a disown."""

    serial = tables.Column(verbose_name="Serial", attrs={"td": {"class": "mono"}})
    result = tables.Column(verbose_name="Result")

    class Meta:
        attrs = {"aria-label": "Result per device"}
        orderable = False
        empty_text = "No device."

    def render_result(self, value):
        return result_badge(value)
