"""The DEP server pages: add a server and get its certificate for ABM with the steps, upload
its server token (and renew it, keeping the server), see a bad file's error, sync now against
the stand-in of Apple's DEP API and see the outcome and the devices, pick the auto-assign
profile, and disown selected devices behind a typed confirmation. Never a secret on a page."""

import datetime as dt
import re
import time

import pytest
from cryptography import x509
from django.utils import timezone

from enrollment.dep_models import DepDevice, DepServer
from enrollment.dep_sync import sync_server
from enrollment.tasks import sync_dep_server
from mdm_portal import broker
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.dep_tokens_support import make_server_token
from tests.dep_ui_support import make_dep_devices, make_profile, make_server, with_token

pytestmark = pytest.mark.django_db

SECRETS = ("CS-SECRET", "AS-SECRET", "SESSION-SECRET", "PRIVATE KEY", "CK_stand_in", "AT_stand_in")


def upload(client, server: DepServer, content: bytes, name: str = "token.p7m"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    file = SimpleUploadedFile(name, content, content_type="application/pkcs7-mime")
    return client.post(f"/enrollments/dep/{server.pk}/token/", {"file": file})


def certificate_of(client, server: DepServer) -> str:
    response = client.get(f"/enrollments/dep/{server.pk}/certificate.pem")
    assert response.status_code == 200
    return response.content.decode()


def test_adding_a_server_makes_its_key_and_offers_the_certificate_with_the_steps(staff):
    admin = staff[ADMIN]
    form = admin.get("/enrollments/dep/new/")
    assert form.status_code == 200 and 'name="name"' in form.text
    response = admin.post("/enrollments/dep/new/", {"name": "Main office"}, follow=True)
    server = DepServer.objects.get()
    assert response.redirect_chain[-1][0] == f"/enrollments/dep/{server.pk}/"
    page = response.text
    assert "Server Main office added" in page
    assert "Connect this server to Apple Business Manager" in page
    assert "Your MDM Servers" in page and "Download Token" in page
    assert f'href="/enrollments/dep/{server.pk}/certificate.pem"' in page
    assert '<span class="badge none">no token yet</span>' in page
    # The PEM is a certificate of the server's own key; the private half never leaves.
    pem = certificate_of(staff[VIEWER], server)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    assert "Main office" in certificate.subject.rfc4514_string()
    assert "PRIVATE KEY" not in pem and "PRIVATE KEY" not in page
    download = admin.get(f"/enrollments/dep/{server.pk}/certificate.pem")
    assert download["Content-Disposition"] == 'attachment; filename="dep-main-office.pem"'
    entry = AuditEntry.objects.get(action="dep.server_created")
    assert entry.actor == "admin-user" and entry.target == "Main office"


def test_a_taken_or_empty_name_is_refused_at_the_field(staff):
    make_server("Main office")
    taken = staff[ADMIN].post("/enrollments/dep/new/", {"name": "Main office"})
    assert taken.status_code == 400
    assert re.search(
        r'<ul class="errorlist"[^>]*><li>A DEP server named &#x27;Main office&#x27; already',
        taken.text,
    )
    empty = staff[ADMIN].post("/enrollments/dep/new/", {"name": "  "})
    assert empty.status_code == 400 and "errorlist" in empty.text
    assert DepServer.objects.count() == 1


def test_uploading_the_token_imports_it_and_renewal_keeps_the_server(staff, dep):
    staff[ADMIN].post("/enrollments/dep/new/", {"name": "Main office"})
    server = DepServer.objects.get()
    make_dep_devices(server, ["C02AAA0001"])
    pem = certificate_of(staff[ADMIN], server)
    expiry = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=200, hours=1)
    token = make_server_token(pem, expiry=expiry, **dep.credentials)
    response = upload(staff[ADMIN], server, token)
    assert response.status_code == 302
    page = staff[ADMIN].get(response["Location"]).text
    assert f"Server token imported for Main office, valid until {expiry:%Y-%m-%d}" in page
    assert f"token until {expiry:%Y-%m-%d} · 200 days left" in page
    assert "Connect this server to Apple Business Manager" not in page  # the steps are done
    assert "Example School" in page and "Stand-in MDM" in page  # Apple's /account, read at once
    assert "Renew: upload a new token" in page
    # A year later's token: the same server, its devices kept, the new expiry shown.
    later = expiry + dt.timedelta(days=165)
    renewed = upload(staff[ADMIN], server, make_server_token(pem, expiry=later, **dep.credentials))
    page = staff[ADMIN].get(renewed["Location"]).text
    assert "Server token renewed for Main office" in page and "365 days left" in page
    assert DepServer.objects.count() == 1 and server.devices.count() == 1
    imports = AuditEntry.objects.filter(action="dep.token_imported").order_by("id")
    assert [entry.details["renewal"] for entry in imports] == [False, True]
    assert all(entry.address == "127.0.0.1" for entry in imports)
    assert not any(secret in page for secret in dep.credentials.values())


