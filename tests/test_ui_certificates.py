"""The Certificates pages: every role reads, only an admin changes anything; push certificate
uploads (PKCS#12, certificate and key, a topic change refused then confirmed), the vendor-CSR
steps and their downloads, SCEP approval against real pending requests, and no secret in any
page."""

import re

import pytest
from cryptography import x509
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from certs import pushcert, pushcert_csr
from certs.ca import ca_certificate
from certs.models import PushCertificate, PushCertificateRequest
from certs.ui import STASH
from devices.models import Device
from enrollment.links import issue_enrollment_challenge, record_device_enrollment
from enrollment.models import Enrollment
from enrollment.renewal import renew_identity
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.apns_standin import StandInPKI, install_push_certificate
from tests.conftest import new_identity
from tests.test_pushcert import FakeApple, cert_pem, key_pem, new_key
from tests.ui_certs_support import (
    ADDRESS,
    as_pkcs12,
    fake_apple,
    field_errors,
    key_body,
    pending_scep_request,
    post_import,
    vendor_identity,
    waiting_request,
)

pytestmark = pytest.mark.django_db

READ_PAGES = ["/certificates/", "/certificates/push/"]
POSTS = [
    "/certificates/push/import/",
    "/certificates/push/import/confirm/",
    "/certificates/push/csr/",
    "/certificates/push/sign/",
    "/certificates/scep/1/approve/",
    "/certificates/scep/1/reject/",
]


@pytest.fixture
def pki(tmp_path) -> StandInPKI:
    return StandInPKI.create(tmp_path / "pki")


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


# --- access ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", READ_PAGES)
def test_pages_need_login_and_a_role(client, staff, ca, path):
    assert client.get(path).status_code == 302
    assert staff[None].get(path).status_code == 403
    for role in (VIEWER, OPERATOR, ADMIN):
        assert staff[role].get(path).status_code == 200, role


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("role", [VIEWER, OPERATOR, None])
def test_every_change_needs_the_admin_role(staff, ca, role, path):
    audited = AuditEntry.objects.count()
    response = staff[role].post(path, {"source": "p12"})
    assert response.status_code == 403
    assert not PushCertificate.objects.exists()
    assert not PushCertificateRequest.objects.exists()
    assert AuditEntry.objects.count() == audited


def test_readers_get_no_forms_or_buttons(staff, ca, manual, pki, client):
    waiting_request(client, "tid-read", "ipad")
    pushcert_csr.create_push_csr()
    change_actions = (
        'action="/certificates/push/import/"',
        'action="/certificates/push/csr/"',
        'action="/certificates/push/sign/"',
        "/approve/",
        "/reject/",
        'type="file"',
    )
    for role in (VIEWER, OPERATOR):
        html = staff[role].get("/certificates/").text + staff[role].get("/certificates/push/").text
        assert "tid-read" in html  # they read the pending request ...
        assert "Download the CSR" in html  # ... and the CSR (public) ...
        for action in change_actions:  # ... but cannot act on anything
            assert action not in html, (role, action)
        assert "Details and renewal steps" in html
    admin = staff[ADMIN].get("/certificates/").text + staff[ADMIN].get("/certificates/push/").text
    for action in change_actions:
        assert action in admin, action


def test_posts_only_and_unknown_forms(staff, ca):
    assert staff[ADMIN].get("/certificates/push/import/").status_code == 405
    assert staff[ADMIN].post("/certificates/push/import/", {"source": "zip"}).status_code == 404
    assert staff[ADMIN].post("/certificates/scep/999/approve/").status_code == 404


# --- the overview ------------------------------------------------------------------------------


def test_overview_shows_push_certificate_cas_and_expiry(staff, ca, pki):
    html = staff[VIEWER].get("/certificates/").text
    assert "No push certificate yet" in html
    certificate_pem, key_pem_ = pki.issue_push_certificate(days=20)
    result = pushcert.import_push_certificate(
        certificate_pem, key_pem_, orphaned_devices=lambda topic: 0
    )
    html = staff[VIEWER].get("/certificates/").text
    record = result.certificate
    assert record.topic in html and record.serial in html
    assert "production" in html
    assert "held by the portal, encrypted at rest" in html
    assert re.search(r'class="badge notice">(19|20) days left', html)
    assert "Certificates that need attention" in html  # 20 days: past the 30-day threshold
    assert f'href="/certificates/ca/{ca.pk}.pem"' in html
    assert ca.sha256 in html
    # The inventory table lists the CA and the push certificate, soonest expiry first.
    table = html.split('aria-label="Certificates the portal depends on"')[1].split("</table>")[0]
    assert table.index(record.topic) < table.index(ca.name)


