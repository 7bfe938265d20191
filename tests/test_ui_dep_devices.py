"""The DEP device list: every column, the filters (server, profile status, assigned profile,
enrolled, removed, a search), sorting, the link to the enrolled device, removed devices marked,
and assigning a DEP profile to selected rows with Apple's answer per serial shown."""

import re

import pytest

from enrollment.dep_models import DepDevice
from enrollment.dep_profiles import save_profile
from enrollment.dep_sync import sync_server
from mdm_portal.models import AuditEntry
from mdm_portal.roles import OPERATOR, VIEWER
from tests.dep_ui_support import (
    enrolled_device,
    make_dep_devices,
    make_enrollment,
    make_profile,
    make_server,
)
from tests.test_dep_profiles import tls_root  # noqa: F401 - a fixture: the server's TLS chain

pytestmark = pytest.mark.django_db

LIST = "/enrollments/dep/devices/"


@pytest.fixture
def fleet():
    main, branch = make_server("Main office"), make_server("Branch")
    staff = make_profile(main, "Staff iPhones")
    make_dep_devices(main, ["C02AAA0001"], profile_status="assigned", assigned_profile=staff)
    make_dep_devices(main, ["C02AAA0002"], profile_status="pushed", assigned_profile=staff)
    make_dep_devices(main, ["C02AAA0003"], profile_status="empty", model="MacBook Air")
    make_dep_devices(branch, ["C02BBB0001"], profile_status="", description="IPAD PRO SPACE")
    make_dep_devices(branch, ["C02BBB0002"], profile_status="removed", removed=True)
    enrolled_device("C02AAA0002", udid="UDID-ENROLLED-2")
    enrolled_device("C02BBB0001", udid="UDID-CHECKED-OUT", state="checked_out")
    return {"main": main, "branch": branch, "profile": staff}


def serials(page: str) -> list[str]:
    """The serial numbers of the table's rows, in order."""
    return re.findall(r'<td class="mono nowrap">(C02\w+)', page)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", {"C02AAA0001", "C02AAA0002", "C02AAA0003", "C02BBB0001", "C02BBB0002"}),
        ("profile_status=assigned", {"C02AAA0001"}),
        ("profile_status=empty", {"C02AAA0003", "C02BBB0001"}),
        ("profile_status=unassigned", {"C02AAA0003", "C02BBB0001", "C02BBB0002"}),
        ("enrolled=true", {"C02AAA0002"}),
        ("enrolled=false", {"C02AAA0001", "C02AAA0003", "C02BBB0001", "C02BBB0002"}),
        ("removed=true", {"C02BBB0002"}),
        ("removed=false&enrolled=false", {"C02AAA0001", "C02AAA0003", "C02BBB0001"}),
        ("q=macbook", {"C02AAA0003"}),
        ("q=c02bbb0001", {"C02BBB0001"}),
        ("q=ipad pro", {"C02BBB0001"}),
    ],
)
def test_the_filters(staff, fleet, query, expected):
    response = staff[VIEWER].get(f"{LIST}?{query}")
    assert response.status_code == 200
    assert set(serials(response.text)) == expected


def test_the_server_and_assigned_profile_filters(staff, fleet):
    main, profile = fleet["main"].pk, fleet["profile"].pk
    by_server = staff[VIEWER].get(f"{LIST}?server={main}").text
    assert set(serials(by_server)) == {"C02AAA0001", "C02AAA0002", "C02AAA0003"}
    by_profile = staff[VIEWER].get(f"{LIST}?assigned_profile={profile}").text
    assert set(serials(by_profile)) == {"C02AAA0001", "C02AAA0002"}
    none = staff[VIEWER].get(f"{LIST}?assigned_profile=null").text
    assert set(serials(none)) == {"C02AAA0003", "C02BBB0001", "C02BBB0002"}
    bad = staff[VIEWER].get(f"{LIST}?server=999999")
    assert bad.status_code == 200 and "The filter cannot be read" in bad.text


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("serial_number", ["C02AAA0001", "C02AAA0002", "C02AAA0003", "C02BBB0001", "C02BBB0002"]),
        ("-serial_number", ["C02BBB0002", "C02BBB0001", "C02AAA0003", "C02AAA0002", "C02AAA0001"]),
        ("-enrolled", ["C02AAA0002", "C02AAA0001", "C02AAA0003", "C02BBB0001", "C02BBB0002"]),
        ("server", ["C02BBB0001", "C02BBB0002", "C02AAA0001", "C02AAA0002", "C02AAA0003"]),
        ("profile_status", ["C02BBB0001", "C02AAA0001", "C02AAA0003", "C02AAA0002", "C02BBB0002"]),
    ],
)
def test_columns_sort(staff, fleet, sort, expected):
    assert serials(staff[VIEWER].get(f"{LIST}?sort={sort}").text) == expected


