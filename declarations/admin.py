"""Declarations in the admin: read only. They change through mdm_declaration, the pages and
the API, which validate them, audit, and tell the devices concerned; an edit here would tell
no device. A served asset's data (encrypted at rest) is never shown."""

from django.contrib import admin

from mdm_portal.admin import ReadOnlyAdmin

from .models import (
    Declaration,
    DeclarationRevision,
    DeclarationSet,
    DeclarationState,
    DeviceDeclarations,
    ServedAsset,
)


@admin.register(Declaration)
class DeclarationAdmin(ReadOnlyAdmin):
    list_display = ("identifier", "kind", "type", "server_token", "updated_by", "updated_at")
    list_filter = ("kind",)
    search_fields = ("identifier", "type")


@admin.register(DeclarationRevision)
class DeclarationRevisionAdmin(ReadOnlyAdmin):
    list_display = ("identifier", "kind", "server_token", "created_at")
    search_fields = ("identifier", "server_token")


@admin.register(ServedAsset)
class ServedAssetAdmin(ReadOnlyAdmin):
    list_display = ("declaration", "source", "content_type", "size", "downloads")
    list_filter = ("source",)
    search_fields = ("declaration__identifier", "sha256")
    exclude = ("content",)


@admin.register(DeclarationSet)
class DeclarationSetAdmin(ReadOnlyAdmin):
    list_display = ("name", "created_by", "created_at")
    search_fields = ("name",)


@admin.register(DeviceDeclarations)
class DeviceDeclarationsAdmin(ReadOnlyAdmin):
    list_display = ("device", "token", "token_timestamp", "last_sync_at", "last_report_at")
    search_fields = ("device__udid", "token")
    list_select_related = ("device",)


@admin.register(DeclarationState)
class DeclarationStateAdmin(ReadOnlyAdmin):
    list_display = ("device", "identifier", "kind", "active", "valid", "failed", "reported_at")
    list_filter = ("failed", "valid", "kind")
    search_fields = ("device__udid", "identifier")
    list_select_related = ("device",)
