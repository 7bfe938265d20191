"""The device list (/devices/): access by role, search, filters, sorting and pagination, the
selection handed to the command form (devices.selection.devices_matching), bulk "add to group",
the CSV export. The device page lives in test_ui_device_page.py."""

import base64
import csv
import datetime as dt
import io
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.models import Device, DeviceGroup
from devices.selection import SelectionError, devices_matching, filter_querystring
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def device(udid: str, **fields) -> Device:
    defaults = {"state": Device.State.ENROLLED, "last_seen_at": NOW}
    return Device.objects.create(udid=udid, **{**defaults, **fields})


@pytest.fixture
def fleet() -> dict[str, Device]:
    """A small fleet whose every device answers a filter differently."""
    sales = DeviceGroup.objects.create(name="Sales")
    lab = DeviceGroup.objects.create(name="Lab")
    hour = dt.timedelta(hours=1)
    return {
        "ana": device(
            "UDID-ANA-0001",
            device_name="Ana's iPhone",
            serial_number="F17ZK3P9Q1",
            model_name="iPhone",
            product_name="iPhone16,1",
            platform="iOS",
            os_version="17.5.1",
            group=sales,
            last_seen_at=NOW - hour,
        ),
        "ben": device(
            "UDID-BEN-0002",
            device_name="Ben's iPad",
            serial_number="DMPX22AAQ1",
            model_name="iPad",
            product_name="iPad13,18",
            platform="iOS",
            os_version="16.7.8",
            group=lab,
            last_seen_at=NOW - 30 * hour,
        ),
        "mac": device(
            "UDID-MAC-0003",
            device_name="Design Mac",
            serial_number="C02FX1ABQ6L4",
            model_name="MacBook Pro",
            product_name="Mac15,7",
            platform="macOS",
            os_version="14.5",
            last_seen_at=NOW - 10 * 24 * hour,
            inactive_since=NOW - 3 * 24 * hour,
        ),
        "tv": device(
            "UDID-TV-0004",
            device_name="Lobby TV",
            model_name="Apple TV",
            platform="tvOS",
            os_version="170.1",  # not a 17.x: the prefix filter must not take it
            state=Device.State.PENDING,
            token_invalid_at=NOW,
            group=sales,
        ),
        "gone": device(
            "UDID-GONE-0005",
            device_name="Old iPhone",
            platform="iOS",
            os_version="17.0",
            state=Device.State.CHECKED_OUT,
            last_seen_at=None,
        ),
    }


def names(data) -> set[str]:
    return set(devices_matching(data).values_list("device_name", flat=True))


def listed(response) -> list[str]:
    """The device names a list page shows, in order."""
    table = response.context["table"]
    return [row.record.device_name for row in table.page.object_list]


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/devices/", "/devices/export.csv", "/devices/UDID-X/"])
def test_the_device_pages_need_login(client, path):
    Device.objects.create(udid="UDID-X")
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", ["/devices/", "/devices/export.csv", "/devices/UDID-X/"])
def test_every_role_reads_the_device_pages_and_no_role_gets_403(staff, path):
    Device.objects.create(udid="UDID-X", device_name="Some iPhone")
    for role in (VIEWER, OPERATOR, ADMIN):
        assert staff[role].get(path).status_code == 200, role
    assert staff[None].get(path).status_code == 403


def test_an_unknown_device_is_404(staff):
    assert staff[VIEWER].get("/devices/NO-SUCH-UDID/").status_code == 404


