"""The Certificates pages, under /certificates/ (included by mdm_portal/urls.py)."""

from django.urls import path

from . import ui, ui_issued

urlpatterns = [
    path("", ui.certificates, name="certificates"),
    path("ca/<int:pk>.pem", ui.ca_certificate, name="certificates-ca"),
    path("issued/", ui_issued.issued, name="certificates-issued"),
    path("scep/<int:pk>/approve/", ui.scep_approve, name="certificates-scep-approve"),
    path("scep/<int:pk>/reject/", ui.scep_reject, name="certificates-scep-reject"),
    path("push/", ui.push, name="certificates-push"),
    path("push/import/", ui.push_import, name="certificates-push-import"),
    path("push/import/confirm/", ui.push_import_confirm, name="certificates-push-confirm"),
    path("push/csr/", ui.push_csr_create, name="certificates-push-csr"),
    path("push/csr/<int:pk>.pem", ui.push_csr_download, name="certificates-push-csr-download"),
    path("push/sign/", ui.push_csr_sign, name="certificates-push-sign"),
]
