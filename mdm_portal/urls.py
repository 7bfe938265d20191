from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from certs.views import scep
from commands.views import connect
from devices.views import checkin
from enrollment.views import enroll_page, enroll_profile

urlpatterns = [
    path("mdm/checkin", checkin, name="mdm-checkin"),
    path("mdm/connect", connect, name="mdm-connect"),
    path("scep", scep, name="scep"),
    path("enroll/<str:token>/", enroll_page, name="enroll-page"),
    path("enroll/<str:token>/profile", enroll_profile, name="enroll-profile"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
