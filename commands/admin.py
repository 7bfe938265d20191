"""The command queue in the admin: read only.

Commands are queued through commands.queue (the catalog's checks, AccessRights, the audit log)
and answered by devices; the queue is archived and pruned by its retention tasks.
"""

from django.contrib import admin

from mdm_portal.admin import ReadOnlyAdmin

from .models import ArchivedCommand, Command, PushAttempt, QueuedCommand


@admin.register(Command)
class CommandAdmin(ReadOnlyAdmin):
    list_display = ("uuid", "request_type", "queued_by", "device_count", "raw", "created_at")
    list_filter = ("request_type", "raw")
    search_fields = ("uuid", "request_type", "queued_by")
    # The Command dictionary may carry secrets: an EraseDevice or DeviceLock PIN, a profile.
    exclude = ("payload",)


class QueueRowAdmin(ReadOnlyAdmin):
    list_filter = ("status", "request_type")
    search_fields = ("command__uuid", "device__udid")
    list_select_related = ("command", "device")


@admin.register(QueuedCommand)
class QueuedCommandAdmin(QueueRowAdmin):
    list_display = ("command", "device", "status", "sent_at", "answered_at")
    # The device's answer may carry secrets (an ActivationLockBypassCode, for one).
    exclude = ("result",)


@admin.register(ArchivedCommand)
class ArchivedCommandAdmin(QueueRowAdmin):
    list_display = ("command", "device", "status", "answered_at", "archived_at")


@admin.register(PushAttempt)
class PushAttemptAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "device", "kind", "status", "reason")
    list_filter = ("kind", "status")
    search_fields = ("device__udid", "apns_id", "reason")
    list_select_related = ("device",)
