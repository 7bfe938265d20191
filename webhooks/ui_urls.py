"""The webhooks page's routes, included at /webhooks/ by mdm_portal/urls.py."""

from django.urls import path

from . import ui

urlpatterns = [
    path("", ui.webhooks, name="webhooks"),
    path("<int:pk>/", ui.detail, name="webhook"),
    path("<int:pk>/remove/", ui.remove, name="webhook-remove"),
    path("<int:pk>/<str:what>/", ui.act, name="webhook-act"),
]