def test_ca_certificate_download(staff, ca):
    response = staff[VIEWER].get(f"/certificates/ca/{ca.pk}.pem")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    assert "attachment" in response["Content-Disposition"]
    certificate = x509.load_pem_x509_certificate(response.content)
    assert certificate == ca_certificate(ca)
    assert b"PRIVATE KEY" not in response.content
    assert staff[VIEWER].get("/certificates/ca/999.pem").status_code == 404


def test_device_identities_close_to_expiry_with_renewal_queued(staff, ca, enrolled, settings, pki):
    install_push_certificate(pki)  # a renewal profile names the push topic
    settings.MDM_DEVICE_CERT_VALIDITY_DAYS = 10
    device = Device.objects.get(udid=enrolled.udid)
    device.device_name, device.serial_number = "Front desk iPad", "DMPX12345"
    device.save()
    new_identity("renewed-soon", device=device)
    html = staff[VIEWER].get("/certificates/").text
    section = html.split('id="identities"')[1]
    assert f'href="/devices/{device.udid}/"' in section
    assert "Front desk iPad" in section and "DMPX12345" in section
    assert "not queued" in section
    record_device_enrollment(device, Enrollment.objects.create(name="Staff"))
    renew_identity(device)
    section = staff[VIEWER].get("/certificates/").text.split('id="identities"')[1]
    assert '<span class="badge queued">queued</span>' in section


# --- push certificate uploads ------------------------------------------------------------------


def test_pkcs12_with_its_password(staff, ca, pki):
    certificate_pem, key_pem_ = pki.issue_push_certificate()
    p12 = as_pkcs12(certificate_pem, key_pem_, b"s3cret")
    response = post_import(staff[ADMIN], "p12", pkcs12=upload("push.p12", p12), password="s3cret")
    assert response.status_code == 302 and response["Location"] == "/certificates/push/"
    record = PushCertificate.objects.get(active=True)
    page = staff[ADMIN].get("/certificates/push/").text
    assert f"Imported push certificate {record.topic} (production)" in page
    entry = AuditEntry.objects.get(action="pushcert.imported")
    assert (entry.actor, entry.address, entry.details["source"]) == (
        "admin-user",
        ADDRESS,
        "pkcs12",
    )


def test_pkcs12_with_a_wrong_password_is_a_400_next_to_the_password(staff, ca, pki):
    p12 = as_pkcs12(*pki.issue_push_certificate(), b"s3cret")
    response = post_import(staff[ADMIN], "p12", pkcs12=upload("push.p12", p12), password="nope")
    assert response.status_code == 400
    assert "wrong password" in field_errors(response.text, "id_p12-password")
    assert 'aria-invalid="true"' in response.text
    assert "nope" not in response.text  # the password is not sent back
    assert not PushCertificate.objects.exists()


def test_certificate_and_key(staff, ca, pki):
    certificate_pem, key_pem_ = pki.issue_push_certificate(
        development=True, topic="com.apple.mgmt.External.dev"
    )
    response = post_import(
        staff[ADMIN],
        "pem",
        certificate=upload("push.pem", certificate_pem),
        key=upload("push.key", key_pem_),
    )
    assert response.status_code == 302
    record = PushCertificate.objects.get(active=True)
    assert record.development
    assert "development" in staff[VIEWER].get("/certificates/").text


def test_bad_uploads_are_400s_next_to_their_field(staff, ca, pki):
    certificate_pem, _ = pki.issue_push_certificate()
    admin = staff[ADMIN]
    cases = [
        (
            {"certificate": upload("c.pem", b"not a certificate")},
            "id_pem-certificate",
            "cannot read the certificate",
        ),
        (
            {
                "certificate": upload("c.pem", certificate_pem),
                "key": upload("k.pem", key_pem(new_key())),
            },
            "id_pem-key",
            "does not belong to this certificate",
        ),
        ({"certificate": upload("c.pem", certificate_pem)}, "id_pem-key", "no private key"),
        ({}, "id_pem-certificate", "required"),
        ({"certificate": upload("big.pem", b"x" * 300_000)}, "id_pem-certificate", "KiB"),
    ]
    for fields, field_id, message in cases:
        response = post_import(admin, "pem", **fields)
        assert response.status_code == 400, message
        assert message in field_errors(response.text, field_id), (message, field_id)
    assert not PushCertificate.objects.exists()


