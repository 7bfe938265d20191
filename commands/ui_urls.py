"""The command pages' URLs (included by mdm_portal/urls.py)."""

from django.urls import path

from . import ui

urlpatterns = [
    path("commands/", ui.command_list, name="commands"),
    path("commands/new/", ui.new_command, name="command-new"),
    path("commands/<str:uuid>/", ui.command_detail, name="command-detail"),
    path("commands/<str:uuid>/cancel/", ui.cancel_command, name="command-cancel"),
]
