"""The Certificates pages' vendor-CSR steps (CSR, PushCertWebRequest, Apple's certificate)
and SCEP approval against real pending requests (split from test_ui_certificates.py)."""

import base64
import plistlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.files.uploadedfile import SimpleUploadedFile

from certs import pushcert_csr
from certs.models import IssuedCertificate, PushCertificate, PushCertificateRequest, ScepRequest
from devices.models import Device
from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, VIEWER
from simulator import scep as sc
from tests.conftest import new_identity
from tests.test_pushcert import FakeApple, cert_pem, key_pem, new_key
from tests.ui_certs_support import (
    ADDRESS,
    fake_apple,
    field_errors,
    key_body,
    post_import,
    vendor_identity,
    waiting_request,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def manual(settings):
    settings.MDM_SCEP_MANUAL_APPROVAL = True


@pytest.fixture
def apple() -> FakeApple:
    return fake_apple()


@pytest.fixture
def vendor(apple):
    return vendor_identity(apple)


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


# --- the vendor-CSR steps ------------------------------------------------------------------------


def test_the_csr_steps_produce_the_right_downloads(staff, ca, apple, vendor):
    admin = staff[ADMIN]
    # 1. The portal's key and CSR.
    response = admin.post(
        "/certificates/push/csr/",
        {"csr-country": "de", "csr-email": "it@example.com"},
        REMOTE_ADDR=ADDRESS,
    )
    request = PushCertificateRequest.objects.get()
    assert response.status_code == 302 and response["Location"].endswith("#step-2")
    page = admin.get(response["Location"]).text
    assert f'href="/certificates/push/csr/{request.pk}.pem"' in page
    assert AuditEntry.objects.get(action="pushcert.csr_created").address == ADDRESS
    download = staff[VIEWER].get(f"/certificates/push/csr/{request.pk}.pem")
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert download.content.decode() == request.csr_pem
    csr = x509.load_pem_x509_csr(download.content)
    assert csr.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)[0].value == "DE"

    # 2. Signed with the vendor certificate: the PushCertWebRequest file.
    vendor_cert, vendor_key = vendor
    signed = admin.post(
        "/certificates/push/sign/",
        {
            "sign-request": request.pk,
            "sign-vendor_cert": upload(
                "mdm.cer", vendor_cert.public_bytes(serialization.Encoding.DER)
            ),
            "sign-vendor_key": upload("vendor.key", key_pem(vendor_key, b"vendor-pw")),
            "sign-vendor_key_password": "vendor-pw",
            "sign-chain": upload("chain.pem", cert_pem(apple.intermediate) + cert_pem(apple.root)),
            "sign-digest": "sha256",
        },
        REMOTE_ADDR=ADDRESS,
    )
    assert signed.status_code == 200
    assert signed["Content-Disposition"] == 'attachment; filename="PushCertWebRequest.txt"'
    checked = pushcert_csr.verify_push_request(signed.content)
    assert checked["digest"] == "sha256"
    plist = plistlib.loads(base64.b64decode(signed.content))
    assert base64.b64decode(plist["PushCertRequestCSR"]) == csr.public_bytes(
        serialization.Encoding.DER
    )
    chain = x509.load_pem_x509_certificates(plist["PushCertCertificateChain"].encode())
    assert chain == [vendor_cert, apple.intermediate, apple.root]
    entry = AuditEntry.objects.get(action="pushcert.csr_signed")
    assert entry.address == ADDRESS
    assert key_body(key_pem(vendor_key)) not in str(entry.details)

    # 4. Apple's certificate for that CSR pairs with the kept key.
    issued = apple.issue_for_csr(request.csr_pem)
    imported = post_import(admin, "apple", certificate=upload("MDM_Cert.pem", cert_pem(issued)))
    assert imported.status_code == 302
    record = PushCertificate.objects.get(active=True)
    assert bytes(record.private_key_pem) == bytes(request.private_key_pem)
    assert (
        "paired with the key of the portal&#x27;s own CSR" in admin.get("/certificates/push/").text
    )
    request.refresh_from_db()
    assert request.completed_at is not None
    assert f"/certificates/push/csr/{request.pk}.pem" not in admin.get("/certificates/push/").text