def test_topic_change_refused_then_replaced_with_confirmation(staff, ca, pki):
    old = pushcert.import_push_certificate(
        *pki.issue_push_certificate(), orphaned_devices=lambda topic: 0
    ).certificate
    for n in range(3):
        Device.objects.create(udid=f"ENROLLED-{n}", state="enrolled", topic=old.topic)
    new_pem, new_key_pem = pki.issue_push_certificate()
    new_topic = pushcert.topic_of(x509.load_pem_x509_certificate(new_pem))
    admin = staff[ADMIN]
    refused = post_import(
        admin, "pem", certificate=upload("c.pem", new_pem), key=upload("k.pem", new_key_pem)
    )
    assert refused.status_code == 409
    html = refused.text
    assert "Refused: this certificate has another topic" in html
    assert "3 enrolled devices</strong> listen to" in html
    assert old.topic in html and new_topic in html
    assert "Replace anyway (every device must re-enroll)" in html
    assert pushcert.active_topic() == old.topic
    # The upload waits, encrypted, in the session: no key in the clear.
    stash = admin.session[STASH]
    assert "PRIVATE KEY" not in str(stash) and key_body(new_key_pem) not in str(stash)
    token = re.search(r'name="stash" value="([^"]+)"', html).group(1)

    # Not confirmed: the box is not ticked.
    unticked = admin.post("/certificates/push/import/confirm/", {"stash": token})
    assert unticked.status_code == 400 and "Refused" in unticked.text
    assert field_errors(unticked.text, "id_understood")
    assert pushcert.active_topic() == old.topic

    forced = admin.post(
        "/certificates/push/import/confirm/",
        {"stash": token, "understood": "on", "replace": ""},
        REMOTE_ADDR=ADDRESS,
    )
    assert forced.status_code == 302
    assert pushcert.active_topic() == new_topic
    entry = AuditEntry.objects.filter(action="pushcert.imported").latest("id")
    assert entry.details["forced"] is True and entry.details["orphaned_devices"] == 3
    assert (entry.actor, entry.address) == ("admin-user", ADDRESS)
    page = admin.get("/certificates/push/").text
    assert "3 enrolled device(s) listen to another topic" in page
    # The stash is used once.
    again = admin.post(
        "/certificates/push/import/confirm/", {"stash": token, "understood": "on"}, follow=True
    )
    assert "no longer waiting" in again.text


def test_a_refused_upload_can_be_dropped(staff, ca, pki):
    old = pushcert.import_push_certificate(
        *pki.issue_push_certificate(), orphaned_devices=lambda topic: 0
    ).certificate
    Device.objects.create(udid="ENROLLED", state="enrolled", topic=old.topic)
    new_pem, new_key_pem = pki.issue_push_certificate()
    admin = staff[ADMIN]
    post_import(
        admin, "pem", certificate=upload("c.pem", new_pem), key=upload("k.pem", new_key_pem)
    )
    response = admin.post("/certificates/push/import/confirm/", {"cancel": ""}, follow=True)
    assert "Nothing imported" in response.text
    assert STASH not in admin.session
    assert pushcert.active_topic() == old.topic


# --- no secret in any page -------------------------------------------------------------------


