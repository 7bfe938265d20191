"""The declaration pages' URLs, under /declarations/ (included by mdm_portal/urls.py).

A declaration's page is /declarations/<identifier>/; an identifier that is also one of the
fixed pages below (new, upload, sets) is at /declarations/<identifier>/about/."""

from django.urls import path

from .ui import data_views as data
from .ui import declaration_views as declarations
from .ui import set_views as sets

urlpatterns = [
    path("", declarations.declaration_list, name="declarations"),
    path("new/", declarations.declaration_new, name="declaration-new"),
    path("new/served-data/", data.declaration_data, name="declaration-new-data"),
    path("upload/", declarations.declaration_upload, name="declaration-upload"),
    path("sets/", sets.set_list, name="declaration-sets"),
    path("sets/new/", sets.set_new, name="declaration-set-new"),
    path("sets/<int:pk>/", sets.set_detail, name="declaration-set"),
    path("sets/<int:pk>/add/", sets.set_add, name="declaration-set-add"),
    path("sets/<int:pk>/remove/", sets.set_remove, name="declaration-set-remove"),
    path("sets/<int:pk>/assign/", sets.set_assign, name="declaration-set-assign"),
    path("sets/<int:pk>/unassign/", sets.set_unassign, name="declaration-set-unassign"),
    path("sets/<int:pk>/delete/", sets.set_delete, name="declaration-set-delete"),
    path("<str:identifier>/", declarations.declaration_detail, name="declaration"),
    path("<str:identifier>/about/", declarations.declaration_detail, name="declaration-about"),
    path("<str:identifier>/edit/", declarations.declaration_edit, name="declaration-edit"),
    path("<str:identifier>/delete/", declarations.declaration_delete, name="declaration-delete"),
    path("<str:identifier>/data/", data.declaration_data, name="declaration-data"),
]