def test_signing_refusals_are_400s_next_to_their_field(staff, ca, vendor):
    vendor_cert, vendor_key = vendor
    request = pushcert_csr.create_push_csr()
    admin = staff[ADMIN]

    def sign(**fields):
        data = {
            "sign-vendor_cert": upload("mdm.pem", cert_pem(vendor_cert)),
            "sign-vendor_key": upload("vendor.key", key_pem(vendor_key)),
            "sign-digest": "sha256",
        }
        data.update({f"sign-{name}": value for name, value in fields.items()})
        return admin.post("/certificates/push/sign/", data)

    cases = [
        ({}, "id_sign-request", "choose the portal"),
        (
            {"request": request.pk, "vendor_key": upload("k.pem", key_pem(new_key()))},
            "id_sign-vendor_key",
            "does not belong to the vendor certificate",
        ),
        (
            {"request": request.pk, "vendor_key": upload("k.pem", key_pem(vendor_key, b"pw"))},
            "id_sign-vendor_key",
            "encrypted",
        ),
        ({"csr": upload("x.csr", b"garbage")}, "id_sign-csr", "cannot read the CSR"),
        (
            {"request": request.pk, "csr": upload("x.csr", request.csr_pem.encode())},
            "id_sign-csr",
            "not both",
        ),
        ({"request": request.pk, "digest": "md5"}, "id_sign-digest", "Select a valid choice"),
    ]
    for fields, field_id, message in cases:
        response = sign(**fields)
        assert response.status_code == 400, message
        assert message in field_errors(response.text, field_id), (message, field_id)
        assert "attachment" not in response.get("Content-Disposition", "")
    assert not AuditEntry.objects.filter(action="pushcert.csr_signed").exists()


def test_csr_refusals(staff, ca):
    response = staff[ADMIN].post("/certificates/push/csr/", {"csr-country": "D1"})
    assert response.status_code == 400
    assert "two-letter code" in field_errors(response.text, "id_csr-country")
    assert not PushCertificateRequest.objects.exists()


# --- SCEP approval ------------------------------------------------------------------------------


def test_approve_a_pending_scep_request(staff, ca, manual, client):
    enrollment = Enrollment.objects.create(name="Lab iPads")
    requester = waiting_request(client, "tid-approve", "lab-ipad-7", enrollment)
    scep = ScepRequest.objects.get(transaction_id="tid-approve")
    html = staff[VIEWER].get("/certificates/").text
    pending = html.split('aria-label="SCEP requests waiting for approval"')[1].split("</table>")[0]
    assert "tid-approve" in pending and "CN=lab-ipad-7" in pending
    assert "Lab iPads" in pending and "New identity" in pending

    response = staff[ADMIN].post(f"/certificates/scep/{scep.pk}/approve/", REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302 and response["Location"] == "/certificates/#scep"
    scep.refresh_from_db()
    assert scep.status == ScepRequest.Status.ISSUED and scep.decided_by == "admin-user"
    status, _, certificate = requester.poll()
    assert status == sc.SUCCESS and certificate is not None
    entry = AuditEntry.objects.get(action="scep.approved")
    assert (entry.actor, entry.address, entry.target) == ("admin-user", ADDRESS, "CN=lab-ipad-7")
    page = staff[ADMIN].get("/certificates/").text
    assert "Approved: certificate" in page
    decided = page.split('aria-label="Recently decided SCEP requests"')[1].split("</table>")[0]
    assert "tid-approve" in decided and "issued" in decided
    # Approving again is refused with the reason, not a 500.
    again = staff[ADMIN].post(f"/certificates/scep/{scep.pk}/approve/", follow=True)
    assert "Not approved: the request is issued, not pending" in again.text
    assert IssuedCertificate.objects.count() == 1


def test_reject_a_pending_scep_request_with_a_reason(staff, ca, manual, client):
    requester = waiting_request(client, "tid-reject", "unknown-mac")
    scep = ScepRequest.objects.get(transaction_id="tid-reject")
    response = staff[ADMIN].post(
        f"/certificates/scep/{scep.pk}/reject/",
        {"reason": "not one of ours"},
        REMOTE_ADDR=ADDRESS,
        follow=True,
    )
    assert "Rejected: CN=unknown-mac" in response.text
    scep.refresh_from_db()
    assert scep.status == ScepRequest.Status.REJECTED
    assert requester.poll()[:2] == (sc.FAILURE, sc.BAD_REQUEST)
    entry = AuditEntry.objects.get(action="scep.rejected")
    assert entry.address == ADDRESS and entry.details["reason"] == "not one of ours"
    too_long = staff[ADMIN].post(f"/certificates/scep/{scep.pk}/reject/", {"reason": "x" * 300})
    assert too_long.status_code == 302


def test_a_renewal_request_names_the_certificate_it_renews(staff, ca, manual, client):
    device = Device.objects.create(udid="RENEWING-1")
    old_cert, old_key, record = new_identity("renew-me", device=device)
    response = client.get("/scep", {"operation": "GetCACert"})
    ca_cert, recipient = sc.split_ca_certs(response.content, response["Content-Type"])
    new = sc.make_key()
    der = sc.build_pkcs_req(
        sc.make_scep_csr(new, "renew-me"),
        old_cert,
        old_key,
        recipient,
        transaction_id="tid-renew",
        message_type=sc.RENEWAL_REQ,
    )
    client.post("/scep?operation=PKIOperation", der, content_type="application/x-pki-message")
    html = staff[VIEWER].get("/certificates/").text
    pending = html.split('aria-label="SCEP requests waiting for approval"')[1].split("</table>")[0]
    assert "tid-renew" in pending and "Renewal" in pending and record.serial in pending
