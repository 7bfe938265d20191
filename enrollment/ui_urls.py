"""The staff pages of the profile library, the enrollments, Automated Device Enrollment
(under /enrollments/dep/: not /dep/, which is the devices' own URL) and the groups."""

from django.urls import path

from .ui import dep_devices, dep_profiles, dep_servers, enrollments, groups, profiles

urlpatterns = [
    path("profiles/", profiles.profile_list, name="profile-list"),
    path("profiles/upload/", profiles.profile_upload, name="profile-upload"),
    path("profiles/<int:pk>/", profiles.profile_detail, name="profile-detail"),
    path("profiles/<int:pk>/assign/", profiles.profile_assign, name="profile-assign"),
    path("profiles/<int:pk>/unassign/", profiles.profile_unassign, name="profile-unassign"),
    path("profiles/<int:pk>/delete/", profiles.profile_delete, name="profile-delete"),
    path("enrollments/", enrollments.enrollment_list, name="enrollment-list"),
    path("enrollments/new/", enrollments.enrollment_new, name="enrollment-new"),
    path("enrollments/<int:pk>/", enrollments.enrollment_detail, name="enrollment-detail"),
    path("enrollments/<int:pk>/profile", enrollments.enrollment_profile, name="enrollment-profile"),
    path(
        "enrollments/<int:pk>/deactivate/",
        enrollments.enrollment_deactivate,
        name="enrollment-deactivate",
    ),
    path("enrollments/dep/", dep_servers.server_list, name="dep-servers"),
    path("enrollments/dep/new/", dep_servers.server_new, name="dep-server-new"),
    path("enrollments/dep/<int:pk>/", dep_servers.server_detail, name="dep-server"),
    path(
        "enrollments/dep/<int:pk>/certificate.pem",
        dep_servers.server_certificate,
        name="dep-server-certificate",
    ),
    path("enrollments/dep/<int:pk>/token/", dep_servers.server_token, name="dep-server-token"),
    path("enrollments/dep/<int:pk>/sync/", dep_servers.server_sync, name="dep-server-sync"),
    path(
        "enrollments/dep/<int:pk>/sync/status/",
        dep_servers.server_sync_status,
        name="dep-server-sync-status",
    ),
    path(
        "enrollments/dep/<int:pk>/auto-assign/",
        dep_servers.server_auto_assign,
        name="dep-server-auto-assign",
    ),
    path("enrollments/dep/<int:pk>/disown/", dep_servers.server_disown, name="dep-server-disown"),
    path("enrollments/dep/devices/", dep_devices.device_list, name="dep-devices"),
    path("enrollments/dep/devices/assign/", dep_devices.device_assign, name="dep-assign"),
    path("enrollments/dep/profiles/", dep_profiles.profile_list, name="dep-profiles"),
    path("enrollments/dep/profiles/new/", dep_profiles.profile_new, name="dep-profile-new"),
    path("enrollments/dep/profiles/<int:pk>/", dep_profiles.profile_detail, name="dep-profile"),
    path(
        "enrollments/dep/profiles/<int:pk>/edit/",
        dep_profiles.profile_edit,
        name="dep-profile-edit",
    ),
    path("groups/", groups.group_list, name="group-list"),
    path("groups/new/", groups.group_new, name="group-new"),
    path("groups/<int:pk>/", groups.group_detail, name="group-detail"),
    path("groups/<int:pk>/rename/", groups.group_rename, name="group-rename"),
    path("groups/<int:pk>/add/", groups.group_add, name="group-add"),
    path("groups/<int:pk>/remove/", groups.group_remove, name="group-remove"),
    path("groups/<int:pk>/assign/", groups.group_assign, name="group-assign"),
    path("groups/<int:pk>/delete/", groups.group_delete, name="group-delete"),
]
