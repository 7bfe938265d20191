"""The Automated Device Enrollment API (/api/v1/dep/): DEP servers (add one with its
certificate, download the certificate, upload the token as a multipart file or base64 JSON,
sync now against the stand-in, disown), DEP devices (the page's filters, one by serial).
The roles are the pages'; no response, to anyone, carries a secret."""

import base64
import datetime as dt

import pytest
from cryptography import x509
from django.core.files.uploadedfile import SimpleUploadedFile

from enrollment.dep_models import DepDevice, DepServer
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.dep_tokens_support import make_server_token
from tests.dep_ui_support import (
    enrolled_device,
    make_dep_devices,
    make_profile,
    make_server,
    with_token,
)

pytestmark = pytest.mark.django_db

SERVERS = "/api/v1/dep/servers/"
DEVICES = "/api/v1/dep/devices/"
# What must never be in a response: the stand-in secrets of dep_ui_support.with_token and of
# make_server_token, the key's private half, and the names of the secret columns.
SECRETS = (
    "CS-SECRET",
    "AS-SECRET",
    "SESSION-SECRET",
    "CS_5e2f",
    "AS_d4e8",
    "PRIVATE KEY",
    "consumer_secret",
    "access_secret",
    "session_token",
    "private_key",
    "consumer_key",
    "CK_stand_in",
    "AT_stand_in",
)


def no_secrets(response) -> None:
    text = response.content.decode()
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, leaked


def test_servers_are_read_by_every_role_with_expiry_and_last_sync(api):
    server = with_token(make_server("Main office", org_name="Example School"), days_left=10.5)
    DepServer.objects.filter(pk=server.pk).update(last_sync_ok=False, last_sync_result="403")
    make_dep_devices(server, ["S1", "S2"], profile_status="assigned")
    make_dep_devices(server, ["S3"])
    for role in (VIEWER, OPERATOR, ADMIN):
        listed = api[role].get(SERVERS)
        assert listed.status_code == 200, role
        no_secrets(listed)
    assert api[None].get(SERVERS).status_code == 403
    body = api[VIEWER].get(f"{SERVERS}{server.pk}/").json()
    assert body["name"] == "Main office" and body["org_name"] == "Example School"
    assert body["token_days_left"] == 10 and body["token_severity"] == "warning"
    assert body["token_expiry"] and body["token_imported_at"]
    assert body["last_sync_ok"] is False and body["last_sync_result"] == "403"
    assert body["device_count"] == 3 and body["unassigned_count"] == 1
    assert len(body["certificate_sha256"]) == 64
    none_yet = api[VIEWER].get(f"{SERVERS}{make_server('New').pk}/").json()
    assert none_yet["token_severity"] is None and none_yet["token_expiry"] is None