# --- search and filters (devices_matching is what the list shows) ---------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ana's", {"Ana's iPhone"}),  # name, any case
        ("f17zk3", {"Ana's iPhone"}),  # serial, a part of it
        ("udid-ben", {"Ben's iPad"}),  # UDID
        ("macbook", {"Design Mac"}),  # model name
        ("ipad13,18", {"Ben's iPad"}),  # product name
        ("iPhone", {"Ana's iPhone", "Old iPhone"}),
        ("  ", {"Ana's iPhone", "Ben's iPad", "Design Mac", "Lobby TV", "Old iPhone"}),
        ("100%", set()),  # wildcards are searched for, not obeyed
    ],
)
def test_search_looks_in_name_serial_udid_and_model(fleet, query, expected):
    assert names({"q": query}) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"state": "enrolled"}, {"Ana's iPhone", "Ben's iPad", "Design Mac"}),
        ({"state": "pending"}, {"Lobby TV"}),
        ({"state": "checked_out"}, {"Old iPhone"}),
        ({"platform": "iOS"}, {"Ana's iPhone", "Ben's iPad", "Old iPhone"}),
        ({"os_version": "17"}, {"Ana's iPhone", "Old iPhone"}),
        ({"os_version": "17.5"}, {"Ana's iPhone"}),
        ({"os_version": "14.5"}, {"Design Mac"}),
        ({"group": "none"}, {"Design Mac", "Old iPhone"}),
        ({"seen": "24h"}, {"Ana's iPhone", "Lobby TV"}),
        ({"seen": "7d"}, {"Ana's iPhone", "Ben's iPad", "Lobby TV"}),
        ({"seen": "stale"}, {"Design Mac", "Old iPhone"}),
        ({"seen": "inactive"}, {"Design Mac"}),
        ({"seen": "token_invalid"}, {"Lobby TV"}),
        ({"q": "iphone", "state": "enrolled"}, {"Ana's iPhone"}),
    ],
)
def test_filters(fleet, data, expected):
    assert names(data) == expected


def test_the_group_filter_takes_a_group_id(fleet):
    sales = DeviceGroup.objects.get(name="Sales")
    assert names({"group": str(sales.pk)}) == {"Ana's iPhone", "Lobby TV"}


def test_devices_matching_reads_query_strings_dicts_and_querydicts(fleet, rf):
    expected = {"Ana's iPhone", "Ben's iPad", "Old iPhone"}
    assert names("platform=iOS") == expected
    assert names("?platform=iOS&page=3&sort=-os") == expected  # page and sort are not filters
    assert names(rf.get("/devices/", {"platform": "iOS"}).GET) == expected
    assert names({}) == names("") == {d.device_name for d in fleet.values()}


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"state": "bogus"}, "state"),
        ({"group": "999999"}, "group"),
        ({"seen": "forever"}, "seen"),
        ({"platform": "Windows", "state": "enrolled"}, "platform"),
    ],
)
def test_a_filter_that_cannot_be_read_is_refused_never_widened(fleet, data, key):
    with pytest.raises(SelectionError) as refused:
        devices_matching(data)
    assert key in refused.value.errors
    assert str(refused.value).startswith(f"{key} must be")  # what the command line prints


def test_a_refused_filter_says_what_it_may_be():
    with pytest.raises(SelectionError, match="state must be one of enrolled, pending, checked_out"):
        devices_matching("state=lost")


def test_filter_querystring_keeps_only_the_filter(fleet):
    assert filter_querystring("q=ana&page=2&sort=name&state=enrolled&select=all") == (
        "q=ana&state=enrolled"
    )
    assert filter_querystring({}) == ""


def test_the_list_shows_filter_errors_next_to_the_field(staff, fleet):
    response = staff[VIEWER].get("/devices/?state=bogus")
    assert response.status_code == 400
    assert "Select a valid choice" in response.text
    assert 'class="field has-error"' in response.text
    assert listed(response) == []  # nothing rather than everything


# --- sorting and pagination ------------------------------------------------------------------


def test_the_list_sorts_by_name_by_default_and_by_each_column(staff, fleet):
    viewer = staff[VIEWER]
    assert listed(viewer.get("/devices/")) == [
        "Ana's iPhone",
        "Ben's iPad",
        "Design Mac",
        "Lobby TV",
        "Old iPhone",
    ]
    assert listed(viewer.get("/devices/?sort=-device_name"))[0] == "Old iPhone"
    newest = listed(viewer.get("/devices/?sort=-last_seen_at&state=enrolled"))
    assert newest == ["Ana's iPhone", "Ben's iPad", "Design Mac"]
    assert listed(viewer.get("/devices/?sort=serial_number"))[-1] == "Ana's iPhone"
    assert listed(viewer.get("/devices/?sort=group&group=none")) == ["Design Mac", "Old iPhone"]
    assert listed(viewer.get("/devices/?sort=os&platform=iOS")) == [
        "Ben's iPad",
        "Old iPhone",
        "Ana's iPhone",
    ]
    # (How "iPad" and "MacBook" compare is the database's collation.)
    by_model = Device.objects.filter(state="enrolled").order_by("model_name", "product_name")
    assert listed(viewer.get("/devices/?sort=model&state=enrolled")) == list(
        by_model.values_list("device_name", flat=True)
    )
    assert listed(viewer.get("/devices/?sort=state"))[0] == "Old iPhone"  # checked_out first


