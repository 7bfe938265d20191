"""Device sync against the stand-in over real HTTP: fetch paging, sync with op_types, the
cursor through echoes, expiry, invalidity, page bounds, network errors and crashes."""

import json

import pytest

from enrollment import dep_sync
from enrollment.dep_client import DepClient
from enrollment.dep_models import DepDevice, DepServer
from enrollment.dep_sync import sync_server
from mdm_portal.models import Alert, AuditEntry
from tests.dep_support import make_server

pytestmark = pytest.mark.django_db


def run(server: DepServer):
    return sync_server(DepServer.objects.get(pk=server.pk), actor="tests")


def devices(dep, *serials: str) -> None:
    for serial in serials:
        dep.add_device(serial)


def synced(server: DepServer) -> DepServer:
    """The server after a first, complete fetch."""
    outcome = run(server)
    assert outcome.ok, outcome.message
    return DepServer.objects.get(pk=server.pk)


def test_a_first_run_fetches_every_page_and_keeps_the_cursor(dep, dep_server):
    dep.page_size = 2
    devices(dep, "C01", "C02", "C03", "C04", "C05")
    outcome = run(dep_server)
    assert (outcome.ok, outcome.added, outcome.pages) == (True, 5, 3)
    assert dep.paths().count("POST /server/devices") == 3
    fetches = [r.body for r in dep.requests if r.path == "/server/devices"]
    assert "cursor" not in fetches[0] and fetches[1]["cursor"] and fetches[2]["cursor"]
    server = DepServer.objects.get(pk=dep_server.pk)
    assert server.cursor and not server.fetch_more
    assert server.last_sync_ok is True and server.failed_syncs == 0
    assert "fetch: 5 added" in server.last_sync_result
    assert sorted(DepDevice.objects.values_list("serial_number", flat=True)) == [
        "C01",
        "C02",
        "C03",
        "C04",
        "C05",
    ]
    c01 = DepDevice.objects.get(serial_number="C01")
    assert (c01.server, c01.model, c01.profile_status) == (
        server,
        dep.devices["C01"]["model"],
        "empty",
    )
    assert c01.device_assigned_date is not None


def test_later_runs_sync_from_the_cursor_and_apply_each_op_type(dep, dep_server):
    devices(dep, "C01", "C02")
    server = synced(dep_server)
    dep.add_device("C03")
    dep.modify_device("C01", color="SPACE GRAY", asset_tag="LIB-42")
    dep.delete_device("C02")
    outcome = run(server)
    assert (outcome.added, outcome.modified, outcome.deleted) == (1, 1, 1)
    sync = dep.requests[-1]
    assert sync.path == "/devices/sync" and sync.body["cursor"] == server.cursor
    c01, c02, c03 = (DepDevice.objects.get(serial_number=s) for s in ("C01", "C02", "C03"))
    assert (c01.color, c01.asset_tag, c01.op_type) == ("SPACE GRAY", "LIB-42", "modified")
    assert c02.removed and c02.op_type == "deleted" and c02.op_date is not None
    assert c03.op_type == "added" and not c03.removed
    entry = AuditEntry.objects.filter(action="dep.sync").latest("pk")
    assert (entry.details["added"], entry.details["modified"], entry.details["deleted"]) == (
        1,
        1,
        1,
    )
    before = AuditEntry.objects.filter(action="dep.sync").count()
    quiet = run(server)  # nothing new: recorded on the server, not in the audit log
    assert (quiet.ok, quiet.added, quiet.modified, quiet.deleted) == (True, 0, 0, 0)
    assert AuditEntry.objects.filter(action="dep.sync").count() == before


def test_a_sync_pages_until_apple_has_no_more(dep, dep_server):
    devices(dep, "C01")
    server = synced(dep_server)
    dep.page_size = 1
    devices(dep, "C02", "C03", "C04")
    outcome = run(server)
    assert (outcome.added, outcome.pages) == (3, 3)
    assert dep.paths()[-3:] == ["POST /devices/sync"] * 3


