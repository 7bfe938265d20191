from django.contrib import admin

from .models import IssuedCertificate


@admin.register(IssuedCertificate)
class IssuedCertificateAdmin(admin.ModelAdmin):
    list_display = ("subject", "serial", "not_after", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("subject", "serial", "sha256")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