def test_a_wrong_file_shows_a_clear_error_on_the_server_page_and_changes_nothing(staff):
    server = make_server("Main office")
    other = make_server("Branch")
    garbage = upload(staff[ADMIN], server, b"this is not a token at all")
    assert garbage.status_code == 400
    assert "This file is not a server token" in garbage.text
    assert '<ul class="errorlist"' in garbage.text and "<h1>Main office" in garbage.text
    # A real token, but for the other server's certificate.
    wrong = upload(staff[ADMIN], server, make_server_token(certificate_of(staff[ADMIN], other)))
    assert wrong.status_code == 400
    assert "encrypted to another certificate" in wrong.text
    server.refresh_from_db()
    assert server.token_imported_at is None and not server.consumer_key


def test_the_server_list_shows_expiry_badges_last_sync_and_counts(staff):
    ok = with_token(make_server("Main office", org_name="Example School"), days_left=200.5)
    DepServer.objects.filter(pk=ok.pk).update(
        last_sync_at=timezone.now(), last_sync_ok=True, last_sync_result="3 added"
    )
    soon = with_token(make_server("Branch"), days_left=10.5)
    DepServer.objects.filter(pk=soon.pk).update(
        last_sync_at=timezone.now(), last_sync_ok=False, last_sync_result="DEP API answered 403"
    )
    lapsed = with_token(make_server("Old"), days_left=-3)
    make_server("New")
    make_dep_devices(ok, ["S1", "S2"], profile_status="assigned")
    make_dep_devices(ok, ["S3"], profile_status="empty")
    make_dep_devices(ok, ["S4"], removed=True)
    page = staff[VIEWER].get("/enrollments/dep/").text
    rows = {name: row for row in page.split("<tr")[1:] for name in [_name(row)] if name}
    assert set(rows) == {"Main office", "Branch", "Old", "New"}
    assert (
        '<span class="badge ok">' in rows["Main office"]
        and "200 day(s) left" in rows["Main office"]
    )
    assert "Example School" in rows["Main office"]
    assert (
        '<span class="badge ok">ok</span>' in rows["Main office"]
        and "3 added" in rows["Main office"]
    )
    assert re.search(r'<td class="num">3</td>', rows["Main office"])  # S4 left ABM
    assert '<span class="badge warning">1</span>' in rows["Main office"]  # unassigned
    assert '<span class="badge warning">' in rows["Branch"] and "10 day(s) left" in rows["Branch"]
    assert '<span class="badge error">failed</span>' in rows["Branch"]
    assert "DEP API answered 403" in rows["Branch"]
    assert '<span class="badge expired">expired' in rows["Old"]
    assert "no token yet" in rows["New"] and "never synced" in rows["New"]
    assert "known once a token works" in rows["New"]
    assert lapsed.name == "Old"
    assert not any(secret in page for secret in SECRETS)


def _name(row: str) -> str | None:
    found = re.search(r'<a href="/enrollments/dep/\d+/">([^<]+)</a>', row)
    return found.group(1) if found else None


def test_the_server_list_sorts_by_token_expiry(staff):
    with_token(make_server("Later"), days_left=300)
    with_token(make_server("Sooner"), days_left=20)
    make_server("None yet")
    ascending = staff[VIEWER].get("/enrollments/dep/?sort=token").text
    assert _order(ascending, ["Sooner", "Later", "None yet"])
    descending = staff[VIEWER].get("/enrollments/dep/?sort=-token").text
    assert _order(descending, ["Later", "Sooner", "None yet"])