def test_a_device_that_comes_back_is_added_again(dep, dep_server):
    devices(dep, "C01")
    server = synced(dep_server)
    dep.delete_device("C01")
    assert run(server).deleted == 1
    dep.add_device("C01")
    assert run(server).added == 1
    assert not DepDevice.objects.get(serial_number="C01").removed


def test_an_echoed_cursor_stops_the_run_instead_of_looping(dep, dep_server):
    devices(dep, "C01")
    server = synced(dep_server)
    devices(dep, "C02")
    dep.echo_cursor = True
    outcome = run(server)
    assert outcome.ok and outcome.pages == 1 and "so as not to loop" in outcome.message
    assert dep.paths().count("POST /devices/sync") == 1
    server = DepServer.objects.get(pk=server.pk)
    assert "so as not to loop" in server.last_sync_result and server.last_sync_ok
    dep.echo_cursor = False
    assert run(server).ok and dep.paths()[-1] == "POST /devices/sync"


def test_an_echoed_cursor_during_a_fetch_goes_on_fetching_next_run(dep, dep_server):
    dep.page_size = 1
    devices(dep, "C01", "C02", "C03")
    dep.echo_cursor = True
    outcome = run(dep_server)
    assert outcome.pages == 2 and "so as not to loop" in outcome.message
    server = DepServer.objects.get(pk=dep_server.pk)
    assert server.fetch_more and server.cursor
    dep.echo_cursor = False
    outcome = run(server)
    assert outcome.ok and DepDevice.objects.count() == 3
    resumed = [r for r in dep.requests if r.path == "/server/devices"][2]
    assert resumed.body["cursor"] == server.cursor  # the fetch went on; it did not restart
    assert not DepServer.objects.get(pk=server.pk).fetch_more


@pytest.mark.parametrize("refusal", ["expired", "invalid"])
def test_a_refused_cursor_is_dropped_and_every_device_fetched_in_the_same_run(
    dep, dep_server, refusal
):
    devices(dep, "C01", "C02")
    server = synced(dep_server)
    dep.add_device("C03")
    if refusal == "expired":
        dep.expire_cursors()
    else:
        DepServer.objects.filter(pk=server.pk).update(cursor="not-a-cursor-of-apple")
    outcome = run(server)
    code = "EXPIRED_CURSOR" if refusal == "expired" else "INVALID_CURSOR"
    assert outcome.ok and code in outcome.message
    assert dep.paths()[-2:] == ["POST /devices/sync", "POST /server/devices"]
    assert "cursor" not in dep.requests[-1].body
    assert outcome.added == 1  # C01 and C02 were known already
    server = DepServer.objects.get(pk=server.pk)
    assert server.cursor and server.cursor != "not-a-cursor-of-apple"
    dep.add_device("C04")
    assert run(server).added == 1 and dep.paths()[-1] == "POST /devices/sync"


def test_a_network_error_is_recorded_and_the_next_run_succeeds(dep, dep_server):
    devices(dep, "C01")
    server = synced(dep_server)
    cursor = server.cursor
    dep.add_device("C02")
    dep.stop()
    outcome = run(server)
    assert not outcome.ok and "cannot reach" in outcome.message
    server = DepServer.objects.get(pk=server.pk)
    assert (server.last_sync_ok, server.failed_syncs, server.cursor) == (False, 1, cursor)
    assert "next run tries again" in server.last_sync_result
    assert not Alert.objects.filter(key=f"dep:sync:{server.pk}").exists()
    run(server)  # twice in a row: an alert
    alert = Alert.objects.get(key=f"dep:sync:{server.pk}", resolved_at=None)
    assert "2 times in a row" in alert.message
    dep.start()
    outcome = run(server)
    assert outcome.ok and outcome.added == 1
    server = DepServer.objects.get(pk=server.pk)
    assert (server.last_sync_ok, server.failed_syncs) == (True, 0)
    assert not Alert.objects.filter(key=f"dep:sync:{server.pk}", resolved_at=None).exists()


