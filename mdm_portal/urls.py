from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from certs.views import scep
from commands.views import connect
from declarations.views import asset_data
from devices.views import checkin
from enrollment.dep_views import dep_enroll
from enrollment.views import enroll_page, enroll_profile

from . import ui, ui_tokens
from .health import ping


def _superusers_only(request) -> bool:
    """The Django admin is for superusers: staff work in the portal's own pages."""
    return request.user.is_active and request.user.is_superuser


admin.site.has_permission = _superusers_only

urlpatterns = [
    # Devices (fixed paths: MDM payload, SCEP payload, enrollment links).
    path("mdm/checkin", checkin, name="mdm-checkin"),
    path("mdm/connect", connect, name="mdm-connect"),
    path("mdm/assets/<str:public_id>", asset_data, name="mdm-asset"),  # declarations' data
    path("scep", scep, name="scep"),
    path("acme/", include("certs.acme_urls")),  # the directory: /acme/directory
    path("enroll/<str:token>/", enroll_page, name="enroll-page"),
    path("enroll/<str:token>/profile", enroll_profile, name="enroll-profile"),
    path("dep/enroll", dep_enroll, name="dep-enroll"),  # the DEP profile's url (MachineInfo)
    # Staff.
    path("ping", ping, name="ping"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", ui.dashboard, name="dashboard"),
    path("certificates/", include("certs.ui_urls")),
    path("audit/", ui.audit_log, name="audit"),
    path("", include("commands.ui_urls")),
    path("", include("enrollment.ui_urls")),  # /profiles/, /enrollments/, /groups/
    path("", include("devices.ui_urls")),
    path("declarations/", include("declarations.ui_urls")),
    path("api-tokens/", ui_tokens.api_tokens, name="api-tokens"),
    path("api-tokens/<int:pk>/revoke/", ui_tokens.revoke, name="api-token-revoke"),
    path("webhooks/", include("webhooks.ui_urls")),
    path("admin/", admin.site.urls),
    # Scripts: the REST API, its schema and docs.
    path("api/", include("mdm_portal.api_urls")),
]