def _order(page: str, names: list[str]) -> bool:
    positions = [page.index(f">{name}</a>") for name in names]
    return positions == sorted(positions)


@pytest.fixture
def worker(monkeypatch):
    """A Celery worker that runs the sync task as soon as it is queued (in this thread)."""
    queued = []

    def run(args, **options):
        queued.append(args)
        return sync_dep_server.apply(args)

    monkeypatch.setattr(sync_dep_server, "apply_async", run)
    return queued


def sync_now(client, server, **data):
    response = client.post(f"/enrollments/dep/{server.pk}/sync/", data)
    assert response.status_code == 302
    assert re.match(rf"/enrollments/dep/{server.pk}/\?syncing=[\d.]+#sync$", response["Location"])
    return response["Location"]


def test_sync_now_runs_in_a_worker_and_shows_the_outcome_and_the_devices(
    staff, dep, dep_server, worker
):
    dep.add_device("C02SYNC0001", model="iPad Air", description="IPAD AIR 11")
    dep.add_device("C02SYNC0002")
    page = staff[VIEWER].get(f"/enrollments/dep/{dep_server.pk}/").text
    assert "C02SYNC0001" not in page and "never synced" in page
    page = staff[OPERATOR].get(sync_now(staff[OPERATOR], dep_server)).text
    assert worker == [(dep_server.pk, "operator-user")]
    banner = page.split('id="sync-banner"')[1].split("</div>")[0]
    assert "Synced ABM" in banner and "2 added, 0 modified, 0 deleted" in banner
    assert "C02SYNC0001" in page and "iPad Air" in page and "C02SYNC0002" in page
    assert '<span class="badge ok">ok</span>' in page
    dep.delete_device("C02SYNC0002")
    page = staff[OPERATOR].get(sync_now(staff[OPERATOR], dep_server)).text
    assert "0 added, 0 modified, 1 deleted" in page
    assert re.search(r'C02SYNC0002 <span class="badge none"[^>]*>removed</span>', page)
    assert DepDevice.objects.get(serial_number="C02SYNC0002").removed
    assert AuditEntry.objects.filter(action="dep.sync", actor="operator-user").count() == 2


def test_while_the_worker_syncs_the_page_polls_then_reloads(staff, dep, dep_server, monkeypatch):
    monkeypatch.setattr(sync_dep_server, "apply_async", lambda args, **options: object())
    dep.add_device("C02WAIT0001")
    location = sync_now(staff[OPERATOR], dep_server)
    page = staff[VIEWER].get(location).text
    since = location.split("syncing=")[1].split("#")[0]
    status = f"/enrollments/dep/{dep_server.pk}/sync/status/?syncing={since}"
    assert "Syncing ABM with Apple…" in page and f'hx-get="{status}"' in page
    assert 'hx-trigger="every 2s"' in page
    pending = staff[VIEWER].get(status)
    assert pending.status_code == 200 and "Syncing ABM with Apple…" in pending.text
    sync_server(dep_server, actor="worker")  # the worker gets to it
    done = staff[VIEWER].get(status)
    assert done.status_code == 204 and done["HX-Refresh"] == "true"
    assert "C02WAIT0001" in staff[VIEWER].get(location).text


def test_a_sync_no_worker_takes_up_can_run_in_the_request(staff, dep, dep_server, monkeypatch):
    monkeypatch.setattr(sync_dep_server, "apply_async", lambda args, **options: object())
    dep.add_device("C02SLOW0001")
    long_ago = f"{time.time() - 120:.6f}"
    page = staff[OPERATOR].get(f"/enrollments/dep/{dep_server.pk}/?syncing={long_ago}").text
    assert "No worker has taken it up yet" in page and ">Sync here and wait</button>" in page
    page = staff[OPERATOR].get(sync_now(staff[OPERATOR], dep_server, wait="1")).text
    assert "Synced ABM" in page and "C02SLOW0001" in page