def test_pages_follow_each_other_without_counting_the_fleet(staff):
    Device.objects.bulk_create(
        Device(udid=f"UDID-{n:04d}", device_name=f"Device {n:03d}") for n in range(120)
    )
    viewer = staff[VIEWER]
    with CaptureQueriesContext(connection) as queries:
        first = viewer.get("/devices/")
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert len(queries.captured_queries) <= 8
    second, third = viewer.get("/devices/?page=2"), viewer.get("/devices/?page=3")
    shown = listed(first) + listed(second) + listed(third)
    assert shown == [f"Device {n:03d}" for n in range(120)]
    assert "Next →" in first.text and "Next →" not in third.text
    assert "devices 51–100" in second.text
    assert viewer.get("/devices/?page=abc").status_code == 200  # read as page 1
    assert viewer.get("/devices/?page=99").status_code == 200


# --- selecting and acting on the selection ---------------------------------------------------


def test_a_viewer_sees_no_selection_and_no_bulk_action(staff, fleet):
    page = staff[VIEWER].get("/devices/").text
    assert 'name="device"' not in page and 'id="device-actions"' not in page
    assert "Export all devices as CSV" in page
    operator_page = staff[OPERATOR].get("/devices/").text
    assert 'name="device" value="UDID-ANA-0001"' in operator_page
    assert "Send a command…" in operator_page and "Add to group" in operator_page


def test_selecting_all_that_match_counts_them_only_then(staff, fleet):
    operator = staff[OPERATOR]
    assert "match_count" not in operator.get("/devices/?platform=iOS").context
    response = operator.get("/devices/?platform=iOS&select=all")
    assert response.context["match_count"] == 3
    assert "All 3 devices that match this filter are selected." in response.text
    assert '<input type="hidden" name="filter" value="platform=iOS">' in response.text


def test_selected_devices_go_to_the_command_form(staff, fleet):
    response = staff[OPERATOR].post(
        "/devices/?platform=iOS",
        {"action": "command", "type": "DeviceLock", "device": ["UDID-ANA-0001", "UDID-BEN-0002"]},
    )
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/commands/new/"
    assert parse_qs(target.query) == {
        "device": ["UDID-ANA-0001", "UDID-BEN-0002"],
        "type": ["DeviceLock"],
    }