def test_an_admin_adds_a_server_and_gets_its_certificate(api):
    assert api[OPERATOR].post(SERVERS, {"name": "Main office"}, format="json").status_code == 403
    created = api[ADMIN].post(SERVERS, {"name": "Main office"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    no_secrets(created)
    certificate = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert "Main office" in certificate.subject.rfc4514_string()
    download = api[VIEWER].get(f"{SERVERS}{body['id']}/certificate/")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("application/x-pem-file")
    assert download.content.decode() == body["certificate_pem"]
    assert download["Content-Disposition"] == 'attachment; filename="dep-main-office.pem"'
    again = api[ADMIN].post(SERVERS, {"name": "Main office"}, format="json")
    assert again.status_code == 400 and again.json()["error"].startswith("name:")
    entry = AuditEntry.objects.get(action="dep.server_created")
    assert entry.details["token"] == "admin-script"


def test_the_token_is_uploaded_as_a_file_or_as_base64_and_errors_are_clear(api, dep):
    server_id = api[ADMIN].post(SERVERS, {"name": "Main office"}, format="json").json()["id"]
    pem = api[ADMIN].get(f"{SERVERS}{server_id}/certificate/").content.decode()
    path = f"{SERVERS}{server_id}/token/"
    token = make_server_token(pem, **dep.credentials)
    file = SimpleUploadedFile("token.p7m", token, "application/pkcs7-mime")
    assert api[OPERATOR].post(path, {"file": file}, format="multipart").status_code == 403
    file = SimpleUploadedFile("token.p7m", token, "application/pkcs7-mime")
    uploaded = api[ADMIN].post(path, {"file": file}, format="multipart")
    assert uploaded.status_code == 200, uploaded.content
    no_secrets(uploaded)
    assert uploaded.json()["token_severity"] == "ok" and uploaded.json()["token_days_left"] >= 364
    assert uploaded.json()["org_name"] == "Example School"  # Apple's /account, read at once
    # A renewal as base64 JSON: the same server.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    renewal = base64.b64encode(make_server_token(pem, expiry=later, **dep.credentials)).decode()
    renewed = api[ADMIN].post(path, {"token_base64": renewal}, format="json")
    assert renewed.status_code == 200 and renewed.json()["id"] == server_id
    assert renewed.json()["token_days_left"] >= 399 and DepServer.objects.count() == 1
    junk = base64.b64encode(b"junk").decode()
    garbage = api[ADMIN].post(path, {"token_base64": junk}, format="json")
    assert garbage.status_code == 400 and "not a server token" in garbage.json()["error"]
    not_base64 = api[ADMIN].post(path, {"token_base64": "%%%"}, format="json")
    assert not_base64.status_code == 400 and not_base64.json()["error"].startswith("token_base64")
    other = make_server("Branch")
    foreign = base64.b64encode(make_server_token(other.key.certificate_pem)).decode()
    wrong = api[ADMIN].post(path, {"token_base64": foreign}, format="json")
    assert wrong.status_code == 400 and "another certificate" in wrong.json()["error"]
    assert api[ADMIN].post(path, {}, format="json").status_code == 400


def test_sync_now_through_the_api(api, dep, dep_server):
    dep.add_device("C02API0001")
    assert api[VIEWER].post(f"{SERVERS}{dep_server.pk}/sync/").status_code == 403
    response = api[OPERATOR].post(f"{SERVERS}{dep_server.pk}/sync/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["added"] == 1 and body["deleted"] == 0
    assert body["server"]["last_sync_ok"] is True and body["server"]["device_count"] == 1
    no_secrets(response)
    dep.fail(403, "T_C_NOT_SIGNED", times=10)
    failed = api[OPERATOR].post(f"{SERVERS}{dep_server.pk}/sync/").json()
    assert failed["ok"] is False and "T_C_NOT_SIGNED" in failed["message"]
    assert failed["server"]["last_sync_ok"] is False


def test_disown_is_for_admins_and_answers_per_serial(api, dep, dep_server):
    dep.add_device("C02OWN0001")
    api[OPERATOR].post(f"{SERVERS}{dep_server.pk}/sync/")
    path = f"{SERVERS}{dep_server.pk}/disown/"
    body = {"serials": ["C02OWN0001"]}
    assert api[OPERATOR].post(path, body, format="json").status_code == 403
    unknown = api[ADMIN].post(path, {"serials": ["NOPE"]}, format="json")
    assert unknown.status_code == 400 and "NOPE" in unknown.json()["error"]
    done = api[ADMIN].post(path, body, format="json")
    assert done.status_code == 200 and done.json() == {"results": {"C02OWN0001": "SUCCESS"}}
    dep.fail(500, "", times=10)
    failed = api[ADMIN].post(path, body, format="json")
    assert failed.status_code == 502 and failed.json()["error"]


@pytest.fixture
def fleet():
    main, branch = make_server("Main office"), make_server("Branch")
    profile = make_profile(main, "Staff iPhones")
    make_dep_devices(main, ["C02AAA0001"], profile_status="assigned", assigned_profile=profile)
    make_dep_devices(main, ["C02AAA0002"], profile_status="empty")
    make_dep_devices(branch, ["C02BBB0001"], removed=True)
    enrolled_device("C02AAA0001", udid="UDID-1")
    return {"main": main, "branch": branch, "profile": profile}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["C02AAA0001", "C02AAA0002", "C02BBB0001"]),
        ("enrolled=true", ["C02AAA0001"]),
        ("enrolled=false", ["C02AAA0002", "C02BBB0001"]),
        ("removed=true", ["C02BBB0001"]),
        ("profile_status=empty", ["C02AAA0002", "C02BBB0001"]),
        ("q=C02AAA0002", ["C02AAA0002"]),
        ("assigned_profile=null", ["C02AAA0002", "C02BBB0001"]),
    ],
)
def test_devices_filter_as_the_page_does(api, fleet, query, expected):
    response = api[VIEWER].get(f"{DEVICES}?{query}")
    assert response.status_code == 200, response.content
    assert [d["serial_number"] for d in response.json()["results"]] == expected


def test_devices_by_server_and_profile_and_one_by_serial(api, fleet):
    by_server = api[VIEWER].get(f"{DEVICES}?server={fleet['branch'].pk}").json()["results"]
    assert [d["serial_number"] for d in by_server] == ["C02BBB0001"]
    by_profile = api[VIEWER].get(f"{DEVICES}?assigned_profile={fleet['profile'].pk}").json()
    assert [d["serial_number"] for d in by_profile["results"]] == ["C02AAA0001"]
    one = api[VIEWER].get(f"{DEVICES}C02AAA0001/")
    assert one.status_code == 200
    body = one.json()
    assert body["enrolled"] is True and body["device"] == "UDID-1"
    assert body["assigned_profile"] == fleet["profile"].pk and body["server_name"] == "Main office"
    assert body["profile_status"] == "assigned"
    assert api[VIEWER].get(f"{DEVICES}C02AAA0002/").json()["device"] is None
    assert api[VIEWER].get(f"{DEVICES}NOPE/").status_code == 404
    assert api[None].get(DEVICES).status_code == 403
    assert api[VIEWER].get(f"{DEVICES}?server=999999").status_code == 400


def test_device_pages_follow_the_cursor(api):
    server = make_server("Main office")
    make_dep_devices(server, [f"C02P{n:04d}" for n in range(5)])
    first = api[VIEWER].get(f"{DEVICES}?page_size=2").json()
    assert len(first["results"]) == 2 and first["next"]
    seen = [d["serial_number"] for d in first["results"]]
    url = first["next"]
    while url:
        page = api[VIEWER].get(url).json()
        seen += [d["serial_number"] for d in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted(DepDevice.objects.values_list("serial_number", flat=True))
    assert len(seen) == len(set(seen)) == 5
