from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log is append-only: it can be read and filtered, never edited."""

    list_display = ("created_at", "actor", "action", "target")
    list_filter = ("action",)
    search_fields = ("actor", "target", "action")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
