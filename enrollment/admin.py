"""Enrollments and the profile library in the admin: read only.

They change through mdm_enrollment and mdm_profile, which audit and queue the InstallProfile
and RemoveProfile commands an assignment implies; an edit here would queue nothing.
"""

from django.contrib import admin

from mdm_portal.admin import ReadOnlyAdmin

from .models import Enrollment, Profile, ProfileAssignment


@admin.register(Enrollment)
class EnrollmentAdmin(ReadOnlyAdmin):
    list_display = ("name", "identity", "access_rights", "uses", "expires_at", "active")
    list_filter = ("active", "identity")
    search_fields = ("name", "created_by")


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    list_display = ("name", "identifier", "version", "uploaded_by", "updated_at")
    search_fields = ("name", "identifier", "uuid")
    # A configuration profile may carry passwords (Wi-Fi, VPN, accounts) and identities.
    exclude = ("payload",)


@admin.register(ProfileAssignment)
class ProfileAssignmentAdmin(ReadOnlyAdmin):
    list_display = ("profile", "device", "group", "created_by", "created_at")
    search_fields = ("profile__identifier", "device__udid", "group__name")
    list_select_related = ("profile", "device", "group")
