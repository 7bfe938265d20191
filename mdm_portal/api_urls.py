"""The REST API's routes (`/api/v1/`), its OpenAPI schema (`/api/schema/`) and its docs
(`/api/docs/`, Swagger UI served by the portal itself; `/api/redoc/`). Included by one line
of mdm_portal/urls.py; each app's endpoints live in its api.py."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from certs.api import (
    CertificateInventoryView,
    IssuedCertificateViewSet,
    PushCertificateView,
    ScepRequestViewSet,
)
from commands.api import CommandViewSet, DeviceCommandsView, DevicePushesViewSet, PushView
from declarations.api import (
    DeclarationSetViewSet,
    DeclarationStatesView,
    DeclarationViewSet,
    DeviceDeclarationsView,
)
from devices.api import DeviceViewSet, GroupViewSet
from enrollment.api import EnrollmentViewSet, ProfileViewSet
from enrollment.dep_api import DepDeviceViewSet, DepProfileViewSet, DepServerViewSet
from webhooks.api import WebhookViewSet

from . import api_schema  # noqa: F401 - registers the token security scheme
from .api import AlertViewSet, AuditViewSet


class Router(DefaultRouter):
    include_root_view = False


router = Router()
router.register("devices", DeviceViewSet, basename="api-device")
router.register(r"devices/(?P<udid>[^/]+)/pushes", DevicePushesViewSet, basename="api-device-push")
router.register("groups", GroupViewSet, basename="api-group")
router.register("commands", CommandViewSet, basename="api-command")
router.register("profiles", ProfileViewSet, basename="api-profile")
router.register("enrollments", EnrollmentViewSet, basename="api-enrollment")
router.register("dep/servers", DepServerViewSet, basename="api-dep-server")
router.register("dep/devices", DepDeviceViewSet, basename="api-dep-device")
router.register("dep/profiles", DepProfileViewSet, basename="api-dep-profile")
router.register("declarations", DeclarationViewSet, basename="api-declaration")
router.register("declaration-sets", DeclarationSetViewSet, basename="api-declaration-set")
router.register("scep-requests", ScepRequestViewSet, basename="api-scep-request")
router.register("certificates/issued", IssuedCertificateViewSet, basename="api-issued-certificate")
router.register("webhooks", WebhookViewSet, basename="api-webhook")
router.register("audit", AuditViewSet, basename="api-audit")
router.register("alerts", AlertViewSet, basename="api-alert")

v1 = [
    path("devices/<str:udid>/commands/", DeviceCommandsView.as_view(), name="api-device-commands"),
    path(
        "devices/<str:udid>/declarations/",
        DeviceDeclarationsView.as_view(),
        name="api-device-declarations",
    ),
    path(
        "declarations/<str:identifier>/states/",
        DeclarationStatesView.as_view(),
        name="api-declaration-states",
    ),
    path("push/", PushView.as_view(), name="api-push"),
    path("certificates/", CertificateInventoryView.as_view(), name="api-certificates"),
    path("certificates/push/", PushCertificateView.as_view(), name="api-push-certificate"),
    *router.urls,
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