def test_each_row_says_what_apple_and_the_portal_know(staff, fleet):
    DepDevice.objects.filter(serial_number="C02AAA0001").update(assign_result="NOT_ACCESSIBLE")
    page = staff[VIEWER].get(f"{LIST}?sort=serial_number").text
    rows = dict(zip(serials(page), page.split('<td class="mono nowrap">')[1:], strict=True))
    assert "Staff iPhones" in rows["C02AAA0001"] and "not accessible" in rows["C02AAA0001"]
    assert (
        '<a href="/devices/UDID-ENROLLED-2/"><span class="badge enrolled">enrolled'
        in rows["C02AAA0002"]
    )
    assert '<span class="badge none">not enrolled</span>' in rows["C02AAA0003"]
    assert (
        '<a href="/devices/UDID-CHECKED-OUT/"><span class="badge none">checked out'
        in rows["C02BBB0001"]
    )
    assert 'class="badge none" title="Removed from this server in ABM' in rows["C02BBB0002"]
    assert re.search(r'<tr class="[^"]*\bremoved\b', page)
    for words in ("MacBook Air", "IPAD PRO SPACE", "pushed to the device", "no profile"):
        assert words in page, words


def test_rows_are_selectable_for_operators_only(staff, fleet):
    assert 'name="device"' not in staff[VIEWER].get(LIST).text
    page = staff[OPERATOR].get(LIST).text
    assert 'name="device" value="C02AAA0003" form="device-actions"' in page
    assert 'id="device-actions"' in page and ">Assign profile</button>" in page


@pytest.mark.usefixtures("tls_root")
def test_assigning_selected_rows_shows_apples_answer_per_serial(staff, dep, dep_server):
    dep.add_device("C02ASG0001")
    dep.add_device("C02ASG0002")
    sync_server(dep_server, actor="tests")
    profile = save_profile(
        dep_server,
        name="Lab iPads",
        enrollment=make_enrollment("Lab"),
        settings={"is_supervised": True},
        actor="tests",
    )
    make_dep_devices(dep_server, ["C02GONE0009"])  # Apple no longer holds it for this server
    chosen = {"profile": profile.pk, "device": ["C02ASG0001", "C02ASG0002", "C02GONE0009"]}
    response = staff[OPERATOR].post(f"{LIST}assign/", {**chosen, "next": LIST})
    assert response.status_code == 200
    page = response.text
    assert "Lab iPads assigned" in page and "1 of 3 devices not done" in page
    results = dict(
        re.findall(r'<td class="mono">(\w+)</td>\s*<td[^>]*><span class="badge (\w+)"', page)
    )
    assert results == {"C02ASG0001": "ok", "C02ASG0002": "ok", "C02GONE0009": "warning"}
    device = DepDevice.objects.get(serial_number="C02ASG0001")
    assert device.assigned_profile == profile and device.assign_result == "SUCCESS"
    # The list shows the result too.
    listing = staff[VIEWER].get(f"{LIST}?q=C02GONE0009").text
    assert "not accessible" in listing
    assert AuditEntry.objects.filter(actor="operator-user", action__startswith="dep.").exists()


def test_assigning_refuses_devices_of_another_server_and_unknown_serials(staff, fleet):
    profile = fleet["profile"]
    foreign = staff[OPERATOR].post(
        f"{LIST}assign/", {"profile": profile.pk, "device": ["C02AAA0001", "C02BBB0001"]}
    )
    assert foreign.status_code == 400
    assert "C02BBB0001 is not on Main office" in foreign.text
    unknown = staff[OPERATOR].post(f"{LIST}assign/", {"profile": profile.pk, "serials": "NOPE1"})
    assert unknown.status_code == 400
    assert "Not a DEP device of the portal: NOPE1" in unknown.text
    empty = staff[OPERATOR].post(f"{LIST}assign/", {"profile": profile.pk})
    assert empty.status_code == 400 and "select or list at least one device" in empty.text.lower()
    assert not DepDevice.objects.exclude(assign_result="").exists()
