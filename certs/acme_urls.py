"""The ACME server's URLs, included under /acme/ by mdm_portal/urls.py; the directory
(`/acme/directory`) lists the entry points, the rest are handed out in its answers."""

from django.urls import path

from . import acme_views as views

urlpatterns = [
    path("directory", views.directory, name="acme-directory"),
    path("new-nonce", views.new_nonce, name="acme-new-nonce"),
    path("new-account", views.new_account, name="acme-new-account"),
    path("new-order", views.new_order, name="acme-new-order"),
    path("account/<int:pk>", views.account, name="acme-account"),
    path("account/<int:pk>/orders", views.account_orders, name="acme-account-orders"),
    path("order/<int:pk>", views.order, name="acme-order"),
    path("order/<int:pk>/finalize", views.finalize, name="acme-finalize"),
    path("authz/<int:pk>", views.authorization, name="acme-authz"),
    path("challenge/<int:pk>", views.challenge, name="acme-challenge"),
    path("certificate/<int:pk>", views.certificate, name="acme-certificate"),
]
