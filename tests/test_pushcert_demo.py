"""The demo push certificate (`mdm_pushcert demo`, certs/pushcert_demo.py): shaped like Apple's,
stored like an imported one, marked as a demo in `show`, the API and the UI, replaced by a
real certificate without --force, and never pushing anywhere but MDM_APNS_URL."""

import asyncio
import datetime as dt
import re
import socket
import uuid
from io import StringIO

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from certs import pushcert
from certs.models import PushCertificate
from certs.pushcert_demo import ensure_demo_push_certificate
from commands.apns import push_devices
from commands.models import PushAttempt
from devices.models import Device
from mdm_portal.models import Alert, AuditEntry
from mdm_portal.roles import ADMIN, VIEWER
from tests.apns_fixtures import shared_pki
from tests.apns_standin import APNsStandIn
from tests.ui_support import make_user

pytestmark = pytest.mark.django_db

TOPIC = re.compile(r"^com\.apple\.mgmt\.External\.([0-9a-f-]{36})$")
BANNER = "Demo push certificate: pushes go only to the local APNs stand-in"


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("mdm_pushcert", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def demo() -> PushCertificate:
    run("demo")
    return PushCertificate.objects.get(active=True)


def enrolled_device(topic: str) -> Device:
    return Device.objects.create(
        udid=f"UDID-{uuid.uuid4()}",
        state=Device.State.ENROLLED,
        enrolled_at=timezone.now(),
        topic=topic,
        push_token=uuid.uuid4().hex + uuid.uuid4().hex,
        push_magic=str(uuid.uuid4()).upper(),
    )


def test_the_demo_certificate_is_shaped_like_apples_and_stored_like_an_import():
    out, _ = run("demo")
    record = PushCertificate.objects.get(active=True)
    assert f"demo push certificate created: {record.topic}" in out
    match = TOPIC.match(record.topic)
    assert match and uuid.UUID(match[1]).version == 4
    certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    # The topic is the subject's UID, read the way Apple's are.
    assert certificate.subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == record.topic
    assert pushcert.topic_of(certificate) == record.topic
    assert pushcert.is_demo(certificate) and certificate.issuer == certificate.subject
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (record.demo, record.development) == (True, True)
    # The key pairs with it, and is encrypted at rest like an imported one's.
    key = pushcert.load_private_key(bytes(record.private_key_pem))
    assert pushcert.same_public_key(certificate, key)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT private_key_pem FROM certs_pushcertificate WHERE id = %s", [record.pk]
        )
        (raw,) = cursor.fetchone()
    assert b"PRIVATE KEY" not in bytes(raw)
    entry = AuditEntry.objects.get(action="pushcert.imported")
    assert entry.details["source"] == "demo" and entry.details["demo"] is True


def test_running_it_again_keeps_the_certificate_or_renews_it_on_its_topic():
    first = demo()
    again, _ = run("demo")
    assert "demo push certificate kept" in again
    assert PushCertificate.objects.get(active=True).pk == first.pk
    # Close to expiry: a new certificate on the same topic (the simulated devices keep working).
    PushCertificate.objects.filter(pk=first.pk).update(
        not_after=timezone.now() + dt.timedelta(days=3)
    )
    renewed = ensure_demo_push_certificate(orphaned_devices=lambda topic: 0)
    assert renewed.created and renewed.certificate.pk != first.pk
    assert renewed.certificate.topic == first.topic and renewed.certificate.demo


def test_never_replaces_a_certificate_from_apple(tmp_path):
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    pushcert.import_push_certificate(certificate_pem, key_pem, orphaned_devices=lambda t: 0)
    with pytest.raises(CommandError, match="from Apple is imported"):
        run("demo")
    assert not PushCertificate.objects.filter(demo=True).exists()


def test_show_the_api_and_the_pages_say_it_is_a_demo(client):
    record = demo()
    out, _ = run("show")
    assert "demo:       yes" in out and "never to Apple" in out
    viewer = make_user("viewer-demo", VIEWER)
    client.force_login(viewer)
    body = client.get("/api/v1/certificates/push/").json()["push_certificate"]
    assert body["demo"] is True and body["topic"] == record.topic
    for page in ("/", "/certificates/", "/certificates/push/"):
        html = client.get(page).content.decode()
        assert BANNER in html, page
    assert 'class="badge notice">demo</span>' in client.get("/certificates/push/").content.decode()


def test_a_real_certificate_is_not_marked_demo(client):
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    pushcert.import_push_certificate(certificate_pem, key_pem, orphaned_devices=lambda t: 0)
    out, _ = run("show")
    assert "demo:" not in out
    client.force_login(make_user("viewer-real", VIEWER))
    assert client.get("/api/v1/certificates/push/").json()["push_certificate"]["demo"] is False
    assert BANNER not in client.get("/").content.decode()


