from django.contrib import admin

from .models import Command, QueuedCommand


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ("uuid", "request_type", "queued_by", "device_count", "created_at")
    list_filter = ("request_type",)
    search_fields = ("uuid",)

    def has_change_permission(self, request, obj=None):
        return False  # commands are queued through commands.queue only


@admin.register(QueuedCommand)
class QueuedCommandAdmin(admin.ModelAdmin):
    list_display = ("command", "device", "status", "sent_at", "answered_at")
    list_filter = ("status", "request_type")
    search_fields = ("command__uuid", "device__udid")
    list_select_related = ("command", "device")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