def test_the_page_bound_and_an_error_mid_fetch_leave_a_cursor_that_goes_on(
    dep, dep_server, settings
):
    dep.page_size = 2
    devices(dep, "C01", "C02", "C03", "C04", "C05")
    settings.MDM_DEP_SYNC_MAX_PAGES = 1
    outcome = run(dep_server)
    assert outcome.ok and outcome.added == 2 and "MDM_DEP_SYNC_MAX_PAGES" in outcome.message
    server = DepServer.objects.get(pk=dep_server.pk)
    assert server.fetch_more
    settings.MDM_DEP_SYNC_MAX_PAGES = 100
    dep.fail(500, times=3, path="/server/devices")
    assert not run(server).ok
    assert DepServer.objects.get(pk=server.pk).cursor == server.cursor  # untouched
    outcome = run(server)
    assert outcome.ok and outcome.added == 3 and DepDevice.objects.count() == 5
    assert dep.requests[-2].body["cursor"] == server.cursor


def test_a_crash_inside_a_page_keeps_the_cursor_with_the_pages_before_it(
    dep, dep_server, monkeypatch
):
    dep.page_size = 2
    devices(dep, "C01", "C02", "C03", "C04")
    apply, calls = dep_sync._Run._apply, []

    def crash_on_the_second_page(self, page, now):
        calls.append(page)
        apply(self, page, now)
        if len(calls) == 2:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(dep_sync._Run, "_apply", crash_on_the_second_page)
    (outcome,) = dep_sync.sync_all()
    assert not outcome.ok and "RuntimeError" in outcome.message
    first_cursor = [r for r in dep.requests if r.path == "/server/devices"][1].body["cursor"]
    server = DepServer.objects.get(pk=dep_server.pk)
    assert (server.cursor, server.fetch_more) == (first_cursor, True)
    assert sorted(DepDevice.objects.values_list("serial_number", flat=True)) == ["C01", "C02"]
    monkeypatch.setattr(dep_sync._Run, "_apply", apply)
    assert run(server).added == 2 and DepDevice.objects.count() == 4


def test_a_delete_for_a_device_now_of_another_server_leaves_it_alone(dep, db):
    first, second = make_server(dep, "first"), make_server(dep, "second")
    devices(dep, "C01")
    synced(first)
    assert run(second).added == 1  # reassigned in ABM: now the second server's
    dep.delete_device("C01")
    assert run(first).deleted == 0
    device = DepDevice.objects.get(serial_number="C01")
    assert device.server.name == "second" and not device.removed


def test_a_server_without_a_token_is_skipped_with_a_clear_result(dep, db):
    server = make_server(None, "no-token")
    outcome = run(server)
    assert outcome.skipped and not outcome.ok and "no server token" in outcome.message
    assert dep.requests == []
    assert "no server token" in DepServer.objects.get(pk=server.pk).last_sync_result


def test_no_secret_reaches_the_audit_log_or_the_result(dep, dep_server):
    devices(dep, "C01")
    run(dep_server)
    dep.expire_cursors()
    run(dep_server)
    session = bytes(DepServer.objects.get(pk=dep_server.pk).session_token).decode()
    server = DepServer.objects.get(pk=dep_server.pk)
    logged = json.dumps(list(AuditEntry.objects.values("details", "target")), default=str)
    for secret in (*dep.credentials.values(), session):
        assert secret not in logged and secret not in server.last_sync_result


def test_the_client_and_the_sync_share_one_session(dep, dep_server):
    devices(dep, "C01")
    with DepClient(dep_server) as client:
        client.account()
    run(dep_server)
    assert dep.sessions_issued == 1
