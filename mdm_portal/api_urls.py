"""The REST API's routes (`/api/v1/`), its OpenAPI schema (`/api/schema/`) and its docs
(`/api/docs/`, Swagger UI served by the portal itself; `/api/redoc/`). Included by one line
of mdm_portal/urls.py; each app's endpoints live in its api.py."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from certs.api import CertificateInventoryView, PushCertificateView, ScepRequestViewSet
from commands.api import CommandViewSet, DeviceCommandsView, DevicePushesViewSet, PushView
from devices.api import DeviceViewSet, GroupViewSet
from enrollment.api import EnrollmentViewSet, ProfileViewSet
from webhooks.api import WebhookViewSet

from . import api_schema  # noqa: F401 - registers the token security scheme
from .api import AlertViewSet, AuditViewSet


class Router(DefaultRouter):
    include_root_view = False


router = Router()
router.register("devices", DeviceViewSet, basename="device")
router.register(r"devices/(?P<udid>[^/]+)/pushes", DevicePushesViewSet, basename="device-push")
router.register("groups", GroupViewSet, basename="group")
router.register("commands", CommandViewSet, basename="command")
router.register("profiles", ProfileViewSet, basename="profile")
router.register("enrollments", EnrollmentViewSet, basename="enrollment")
router.register("scep-requests", ScepRequestViewSet, basename="scep-request")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("audit", AuditViewSet, basename="audit")
router.register("alerts", AlertViewSet, basename="alert")

v1 = [
    path("devices/<str:udid>/commands/", DeviceCommandsView.as_view(), name="device-commands"),
    path("push/", PushView.as_view(), name="push"),
    path("certificates/", CertificateInventoryView.as_view(), name="certificates"),
    path("certificates/push/", PushCertificateView.as_view(), name="push-certificate"),
    *router.urls,
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