def test_every_device_that_matches_goes_to_the_command_form_as_its_filter(staff, fleet):
    response = staff[OPERATOR].post(
        "/devices/?q=iphone&state=enrolled&select=all",
        {"action": "command", "type": "", "scope": "matching", "filter": "q=iphone&state=enrolled"},
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query == {"filter": ["q=iphone&state=enrolled"]}
    assert names(query["filter"][0]) == {"Ana's iPhone"}


def test_the_command_choices_follow_the_role(staff, fleet):
    operator = staff[OPERATOR].get("/devices/").text
    admin = staff[ADMIN].get("/devices/").text
    assert (
        '<option value="DeviceLock">' in operator and '<option value="EraseDevice">' not in operator
    )
    assert '<option value="EraseDevice">' in admin and '<option value="ClearPasscode">' in admin
    refused = staff[OPERATOR].post(
        "/devices/", {"action": "command", "type": "EraseDevice", "device": ["UDID-ANA-0001"]}
    )
    assert refused.status_code == 400 and "Select a valid choice" in refused.text


def test_bulk_add_to_group_moves_the_devices_and_is_audited(staff, fleet):
    lab = DeviceGroup.objects.get(name="Lab")
    response = staff[OPERATOR].post(
        "/devices/?platform=iOS",
        {"action": "group", "group": str(lab.pk), "device": ["UDID-ANA-0001", "UDID-BEN-0002"]},
        REMOTE_ADDR="192.0.2.44",
    )
    assert response.status_code == 302 and response["Location"] == "/devices/?platform=iOS"
    assert set(lab.devices.values_list("udid", flat=True)) == {"UDID-ANA-0001", "UDID-BEN-0002"}
    entry = AuditEntry.objects.get(action="group.devices_added")
    assert entry.actor == "operator-user" and entry.address == "192.0.2.44"
    assert entry.target == "Lab"
    assert entry.details["devices"] == ["UDID-ANA-0001", "UDID-BEN-0002"]
    assert entry.details["moved"] == 1  # Ben was in it already
    followed = staff[OPERATOR].get(response["Location"])
    assert "1 device(s) added to the group Lab." in followed.text


def test_bulk_add_to_group_by_filter(staff, fleet):
    lab = DeviceGroup.objects.get(name="Lab")
    response = staff[OPERATOR].post(
        "/devices/?group=none&select=all",
        {"action": "group", "group": str(lab.pk), "scope": "matching", "filter": "group=none"},
    )
    assert response.status_code == 302 and response["Location"] == "/devices/?group=none"
    assert set(lab.devices.values_list("device_name", flat=True)) == {
        "Ben's iPad",
        "Design Mac",
        "Old iPhone",
    }


def test_a_viewer_cannot_act_on_devices(staff, fleet):
    lab = DeviceGroup.objects.get(name="Lab")
    for data in (
        {"action": "group", "group": str(lab.pk), "device": ["UDID-ANA-0001"]},
        {"action": "command", "type": "DeviceLock", "device": ["UDID-ANA-0001"]},
    ):
        assert staff[VIEWER].post("/devices/", data).status_code == 403
        assert staff[None].post("/devices/", data).status_code == 403
    assert Device.objects.get(udid="UDID-ANA-0001").group.name == "Sales"
    assert not AuditEntry.objects.filter(action__startswith="group.").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"action": "group", "device": ["UDID-ANA-0001"]},
            "Choose the group to add the devices to.",
        ),
        ({"action": "group", "group": "1"}, "Select at least one device"),
        ({"action": "command"}, "Select at least one device"),
        ({"action": "group", "group": "1", "filter": ""}, "Select at least one device"),
        (
            {"action": "group", "group": "1", "scope": "matching", "filter": "state=bogus"},
            "The filter cannot be read",
        ),
        ({"action": "delete", "device": ["UDID-ANA-0001"]}, "Select a valid choice"),
    ],
)
def test_a_bulk_action_that_does_not_hold_is_shown_on_the_list(staff, fleet, data, message):
    if data.get("group") == "1":
        data = {**data, "group": str(DeviceGroup.objects.get(name="Lab").pk)}
    response = staff[OPERATOR].post("/devices/?platform=iOS", data)
    assert response.status_code == 400
    assert message in response.text
    assert listed(response) == ["Ana's iPhone", "Ben's iPad", "Old iPhone"]  # its filter kept
    assert not AuditEntry.objects.filter(action__startswith="group.").exists()


def test_the_bulk_form_needs_its_csrf_token(fleet):
    from django.test import Client

    from tests.ui_support import make_user

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("olga", OPERATOR))
    refused = client.post(
        "/devices/", {"action": "group", "group": "1", "device": ["UDID-ANA-0001"]}
    )
    assert refused.status_code == 403


# --- the CSV export ---------------------------------------------------------------------------


def rows_of(response) -> list[dict]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="devices-')
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_is_the_filtered_list(staff, fleet):
    rows = rows_of(staff[VIEWER].get("/devices/export.csv?platform=iOS&sort=-os&page=2"))
    assert [row["udid"] for row in rows] == ["UDID-ANA-0001", "UDID-BEN-0002", "UDID-GONE-0005"]
    ana = rows[0]
    assert ana["name"] == "Ana's iPhone" and ana["group"] == "Sales"
    assert ana["os_version"] == "17.5.1" and ana["state"] == "enrolled"
    assert ana["last_seen_at"].startswith(str((NOW - dt.timedelta(hours=1)).date()))
    assert len(rows_of(staff[VIEWER].get("/devices/export.csv"))) == 5


