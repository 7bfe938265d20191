"""The Certificates page's tables (django-tables2): every certificate's expiry, device
identities close to expiry, recently decided SCEP requests. Cells show dates, serials and
subjects only: no key, no challenge."""

import django_tables2 as tables
from django.utils.html import format_html

from .expiry import expiry_entry, kind_label

NUMBER = {"th": {"class": "num"}, "td": {"class": "num nowrap"}}
NOWRAP = {"td": {"class": "nowrap"}}


def days_badge(days_left: int | None, severity: str):
    if days_left is None:
        return format_html('<span class="badge {}">unknown</span>', severity)
    if days_left < 0:
        return format_html('<span class="badge expired">expired</span>')
    return format_html('<span class="badge {}">{}</span>', severity, days_left)


class InventoryTable(tables.Table):
    """certs.expiry's entries (the portal's own certificates), soonest expiry first."""

    kind = tables.Column(verbose_name="Kind", orderable=False, attrs=NOWRAP)
    name = tables.Column(verbose_name="Certificate", orderable=False)
    not_after = tables.DateTimeColumn(
        verbose_name="Not after", format="Y-m-d", orderable=False, default="—", attrs=NOWRAP
    )
    days_left = tables.Column(verbose_name="Days left", orderable=False, attrs=NUMBER, default="—")
    severity = tables.TemplateColumn(
        '<span class="badge {{ value }}">{{ value }}</span>'
        "{% if record.error %} <span class='small'>{{ record.error }}</span>{% endif %}",
        verbose_name="Status",
        orderable=False,
    )

    class Meta:
        attrs = {"aria-label": "Certificates the portal depends on"}
        empty_text = "No certificate yet: run mdm_init, then import a push certificate."

    def render_kind(self, value):
        return kind_label(value)

    def render_name(self, value, record):
        if not record.get("subject"):
            return format_html("<code>{}</code>", value)
        return format_html(
            '<code>{}</code><br><span class="small muted subject">{}</span>',
            value,
            record["subject"],
        )


class IdentityTable(tables.Table):
    """Current identities of enrolled devices that expire within the warning period."""

    device = tables.Column(
        verbose_name="Device",
        accessor="device",
        order_by=("device__device_name", "device__udid"),
        attrs={"td": {"class": "device"}},
    )
    serial = tables.Column(verbose_name="Serial", accessor="device__serial_number", default="—")
    certificate = tables.Column(
        verbose_name="Certificate serial",
        accessor="certificate__serial",
        orderable=False,
        attrs={"th": {"class": "wide-only"}, "td": {"class": "wide-only"}},
    )
    not_after = tables.DateTimeColumn(
        verbose_name="Not after", accessor="certificate__not_after", format="Y-m-d H:i"
    )
    days_left = tables.Column(
        verbose_name="Days left",
        accessor="certificate__not_after",
        orderable=False,
        attrs=NUMBER,
        empty_values=(),
    )
    renewal = tables.Column(verbose_name="Renewal", empty_values=(), orderable=False)

    class Meta:
        attrs = {"aria-label": "Device identities close to expiry"}
        empty_text = "No device identity expires within the warning period."
        order_by = "not_after"

    def __init__(self, *args, now, thresholds, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now
        self.thresholds = thresholds
        self.renewing: set[int] = set()  # device pks with a renewal queued (this page's)

    def render_device(self, value):
        return format_html(
            '<a href="/devices/{}/">{}</a><br><code class="small muted">{}</code>',
            value.udid,
            value,
            value.udid,
        )

    def render_serial(self, value):
        return format_html("<code>{}</code>", value)

    def render_certificate(self, value):
        return format_html('<code class="small">{}</code>', value)

    def render_days_left(self, value):
        entry = expiry_entry("device-identity", "", "", value, self.now, self.thresholds)
        return days_badge(entry["days_left"], entry["severity"])

    def render_renewal(self, record):
        if record.device_id in self.renewing:
            return format_html('<span class="badge {}">{}</span>', "queued", "queued")
        return format_html('<span class="badge {}">{}</span>', "none", "not queued")


class DecidedTable(tables.Table):
    subject = tables.Column(verbose_name="Subject", orderable=False)
    transaction_id = tables.Column(verbose_name="Transaction ID", orderable=False)
    status = tables.TemplateColumn(
        '<span class="badge {{ record.status }}">{{ record.status }}</span>'
        '<br><span class="small muted">{{ record.message_type }}</span>',
        verbose_name="Decision",
        orderable=False,
    )
    decided_by = tables.Column(verbose_name="By", orderable=False, default="—")
    decided_at = tables.DateTimeColumn(
        verbose_name="When", format="Y-m-d H:i", orderable=False, attrs=NOWRAP
    )

    class Meta:
        attrs = {"aria-label": "Recently decided SCEP requests"}
        empty_text = "No SCEP request decided yet."

    def render_transaction_id(self, value):
        return format_html("<code>{}</code>", value)

    def render_decided_by(self, value):
        return "automatic (no manual approval)" if value == "scep" else value
