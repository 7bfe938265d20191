"""The device pages' URLs (fixed paths: /devices/ and /devices/<udid>/)."""

from django.urls import path

from . import ui

urlpatterns = [
    path("devices/", ui.device_list, name="devices"),
    path("devices/export.csv", ui.device_export, name="devices-export"),
    path("devices/<str:udid>/", ui.device_detail, name="device"),
]
