"""Devices in the admin: read only; UnlockToken and the bootstrap token are never shown.

A device's state changes through the protocol (check-in, command results) and the management
commands: lost mode only by EnableLostMode / DisableLostMode being acknowledged; a group
decides which library profiles its devices get, so a group edited by hand would queue none.
"""

from django.contrib import admin

from mdm_portal.admin import ReadOnlyAdmin

from .models import CertificateBinding, Device, DeviceGroup


@admin.register(DeviceGroup)
class DeviceGroupAdmin(ReadOnlyAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ("udid", "device_name", "serial_number", "state", "os_version", "last_seen_at")
    list_filter = ("state", "platform", "lost_mode", "group", "model_name")
    search_fields = ("udid", "serial_number", "device_name")
    exclude = ("unlock_token", "bootstrap_token")


@admin.register(CertificateBinding)
class CertificateBindingAdmin(ReadOnlyAdmin):
    """Which identity certificate identifies which device (bound on Authenticate)."""

    list_display = ("device", "certificate", "bound_at")
    list_select_related = ("device", "certificate")
    search_fields = ("device__udid", "certificate__serial", "certificate__sha256")