def test_importing_apples_certificate_replaces_the_demo_without_force(tmp_path):
    record = demo()
    enrolled_device(record.topic)
    enrolled_device(record.topic)
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    (tmp_path / "cert.pem").write_bytes(certificate_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    out, err = run(
        "import", "--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem")
    )
    active = PushCertificate.objects.get(active=True)
    assert not active.demo and active.topic != record.topic
    assert f"REPLACES the demo certificate {record.topic}" in out
    assert "2 device(s) enrolled with the demo push certificate" in err
    assert "must enroll again" in err
    entry = AuditEntry.objects.filter(action="pushcert.imported").latest("id")
    assert entry.details["replaced_demo"] is True and entry.details["forced"] is False


def test_the_upload_page_says_the_demo_devices_must_enroll_again(client):
    record = demo()
    enrolled_device(record.topic)
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    client.force_login(make_user("admin-demo", ADMIN))
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        "/certificates/push/import/",
        {
            "source": "pem",
            "pem-certificate": SimpleUploadedFile("c.pem", certificate_pem),
            "pem-key": SimpleUploadedFile("k.pem", key_pem),
        },
        follow=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "enrolled with the demo push certificate" in html and "must enroll again" in html
    assert not PushCertificate.objects.get(active=True).demo


# -- pushes ----------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection is recorded and fails."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"a connection was opened: {args}")

    async def refuse_async(*args, **kwargs):
        refuse(*args[1:])

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse_async)
    monkeypatch.setattr(asyncio, "open_connection", refuse_async)
    return attempts


@pytest.mark.parametrize(
    "url, reason",
    [("", "MDM_APNS_URL is not set"), ("https://api.push.apple.com", "is Apple's")],
)
def test_a_demo_certificate_never_pushes_to_apple(settings, no_network, caplog, url, reason):
    settings.MDM_APNS_URL = url
    device = enrolled_device(demo().topic)
    summary = push_devices([device.pk], "manual")
    assert no_network == []
    assert (summary.sent, summary.not_attempted) == (0, 1)
    assert reason in summary.reason and "demo push certificate" in summary.reason
    attempt = PushAttempt.objects.get(device=device)
    assert attempt.status == 0 and reason in attempt.reason
    alert = Alert.objects.get(key="apns:certificate", resolved_at=None)
    assert reason in alert.message and "identity.apple.com" not in alert.message
    assert any(reason in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_a_demo_certificate_pushes_to_the_local_stand_in(settings, tmp_path):
    record = demo()
    device = enrolled_device(record.topic)
    trusted = record.certificate_pem.encode()  # the stand-in trusts the self-signed demo cert
    with APNsStandIn(tmp_path, pki=shared_pki(), trust_clients=trusted) as standin:
        settings.MDM_APNS_URL = standin.url
        settings.MDM_APNS_CA_FILE = str(standin.ca_file)
        summary = push_devices([device.pk], "manual")
        assert (summary.sent, summary.ok) == (1, 1), summary
        (request,) = standin.requests
    assert request.path == f"/3/device/{device.push_token}"
    assert request.headers["apns-topic"] == record.topic
    assert request.http_version == "2"
    assert record.topic in request.client_subject


def test_keep_real_leaves_apples_certificate_and_succeeds():
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    pushcert.import_push_certificate(certificate_pem, key_pem, orphaned_devices=lambda t: 0)
    out, _ = run("demo", "--keep-real")
    assert "from Apple is imported" in out and "kept, no demo certificate made" in out
    assert not PushCertificate.objects.filter(demo=True).exists()
    # Without a certificate from Apple, --keep-real makes the demo one as usual.
    PushCertificate.objects.all().delete()
    out, _ = run("demo", "--keep-real")
    assert "demo push certificate created" in out


def test_the_ca_file_is_read_at_each_push(settings, tmp_path):
    """The quickstart starts the worker before the simulator writes the stand-in's certificate:
    the client reads MDM_APNS_CA_FILE at each push, not once at start."""
    record = demo()
    device = enrolled_device(record.topic)
    trusted = record.certificate_pem.encode()
    with APNsStandIn(tmp_path, pki=shared_pki(), trust_clients=trusted) as standin:
        settings.MDM_APNS_URL = standin.url
        settings.MDM_APNS_CA_FILE = str(tmp_path / "later" / "apns-cert.pem")
        first = push_devices([device.pk], "manual")
        assert first.sent == 0 and "unusable" in first.reason
        (tmp_path / "later").mkdir()
        (tmp_path / "later" / "apns-cert.pem").write_bytes(standin.ca_file.read_bytes())
        second = push_devices([device.pk], "manual")
        assert (second.sent, second.ok) == (1, 1), second
