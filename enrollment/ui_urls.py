"""The staff pages of the profile library, the enrollments and the groups."""

from django.urls import path

from .ui import enrollments, groups, profiles

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
    path("groups/", groups.group_list, name="group-list"),
    path("groups/new/", groups.group_new, name="group-new"),
    path("groups/<int:pk>/", groups.group_detail, name="group-detail"),
    path("groups/<int:pk>/rename/", groups.group_rename, name="group-rename"),
    path("groups/<int:pk>/add/", groups.group_add, name="group-add"),
    path("groups/<int:pk>/remove/", groups.group_remove, name="group-remove"),
    path("groups/<int:pk>/assign/", groups.group_assign, name="group-assign"),
    path("groups/<int:pk>/delete/", groups.group_delete, name="group-delete"),
]
