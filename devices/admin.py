from django.contrib import admin

from .models import Device, DeviceGroup


@admin.register(DeviceGroup)
class DeviceGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    # Tokens (UnlockToken, bootstrap token) are not editable fields: they never show here.
    list_display = ("udid", "device_name", "serial_number", "state", "os_version", "last_seen_at")
    list_filter = ("state", "group", "model_name")
    search_fields = ("udid", "serial_number", "device_name")
    readonly_fields = (
        "udid",
        "state",
        "topic",
        "push_token",
        "push_magic",
        "enrollment_count",
        "authenticated_at",
        "enrolled_at",
        "token_updated_at",
        "checked_out_at",
        "last_seen_at",
    )
