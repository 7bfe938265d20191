"""`mdm_dep sync|profile define|assign|list|devices|account|disown` against the stand-in."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from enrollment.dep_models import DepDevice, DepProfile, DepServer
from enrollment.models import Enrollment
from tests.dep_support import make_server

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("mdm_dep", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def https(settings):
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    settings.MDM_TLS_CERT_FILE = ""  # the portal's own chain: none made yet, so no anchors


@pytest.fixture
def enrollment(db) -> Enrollment:
    return Enrollment.objects.create(name="Staff iPads")


def test_sync_reports_each_server_and_fails_when_one_does(dep, dep_server):
    dep.add_device("C01")
    make_server(dep, "refused", consumer_secret="wrong")
    with pytest.raises(CommandError, match="the sync failed for refused"):
        run("sync")
    assert DepDevice.objects.filter(server=dep_server).count() == 1
    out = run("sync", "--token", "ABM")
    assert out.startswith("ABM: ok: sync: 0 added")


def test_profile_define_sends_the_flags_and_an_edit_keeps_the_rest(
    dep, dep_server, https, enrollment
):
    out = run(
        "profile",
        "define",
        "--name",
        "Staff",
        "--enrollment",
        enrollment.token,
        "--no-supervised",
        "--await-configured",
        "--not-removable",
        "--department",
        "IT",
        "--support-phone",
        "+1 555 0199",
        "--support-email",
        "help@example.org",
        "--skip",
        "AppleID",
        "Siri",
        "--auto-assign",
    )
    profile = DepProfile.objects.get(name="Staff")
    assert profile.profile_uuid in out and "from now on get it" in out
    sent = dep.profiles[profile.profile_uuid]
    assert (sent["is_supervised"], sent["await_device_configured"], sent["is_mdm_removable"]) == (
        False,
        True,
        False,
    )
    assert sent["department"] == "IT" and sent["skip_setup_items"] == ["AppleID", "Siri"]
    assert sent["support_phone_number"] == "+1 555 0199"
    assert DepServer.objects.get(pk=dep_server.pk).auto_assign_profile == profile
    out = run(
        "profile", "define", "--name", "Staff", "--enrollment", str(enrollment.pk), "--supervised"
    )
    edited = DepProfile.objects.get(pk=profile.pk)
    assert "defined again" in out and edited.profile_uuid != profile.profile_uuid
    again = dep.profiles[edited.profile_uuid]
    assert again["is_supervised"] is True and again["department"] == "IT"


def test_profile_define_refusals_are_command_errors(dep, dep_server, https, enrollment):
    with pytest.raises(CommandError, match="unknown Setup Assistant panes"):
        run("profile", "define", "--name", "P", "--enrollment", enrollment.token, "--skip", "Nope")
    with pytest.raises(CommandError, match="no enrollment"):
        run("profile", "define", "--name", "P", "--enrollment", "missing")
    dep.fail(400, "CONFIG_URL_INVALID", path="/profile")
    with pytest.raises(CommandError, match="CONFIG_URL_INVALID"):
        run("profile", "define", "--name", "P", "--enrollment", enrollment.token)


def test_profile_assign_and_list(dep, dep_server, https, enrollment):
    for serial in ("C01", "C02", "C03"):
        dep.add_device(serial)
    run("sync")
    run("profile", "define", "--name", "Staff", "--enrollment", enrollment.token)
    out = run("profile", "assign", "Staff", "C01")
    assert "C01" in out and "SUCCESS" in out
    dep.assign_results = {"C03": "NOT_ACCESSIBLE"}
    with pytest.raises(CommandError, match="1 of 2 device"):
        run("profile", "assign", "Staff", "--unassigned")
    assert dep.requests[-1].body["devices"] == ["C02", "C03"]
    listing = run("profile", "list")
    assert "Staff" in listing and "Staff iPads" in listing
    assert listing.splitlines()[1].split()[-1] == "2"  # C01 and C02 have it


def test_devices_as_a_table_and_as_json(dep, dep_server):
    dep.add_device("C01", model="iPhone 15", os="iOS")
    dep.add_device("C02")
    run("sync")
    dep.delete_device("C02")
    run("sync")
    table = run("devices")
    assert "C01" in table and "iPhone 15" in table and "C02" not in table
    rows = json.loads(run("devices", "--json", "--removed"))
    assert [(r["serial_number"], r["removed"]) for r in rows] == [("C01", False), ("C02", True)]
    assert rows[0]["server"] == "ABM" and rows[1]["op_type"] == "deleted"


def test_details_asks_apple_now_and_updates_the_record(dep, dep_server):
    dep.add_device("C01", asset_tag="old")
    run("sync")
    dep.devices["C01"]["asset_tag"] = "TAG-7"  # changed in ABM, no sync since
    details = json.loads(run("details", "C01", "NOPE1"))
    assert dep.requests[-1].body == {"devices": ["C01", "NOPE1"]}
    assert details["C01"]["asset_tag"] == "TAG-7"
    assert details["NOPE1"]["response_status"] == "NOT_FOUND"
    assert DepDevice.objects.get(serial_number="C01").asset_tag == "TAG-7"
    assert not DepDevice.objects.filter(serial_number="NOPE1").exists()


def test_account_is_shown_and_kept_on_the_server(dep, dep_server):
    out = run("account")
    assert "Example School" in out
    server = DepServer.objects.get(pk=dep_server.pk)
    assert (server.server_name, server.org_name) == ("Stand-in MDM", "Example School")
    assert server.server_uuid == dep.account["server_uuid"]


def test_disown_asks_for_yes_and_marks_what_apple_disowned(dep, dep_server):
    dep.add_device("C01")
    run("sync")
    with pytest.raises(CommandError, match="--yes"):
        run("disown", "C01")
    assert "POST /devices/disown" not in dep.paths()
    with pytest.raises(CommandError, match="1 of 2"):
        run("disown", "C01", "ELSEWHERE1", "--yes")
    assert dep.requests[-1].body == {"devices": ["C01", "ELSEWHERE1"]}
    device = DepDevice.objects.get(serial_number="C01")
    assert device.removed and device.op_type == "disowned"
