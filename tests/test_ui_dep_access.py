"""The Automated Device Enrollment pages and who may use them: every page needs login and a
role; every role reads; an operator syncs and assigns; an admin adds servers, uploads tokens,
picks the auto-assign profile, makes and edits profiles and disowns. Refusals are 403 and
change nothing. The navigation leads there, and the dashboard's ADE card counts."""

import pytest

from enrollment.dep_models import DepServer
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.dep_ui_support import (
    enrolled_device,
    make_dep_devices,
    make_profile,
    make_server,
    with_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    server = with_token(make_server("Main office", org_name="Example School"))
    profile = make_profile(server)
    make_dep_devices(server, ["C02AAA0001", "C02AAA0002"])
    return {"server": server.pk, "profile": profile.pk}


READ = [
    "/enrollments/dep/",
    "/enrollments/dep/{server}/",
    "/enrollments/dep/devices/",
    "/enrollments/dep/profiles/",
    "/enrollments/dep/profiles/{profile}/",
]
ADMIN_PAGES = [
    "/enrollments/dep/new/",
    "/enrollments/dep/{server}/token/",
    "/enrollments/dep/{server}/disown/?device=C02AAA0001",
    "/enrollments/dep/profiles/new/",
    "/enrollments/dep/profiles/{profile}/edit/",
]
OPERATOR_PAGES = ["/enrollments/dep/devices/assign/"]


@pytest.mark.parametrize("path", READ + ADMIN_PAGES + OPERATOR_PAGES)
def test_every_page_needs_login(client, rows, path):
    response = client.get(path.format(**rows))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", READ)
def test_every_role_reads_and_a_user_without_one_is_refused(staff, rows, path):
    for role in (VIEWER, OPERATOR, ADMIN):
        response = staff[role].get(path.format(**rows))
        assert response.status_code == 200, role
        assert 'aria-current="page">ADE</a>' in response.text
    assert staff[None].get(path.format(**rows)).status_code == 403


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_refuse_operators_and_viewers(staff, rows, path):
    assert staff[ADMIN].get(path.format(**rows)).status_code == 200
    for role in (VIEWER, OPERATOR, None):
        assert staff[role].get(path.format(**rows)).status_code == 403, role


@pytest.mark.parametrize("path", OPERATOR_PAGES)
def test_operator_pages_refuse_viewers(staff, rows, path):
    for role in (OPERATOR, ADMIN):
        assert staff[role].get(path.format(**rows)).status_code == 200, role
    assert staff[VIEWER].get(path.format(**rows)).status_code == 403


def test_actions_refuse_the_wrong_role_and_change_nothing(staff, rows):
    server = rows["server"]
    sync = f"/enrollments/dep/{server}/sync/"
    assert staff[VIEWER].post(sync).status_code == 403
    auto = f"/enrollments/dep/{server}/auto-assign/"
    for role in (VIEWER, OPERATOR):
        assert staff[role].post(auto, {"profile": rows["profile"]}).status_code == 403
    new = staff[OPERATOR].post("/enrollments/dep/new/", {"name": "Second"})
    assert new.status_code == 403
    assign = {"profile": rows["profile"], "device": ["C02AAA0001"]}
    assert staff[VIEWER].post("/enrollments/dep/devices/assign/", assign).status_code == 403
    disown = {"device": ["C02AAA0001"], "confirm": "C02AAA0001"}
    assert staff[OPERATOR].post(f"/enrollments/dep/{server}/disown/", disown).status_code == 403
    assert list(DepServer.objects.values_list("name", "auto_assign_profile")) == [
        ("Main office", None)
    ]


def test_buttons_show_only_for_the_role_that_may_use_them(staff, rows):
    path = f"/enrollments/dep/{rows['server']}/"
    viewer, operator, admin = (staff[r].get(path).text for r in (VIEWER, OPERATOR, ADMIN))
    sync = ">Sync now</button>"
    assert sync not in viewer and sync in operator and sync in admin
    assert 'name="device"' not in viewer and 'name="device"' in operator  # row selection
    assert "Disown…" not in operator and "Disown…" in admin
    assert "Upload token" not in operator and "Upload token (.p7m)" in admin
    listing = [staff[r].get("/enrollments/dep/").text for r in (OPERATOR, ADMIN)]
    assert "Add server" not in listing[0] and "Add server" in listing[1]


def test_the_dashboard_counts_servers_devices_unassigned_and_not_enrolled(staff):
    empty = staff[VIEWER].get("/")
    assert "No DEP server yet" in empty.text
    server = make_server("Main office")
    other = make_server("Branch")
    make_dep_devices(server, ["S1", "S2", "S3"], profile_status="assigned")
    make_dep_devices(server, ["S4"], profile_status="empty")
    make_dep_devices(other, ["S5"], profile_status="removed")
    make_dep_devices(other, ["S6"], profile_status="", removed=True)  # gone from ABM
    enrolled_device("S1")
    enrolled_device("S2", state="checked_out")
    card = staff[VIEWER].get("/").text.split('id="ade-card"')[1].split("</section>")[0]
    expected = [
        ("Servers", '<a href="/enrollments/dep/">2</a>'),
        ("DEP devices", ">5</a>"),  # S6 left ABM
        ("Unassigned", '<span class="badge warning">2</span>'),  # S4 empty, S5 removed
        ("Not enrolled", ">4</a>"),  # S1 is enrolled; S2 checked out counts as not
    ]
    for label, value in expected:
        assert f"<dt>{label}</dt>" in card and value in card, label
