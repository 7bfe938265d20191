"""The certificates' API: the push certificate's status for everyone and its import for
admins (409 for a new topic while devices listen to the old one), every certificate with days
left, and SCEP approvals (admins); never a private key."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from certs.models import ScepRequest
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.test_pushcert import apple, cert_pem, enroll_devices, key_pem, new_key, push, topic_of  # noqa: F401

pytestmark = pytest.mark.django_db


def pem_files(certificate, key) -> dict:
    return {
        "certificate": SimpleUploadedFile("push.pem", cert_pem(certificate)),
        "key": SimpleUploadedFile("push.key", key_pem(key)),
    }


def test_push_certificate_status_and_import(api, apple, push):  # noqa: F811
    assert api[VIEWER].get("/api/v1/certificates/push/").json() == {"push_certificate": None}
    certificate, key = push
    refused = api[OPERATOR].post("/api/v1/certificates/push/", pem_files(certificate, key),
                                 format="multipart")  # fmt: skip
    assert refused.status_code == 403
    imported = api[ADMIN].post("/api/v1/certificates/push/", pem_files(certificate, key),
                               format="multipart")  # fmt: skip
    assert imported.status_code == 200, imported.content
    assert imported.json()["push_certificate"]["topic"] == topic_of(certificate)
    status = api[VIEWER].get("/api/v1/certificates/push/").json()["push_certificate"]
    assert status["topic"] == topic_of(certificate) and status["days_left"] > 0
    assert "PRIVATE KEY" not in str(status)
    enroll_devices(2, topic_of(certificate))
    other_key = new_key()
    other = apple.issue_push(other_key.public_key())
    conflict = api[ADMIN].post("/api/v1/certificates/push/", pem_files(other, other_key),
                               format="multipart")  # fmt: skip
    assert conflict.status_code == 409 and "2 enrolled device(s)" in conflict.json()["error"]
    forced = api[ADMIN].post(
        "/api/v1/certificates/push/", {**pem_files(other, other_key), "force": "true"},
        format="multipart",
    )  # fmt: skip
    assert forced.status_code == 200 and forced.json()["orphaned"] == 2
    empty = api[ADMIN].post("/api/v1/certificates/push/", {}, format="multipart")
    assert empty.status_code == 400 and empty.json()["error"].startswith("p12")
    garbage = api[ADMIN].post(
        "/api/v1/certificates/push/", {"p12": SimpleUploadedFile("x.p12", b"nope")},
        format="multipart",
    )  # fmt: skip
    assert garbage.status_code == 400
    assert AuditEntry.objects.filter(action="pushcert.imported").first().details["token"]


def test_the_certificate_inventory_with_days_left(api, ca):
    response = api[VIEWER].get("/api/v1/certificates/")
    assert response.status_code == 200
    kinds = {entry["kind"] for entry in response.json()["results"]}
    assert "ca" in kinds
    only_ca = api[VIEWER].get("/api/v1/certificates/", {"kind": "ca"}).json()
    assert only_ca["count"] == 1 and only_ca["results"][0]["days_left"] > 3000
    assert "PRIVATE" not in str(only_ca)
    assert api[VIEWER].get("/api/v1/certificates/", {"kind": "x"}).status_code == 400


def test_scep_approvals_are_for_admins(api, ca, settings):
    request = ScepRequest.objects.create(
        transaction_id="T-1", message_type="PKCSReq", subject="CN=device",
        csr_der=b"csr", signer_certificate_der=b"signer",
    )  # fmt: skip
    listed = api[VIEWER].get("/api/v1/scep-requests/")
    assert [r["transaction_id"] for r in listed.json()["results"]] == ["T-1"]
    assert "csr" not in listed.json()["results"][0]
    assert api[OPERATOR].post(f"/api/v1/scep-requests/{request.pk}/reject/").status_code == 403
    rejected = api[ADMIN].post(
        f"/api/v1/scep-requests/{request.pk}/reject/", {"reason": "unknown"}, format="json"
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = api[ADMIN].post(f"/api/v1/scep-requests/{request.pk}/approve/")
    assert again.status_code == 409 and "not pending" in again.json()["error"]
    assert api[ADMIN].post("/api/v1/scep-requests/999/approve/").status_code == 404
    assert api[VIEWER].get("/api/v1/scep-requests/", {"status": "all"}).json()["results"]
    assert api[VIEWER].get("/api/v1/scep-requests/", {"status": "x"}).status_code == 400
    entry = AuditEntry.objects.get(action="scep.rejected")
    assert entry.details["token"] == "admin-script" and entry.details["reason"] == "unknown"
