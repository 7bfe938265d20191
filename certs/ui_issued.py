"""/certificates/issued/: every device identity our CA issued, newest first, with how it
reached the device (ACME, SCEP, PKCS#12; blank for certificates issued before that was
recorded) and, for an attested ACME identity, the serial number and UDID the device's hardware
vouched for, which its Authenticate must then carry.

Filters (certs.issued, as the API's): the delivery, and a search on the certificate's serial,
its subject or the attested values. Pages are read without counting the table
(mdm_portal.listing.paginate). Every role reads; nothing here changes anything.
"""

import django_tables2 as tables
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET

from mdm_portal.listing import paginate
from mdm_portal.roles import VIEWER, role_required

from .issued import DELIVERIES, IssuedFilter, issued_certificates
from .models import IssuedCertificate

NOWRAP = {"td": {"class": "nowrap"}}
WIDE_ONLY = {"th": {"class": "wide-only"}, "td": {"class": "nowrap wide-only"}}  # not on tablets


def delivery_badge(delivery: str):
    if not delivery:
        return format_html('<span class="muted">{}</span>', "not recorded")
    return format_html(
        '<span class="badge delivery {}">{}</span>', delivery, DELIVERIES.get(delivery, delivery)
    )


class IssuedTable(tables.Table):
    certificate = tables.Column(
        verbose_name="Certificate", accessor="serial", empty_values=(), orderable=False
    )
    device = tables.Column(verbose_name="Device", empty_values=(), orderable=False)
    delivery = tables.Column(verbose_name="Delivery", empty_values=(), orderable=False)
    attested = tables.Column(
        verbose_name="Attested serial and UDID", empty_values=(), orderable=False
    )
    created_at = tables.DateTimeColumn(verbose_name="Issued", format="Y-m-d H:i", attrs=WIDE_ONLY)
    not_after = tables.DateTimeColumn(verbose_name="Not after", format="Y-m-d", attrs=NOWRAP)
    status = tables.Column(verbose_name="Status", empty_values=(), orderable=False)

    class Meta:
        attrs = {"aria-label": "Issued device identities"}
        empty_text = "No device identity matches."
        order_by = "-created_at"

    def __init__(self, *args, now, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now

    def render_certificate(self, record):
        return format_html(
            '<code class="small">{}</code><br><span class="small muted subject">{}</span>',
            record.serial,
            record.subject,
        )

    def render_device(self, record):
        device = bound_device(record)
        if device is None:
            return format_html('<span class="muted">{}</span>', "not bound")
        return format_html(
            '<a href="/devices/{}/">{}</a><br><code class="small muted">{}</code>',
            device.udid,
            device.device_name or device.udid,
            device.udid,
        )

    def render_delivery(self, record):
        return delivery_badge(record.delivery)

    def render_attested(self, record):
        if not (record.attested_serial or record.attested_udid):
            return "—"
        return format_html(
            '<dl class="attested small"><dt>Serial</dt><dd><code>{}</code></dd>'
            "<dt>UDID</dt><dd><code>{}</code></dd></dl>",
            record.attested_serial or "—",
            record.attested_udid or "—",
        )

    def render_status(self, record):
        if record.revoked_at is not None:
            return format_html('<span class="badge {}">{}</span>', "rejected", "revoked")
        if record.not_after <= self.now:
            return format_html('<span class="badge {}">{}</span>', "expired", "expired")
        return format_html('<span class="badge {}">{}</span>', "ok", "valid")


def bound_device(record: IssuedCertificate):
    """The device the certificate is bound to (read with the row), or None."""
    try:
        return record.binding.device
    except IssuedCertificate.binding.RelatedObjectDoesNotExist:
        return None


@require_GET
@role_required(VIEWER)
def issued(request):
    # The bound device (devices.CertificateBinding) joined in the same statement.
    rows = issued_certificates().select_related("binding__device")
    found = IssuedFilter(request.GET, queryset=rows)
    table = IssuedTable(found.qs, now=timezone.now())
    paginate(table, request)
    return render(
        request,
        "certs/issued.html",
        {"title": "Issued device identities", "filter": found, "table": table},
    )