def test_no_secret_in_any_page(staff, ca, manual, client, pki, vendor):
    challenge = issue_enrollment_challenge(None)
    pending_scep_request(
        client, challenge=challenge, common_name="secretive", transaction_id="tid-secret"
    )
    certificate_pem, push_key = pki.issue_push_certificate()
    pushcert.import_push_certificate(certificate_pem, push_key, orphaned_devices=lambda t: 0)
    csr_request = pushcert_csr.create_push_csr()
    vendor_cert, vendor_key = vendor
    vendor_pem = key_pem(vendor_key)
    staff[ADMIN].post(
        "/certificates/push/sign/",
        {
            "sign-request": csr_request.pk,
            "sign-vendor_cert": upload("mdm.pem", cert_pem(vendor_cert)),
            "sign-vendor_key": upload("vendor.key", key_pem(new_key())),  # refused: page again
            "sign-digest": "sha256",
        },
    )
    secrets = [
        "PRIVATE KEY",
        key_body(push_key),
        key_body(bytes(csr_request.private_key_pem)),
        key_body(bytes(ca.private_key_pem)),
        key_body(vendor_pem),
        challenge,
    ]
    pages = []
    for role in (VIEWER, OPERATOR, ADMIN):
        for path in READ_PAGES + [
            f"/certificates/ca/{ca.pk}.pem",
            f"/certificates/push/csr/{csr_request.pk}.pem",
        ]:
            response = staff[role].get(path)
            assert response.status_code == 200
            pages.append(response.content.decode())
    refused_sign = staff[ADMIN].post(
        "/certificates/push/sign/",
        {
            "sign-request": csr_request.pk,
            "sign-vendor_cert": upload("mdm.pem", cert_pem(vendor_cert)),
            "sign-vendor_key": upload("vendor.key", vendor_pem),
            "sign-digest": "md5",
        },
    )
    assert refused_sign.status_code == 400
    pages.append(refused_sign.content.decode())
    for page in pages:
        for secret in secrets:
            assert secret not in page, secret
    audit = str(list(AuditEntry.objects.values_list("details", flat=True)))
    for secret in secrets:
        assert secret not in audit, secret


def test_mdm_pushcert_import_refuses_a_key_beside_a_pkcs12(tmp_path, pki):
    certificate_pem, key_pem_ = pki.issue_push_certificate()
    p12 = tmp_path / "push.p12"
    p12.write_bytes(as_pkcs12(certificate_pem, key_pem_, b"pw"))
    key = tmp_path / "push.key"
    key.write_bytes(key_pem_)
    with pytest.raises(CommandError, match="PKCS#12 file alone"):
        call_command("mdm_pushcert", "import", "--p12", str(p12), "--key", str(key))


GARBAGE = [
    b"\x00\x01\x02 not a file of any kind",
    b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_in_any_file_is_a_400_never_a_500(staff, ca, pki, vendor, garbage):
    certificate_pem, key_pem_ = pki.issue_push_certificate()
    vendor_cert, vendor_key = vendor
    request = pushcert_csr.create_push_csr()
    admin = staff[ADMIN]
    imports = {
        "p12": {"pkcs12": None, "password": "pw"},
        "pem": {"certificate": certificate_pem, "key": key_pem_, "password": "pw"},
        "apple": {"certificate": None},
    }
    for source, fields in imports.items():
        for name in (field for field in fields if field != "password"):
            data = {
                key: (upload(key, garbage if key == name else item) if key != "password" else item)
                for key, item in fields.items()
            }
            response = post_import(admin, source, **data)
            assert response.status_code == 400, (source, name)
    good = {
        "request": request.pk,
        "vendor_cert": cert_pem(vendor_cert),
        "vendor_key": key_pem(vendor_key),
        "chain": cert_pem(vendor_cert),
    }
    for name in ("csr", "vendor_cert", "vendor_key", "chain"):
        fields = {**good, name: garbage}
        if name == "csr":
            fields.pop("request")
        data = {
            f"sign-{key}": upload(key, value) if isinstance(value, bytes) else value
            for key, value in fields.items()
        }
        response = admin.post("/certificates/push/sign/", {**data, "sign-digest": "sha256"})
        assert response.status_code == 400, name
    assert not PushCertificate.objects.exists()


def test_the_pages_before_mdm_init(staff):
    html = staff[VIEWER].get("/certificates/").text
    assert "No CA yet" in html and "No push certificate yet" in html
    assert staff[ADMIN].get("/certificates/push/").status_code == 200


@pytest.mark.parametrize(
    "query",
    ["identity-sort=-device", "identity-sort=serial", "identity-page=9", "identity-page=x"],
)
def test_the_identity_table_sorts_and_pages_without_errors(staff, ca, query):
    assert staff[VIEWER].get(f"/certificates/?{query}").status_code == 200
