"""The staff UI's own pages: the dashboard and the audit log (the other pages live in their
apps' ui.py). Views are thin: they gather what the apps' functions return and render it."""

import django_filters
import django_tables2 as tables
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.shortcuts import render

from certs.expiry import certificate_inventory, warning_days
from certs.pushcert_demo import demo_push_certificate_active
from commands.stats import failed_pushes, queue_counts
from declarations.models import Declaration
from declarations.states import failing_summary
from devices.activity import daily_checkins, os_version_counts
from devices.identities import identities_due_for_renewal
from devices.sweeps import device_counts
from enrollment.dep_listing import dep_summary

from .audit import audit, client_address
from .charts import bar_chart, hbar_chart
from .listing import CreatedBetween, paginate
from .models import Alert, AuditEntry
from .roles import VIEWER, role_required


@role_required(VIEWER)
def dashboard(request):
    counts = device_counts()
    checkins = daily_checkins(30)
    # Per-device identities are counted in one query, not listed: 100,000 rows are no banner.
    certificates = certificate_inventory(per_device=False)
    identities_due = identities_due_for_renewal(max(warning_days())).count()
    push_failures, latest_failures = failed_pushes()
    context = {
        "title": "Dashboard",
        "counts": counts,
        "queue": queue_counts(),
        "push_failures": push_failures,
        "latest_push_failures": latest_failures,
        "expiring": [e for e in certificates if e["severity"] != "ok"],
        "identities_due": identities_due,
        "demo_push_certificate": demo_push_certificate_active(),
        "alerts": Alert.objects.filter(resolved_at__isnull=True).order_by("-created_at")[:10],
        "checkins_chart": bar_chart(
            [(day.strftime("%d %b"), n) for day, n in checkins],
            title="Devices that checked in, per day (last 30 days)",
            label_every=5,
        ),
        "os_chart": hbar_chart(os_version_counts(), title="Managed devices by OS version"),
        "dep": dep_summary(),
        "declarations": {"total": Declaration.objects.count(), **failing_summary()},
    }
    return render(request, "mdm_portal/dashboard.html", context)


# --- the audit log ------------------------------------------------------------------------------


class AuditFilter(CreatedBetween):
    actor = django_filters.CharFilter(label="Person or actor", lookup_expr="icontains")
    action = django_filters.CharFilter(label="Action", lookup_expr="istartswith")
    target = django_filters.CharFilter(label="Target", lookup_expr="icontains")

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "target", "since", "until"]


class AuditTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="When", format="Y-m-d H:i:s")
    details = tables.Column(verbose_name="Details", orderable=False)

    class Meta:
        model = AuditEntry
        fields = ("created_at", "actor", "action", "target", "address", "details")
        order_by = "-created_at"

    def render_details(self, value):
        return ", ".join(f"{key}={item}" for key, item in sorted(value.items())) or "—"


@role_required(VIEWER)
def audit_log(request):
    entries = AuditFilter(request.GET, queryset=AuditEntry.objects.all())
    table = AuditTable(entries.qs)
    paginate(table, request)
    return render(
        request,
        "mdm_portal/audit.html",
        {"title": "Audit log", "filter": entries, "table": table},
    )


# --- logins are audited, with the address they came from ----------------------------------------


@receiver(user_logged_in, dispatch_uid="mdm_portal.audit-login")
def _logged_in(sender, request, user, **kwargs):
    audit("user.logged_in", actor=user, target=user.get_username(), address=client_address(request))


@receiver(user_logged_out, dispatch_uid="mdm_portal.audit-logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit(
            "user.logged_out",
            actor=user,
            target=user.get_username(),
            address=client_address(request),
        )


@receiver(user_login_failed, dispatch_uid="mdm_portal.audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # The username tried, never the password.
    audit(
        "user.login_failed",
        actor="anonymous",
        target=str(credentials.get("username", ""))[:150],
        address=client_address(request) if request is not None else None,
    )