def test_the_export_holds_no_secret_and_defuses_formulas(staff, fleet):
    unlock, bootstrap = b"unlock-\x01\x02-token", b"bootstrap-\x03-token"
    Device.objects.filter(udid="UDID-ANA-0001").update(
        push_token="ab" * 32,
        push_magic="PUSH-MAGIC-7781",
        device_name='=HYPERLINK("http://evil")',
    )
    ana = Device.objects.get(udid="UDID-ANA-0001")
    ana.unlock_token, ana.bootstrap_token = unlock, bootstrap
    ana.save(update_fields=["unlock_token", "bootstrap_token"])
    response = staff[VIEWER].get("/devices/export.csv")
    text = b"".join(response.streaming_content).decode()
    for secret in (unlock, bootstrap):
        assert secret.decode(errors="ignore") not in text
        assert base64.b64encode(secret).decode() not in text
        assert secret.hex() not in text
    assert "ab" * 32 not in text and "PUSH-MAGIC-7781" not in text
    assert "push_token" not in text.splitlines()[0]
    assert "'=HYPERLINK" in text


def test_an_export_with_a_filter_that_cannot_be_read_is_refused(staff, fleet):
    response = staff[VIEWER].get("/devices/export.csv?state=bogus")
    assert response.status_code == 400
    assert "The filter cannot be read" in response.text


def test_every_device_with_no_filter_is_every_device(staff, fleet):
    page = staff[OPERATOR].get("/devices/?select=all")
    assert "All 5 devices that match (every device) are selected." in page.text
    lab = DeviceGroup.objects.get(name="Lab")
    staff[OPERATOR].post(
        "/devices/?select=all",
        {"action": "group", "group": str(lab.pk), "scope": "matching", "filter": ""},
    )
    assert lab.devices.count() == 5
    command = staff[OPERATOR].post(
        "/devices/?select=all", {"action": "command", "scope": "matching", "filter": ""}
    )
    assert command["Location"] == "/commands/new/?filter="


def test_adding_to_a_group_installs_the_groups_profiles(staff, enrolled):
    import plistlib

    from commands.models import QueuedCommand
    from enrollment.library import assign, upload_profile

    lab = DeviceGroup.objects.create(name="Lab")
    wifi = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": "com.example.lab-wifi",
        "PayloadUUID": "LAB-WIFI-1",
        "PayloadContent": [
            {
                "PayloadType": "com.apple.wifi.managed",
                "PayloadVersion": 1,
                "PayloadIdentifier": "com.example.lab-wifi.1",
                "PayloadUUID": "LAB-WIFI-1-1",
            }
        ],
    }
    assign(upload_profile(plistlib.dumps(wifi)), group=lab, by="alice")
    response = staff[OPERATOR].post(
        "/devices/", {"action": "group", "group": str(lab.pk), "device": [enrolled.udid]}
    )
    assert QueuedCommand.objects.filter(
        device__udid=enrolled.udid, request_type="InstallProfile"
    ).exists()
    followed = staff[OPERATOR].get(response["Location"]).text
    assert "1 device(s) added to the group Lab; 1 profile install(s) queued." in followed


def test_the_command_form_names_what_the_list_selected(staff, fleet):
    operator = staff[OPERATOR]
    chosen = operator.post(
        "/devices/",
        {"action": "command", "type": "DeviceLock", "device": ["UDID-ANA-0001", "UDID-BEN-0002"]},
        follow=True,
    )
    assert chosen.status_code == 200
    assert "2 devices: Ana&#x27;s iPhone, Ben&#x27;s iPad" in chosen.text
    matching = operator.post(
        "/devices/?platform=iOS&select=all",
        {"action": "command", "scope": "matching", "filter": "platform=iOS"},
        follow=True,
    )
    assert "Every device matching platform iOS: 2 devices" in matching.text
