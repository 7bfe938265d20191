"""Login, roles and the pages of the shell: every staff page needs login and a role; the admin
is for superusers; logins are audited with their address; mdm_user manages accounts."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from commands.queue import EnqueueError, enqueue
from devices.models import Device
from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER, has_role, role_of
from tests.ui_support import PASSWORD, make_user

pytestmark = pytest.mark.django_db

PAGES = ["/", "/audit/"]


@pytest.mark.parametrize("path", PAGES)
def test_staff_pages_need_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_every_role_reads_and_a_user_without_role_gets_403(staff, path):
    for role in (VIEWER, OPERATOR, ADMIN):
        response = staff[role].get(path)
        assert response.status_code == 200, role
        assert f'<span class="rolebadge" title="your role">{role}</span>' in response.text
    refused = staff[None].get(path)
    assert refused.status_code == 403
    assert "Not allowed" in refused.text


def test_login_and_logout_are_audited_with_the_address():
    make_user("alice", VIEWER)
    client = Client(REMOTE_ADDR="192.0.2.7")
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and 'name="password"' in page.text
    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and "correct username and password" in wrong.text
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302
    actions = list(
        AuditEntry.objects.filter(target="alice").order_by("id").values_list("action", "address")
    )
    assert actions == [
        ("user.login_failed", "192.0.2.7"),
        ("user.logged_in", "192.0.2.7"),
        ("user.logged_out", "192.0.2.7"),
    ]
    assert "nope" not in str(AuditEntry.objects.values_list("details", flat=True))


def test_the_django_admin_is_for_superusers_only(staff):
    assert staff[ADMIN].get("/admin/").status_code == 302  # an admin role, not a superuser
    superuser = get_user_model().objects.create_superuser("root", "", PASSWORD)
    client = Client()
    client.force_login(superuser)
    assert client.get("/admin/").status_code == 200


def test_roles_rank_and_superusers_are_admins():
    viewer, operator = make_user("v", VIEWER), make_user("o", OPERATOR)
    superuser = get_user_model().objects.create_superuser("s", "", PASSWORD)
    assert [has_role(viewer, r) for r in (VIEWER, OPERATOR, ADMIN)] == [True, False, False]
    assert [has_role(operator, r) for r in (VIEWER, OPERATOR, ADMIN)] == [True, True, False]
    assert role_of(superuser) == ADMIN and role_of(make_user("n", None)) is None


def test_raw_commands_need_the_admin_role(enrolled):
    device = Device.objects.get(udid=enrolled.udid)
    with pytest.raises(EnqueueError, match="only an administrator"):
        enqueue(device, "DeviceLock", raw=True, user=make_user("op", OPERATOR))
    assert enqueue(device, "DeviceLock", raw=True, user=make_user("ad", ADMIN)).raw


def test_mdm_user_create_set_role_and_list():
    out = StringIO()
    call_command("mdm_user", "create", "carol", "--role", "viewer", stdout=out)
    password = out.getvalue().split("password: ")[1].strip()
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password(password) and role_of(carol) == VIEWER
    call_command("mdm_user", "set-role", "carol", "operator", stdout=StringIO())
    carol = get_user_model().objects.get(username="carol")
    assert role_of(carol) == OPERATOR
    listing = StringIO()
    call_command("mdm_user", "list", stdout=listing)
    assert "carol" in listing.getvalue() and "operator" in listing.getvalue()
    assert AuditEntry.objects.filter(action="user.role_set", target="carol").exists()


def test_the_demo_admin_has_the_admin_role():
    out = StringIO()
    call_command("mdm_init", "--demo-admin", "demo", stdout=out)
    assert role_of(get_user_model().objects.get(username="demo")) == ADMIN


def test_the_navigation_shows_admin_pages_to_admins_only(staff):
    admin_page = staff[ADMIN].get("/").text
    assert 'href="/api-tokens/"' in admin_page and 'href="/webhooks/"' in admin_page
    for role in (VIEWER, OPERATOR):
        page = staff[role].get("/").text
        assert 'href="/api-tokens/"' not in page and 'href="/webhooks/"' not in page
        assert 'href="/api/docs/"' in page
