"""The admin: a read-only window on protocol state.

Devices, commands, certificates, enrollments, alerts and the audit log change only through the
code that keeps the protocol's rules - commands.queue and the catalog, the protocol handlers,
the management commands (and the web UI to come) - which validate and audit what they do. A
form here would go around them, so every such model is registered with ReadOnlyAdmin. What
stays editable here: Django's users and groups, and celery beat's schedule.
"""

from django.contrib import admin
from django_celery_results.admin import GroupResultAdmin, TaskResultAdmin
from django_celery_results.models import GroupResult, TaskResult

from .encryption import EncryptedBinaryField
from .models import Alert, AuditEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and shows a model; never adds, changes or deletes it, and has no actions.

    A POST to the add, change or delete view is refused (403). The change page shows every
    field as text, except the ones in `exclude` (secrets, and payloads that may carry them)
    and any encrypted field, which holds a secret by definition.
    """

    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        hidden = set(self.exclude or ())
        return [
            field.name
            for field in self.opts.fields
            if not field.auto_created
            and field.name not in hidden
            and not isinstance(field, EncryptedBinaryField)
        ]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit log is append-only: it can be read and filtered, never edited."""

    list_display = ("created_at", "actor", "action", "target")
    list_filter = ("action",)
    search_fields = ("actor", "target", "action")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Alerts are raised and resolved by the code that sees the problem (APNs, expiry)."""

    list_display = ("created_at", "severity", "key", "message", "resolved_at")
    list_filter = ("severity", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("key", "message")


# Celery's task results are written by the workers: shown as django_celery_results shows
# them, never added, edited or deleted by hand.
class ReadOnlyTaskResultAdmin(ReadOnlyAdmin, TaskResultAdmin):
    pass


class ReadOnlyGroupResultAdmin(ReadOnlyAdmin, GroupResultAdmin):
    pass


admin.site.unregister([TaskResult, GroupResult])
admin.site.register(TaskResult, ReadOnlyTaskResultAdmin)
admin.site.register(GroupResult, ReadOnlyGroupResultAdmin)
