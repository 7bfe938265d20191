from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from commands.views import connect
from devices.views import checkin

urlpatterns = [
    path("mdm/checkin", checkin, name="mdm-checkin"),
    path("mdm/connect", connect, name="mdm-connect"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