def test_when_the_broker_refuses_the_sync_runs_in_the_request(staff, dep, dep_server, monkeypatch):
    def refuse(args, **options):
        raise ConnectionError("broker down")

    monkeypatch.setattr(sync_dep_server, "apply_async", refuse)
    dep.add_device("C02HERE0001")
    try:
        page = staff[OPERATOR].get(sync_now(staff[OPERATOR], dep_server)).text
    finally:
        broker.resume()
    assert "Synced ABM" in page and "C02HERE0001" in page


def test_a_failed_sync_says_why(staff, dep, dep_server, worker):
    dep.fail(403, "T_C_NOT_SIGNED", times=10)
    page = staff[OPERATOR].get(sync_now(staff[OPERATOR], dep_server)).text
    banner = page.split('id="sync-banner"')[1].split("</div>")[0]
    assert "The sync of ABM failed" in banner and "T_C_NOT_SIGNED" in banner
    assert '<span class="badge error">failed</span>' in page
    dep_server.refresh_from_db()
    assert dep_server.last_sync_ok is False


def test_sync_now_is_offered_only_once_a_token_is_imported(staff):
    server = make_server("Main office")
    page = staff[OPERATOR].get(f"/enrollments/dep/{server.pk}/").text
    assert re.search(r"<button[^>]*disabled[^>]*>Sync now</button>", page)


def test_the_auto_assign_profile_is_chosen_on_the_server_page(staff, dep_server):
    profile = make_profile(dep_server, "Staff iPads")
    path = f"/enrollments/dep/{dep_server.pk}/auto-assign/"
    page = staff[ADMIN].post(path, {"profile": profile.pk}, follow=True).text
    assert "New devices of ABM get Staff iPads." in page
    dep_server.refresh_from_db()
    assert dep_server.auto_assign_profile == profile
    assert '<span class="badge ok">auto-assign</span>' in page
    staff[ADMIN].post(path, {"profile": ""})
    dep_server.refresh_from_db()
    assert dep_server.auto_assign_profile is None
    foreign = make_profile(make_server("Branch"), "Branch iPads")
    refused = staff[ADMIN].post(path, {"profile": foreign.pk})
    assert refused.status_code == 400 and "errorlist" in refused.text


def test_disown_asks_for_the_count_then_shows_apples_answer_per_serial(staff, dep, dep_server):
    for serial in ("C02DIS0001", "C02DIS0002"):
        dep.add_device(serial)
    sync_server(dep_server, actor="tests")
    make_dep_devices(dep_server, ["C02GONE0003"])  # the portal knows it, Apple no longer does
    path = f"/enrollments/dep/{dep_server.pk}/disown/"
    chosen = ["C02DIS0001", "C02DIS0002", "C02GONE0003"]
    asked = staff[ADMIN].post(path, {"device": chosen})  # from the server page's selection
    assert asked.status_code == 200
    assert "Disown devices from ABM?" in asked.text and "Type “3”." in asked.text
    assert all(f'name="device" value="{s}"' in asked.text for s in chosen)
    wrong = staff[ADMIN].post(path, {"device": chosen, "confirm": "2"})
    assert wrong.status_code == 400 and "type “3” exactly to disown" in wrong.text.lower()
    assert not any("disown" in r.path for r in dep.requests)
    done = staff[ADMIN].post(path, {"device": chosen, "confirm": "3"})
    assert done.status_code == 200
    rows = re.findall(r'<td class="mono">(\w+)</td>\s*<td[^>]*>.*?badge (\w+)', done.text, re.S)
    assert dict(rows) == {"C02DIS0001": "ok", "C02DIS0002": "ok", "C02GONE0003": "warning"}
    assert "1 of 3 devices not done" in done.text
    assert "C02DIS0001" not in dep.devices


def test_disown_refuses_devices_of_another_server(staff, dep_server):
    other = make_server("Branch")
    make_dep_devices(other, ["C02OTHER01"])
    path = f"/enrollments/dep/{dep_server.pk}/disown/"
    response = staff[ADMIN].post(path, {"device": ["C02OTHER01"], "confirm": "C02OTHER01"})
    assert response.status_code == 400 and "C02OTHER01 is not on ABM" in response.text
    nothing = staff[ADMIN].get(path)
    assert nothing.status_code == 400 and "Nothing to disown" in nothing.text
