"""API authentication and roles: tokens (hashed, shown once, revocable), 401 and 403 as JSON,
the browser's session, mdm_apitoken, the /api-tokens/ page, and audit entries that name the
token that made a write."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from mdm_portal.api_tokens import find_token, hash_key
from mdm_portal.models import ApiToken, AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.api_support import managed_devices, token_client
from tests.ui_support import client_for, make_user

pytestmark = pytest.mark.django_db


def test_no_token_is_a_401_json_error_asking_for_a_token(client):
    response = client.get("/api/v1/devices/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"error": response.json()["error"], "detail": None}
    assert "credentials" in response.json()["error"]


@pytest.mark.parametrize(
    "header", ["Token mdm_notakeyatall1234567890123456789012", "Token", "Token a b", "Token é"]
)
def test_a_bad_token_is_a_401(client, header):
    response = client.get("/api/v1/devices/", HTTP_AUTHORIZATION=header.encode().decode("latin-1"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "error" in response.json()


def test_a_token_is_stored_hashed_and_found_by_its_prefix():
    user = make_user("carol", VIEWER)
    client = token_client(user)
    token = ApiToken.objects.get()
    assert len(client.key) == 40 and client.key.startswith("mdm_")
    assert token.prefix == client.key[:12]
    assert token.key_sha256 == hash_key(client.key)
    assert client.key not in str(ApiToken.objects.values())
    assert find_token(client.key) == token
    assert find_token(client.key[:-1] + ("A" if client.key[-1] != "A" else "B")) is None
    assert client.get("/api/v1/devices/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_token_or_an_inactive_user_gets_401():
    user = make_user("dave", OPERATOR)
    client = token_client(user)
    assert client.get("/api/v1/devices/").status_code == 200
    call_command("mdm_apitoken", "revoke", ApiToken.objects.get().prefix, stdout=StringIO())
    assert client.get("/api/v1/devices/").status_code == 401
    other = token_client(user, "second")
    user.is_active = False
    user.save()
    assert other.get("/api/v1/devices/").status_code == 401


def test_the_token_carries_its_users_role(api):
    managed_devices(1)
    body = {"request_type": "DeviceLock", "devices": ["D-00000"]}
    for role in (VIEWER, OPERATOR, ADMIN):
        assert api[role].get("/api/v1/devices/").status_code == 200, role
    refused = api[VIEWER].post("/api/v1/commands/", body, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "this needs the operator role"
    assert api[None].get("/api/v1/devices/").status_code == 403
    assert api[OPERATOR].post("/api/v1/commands/", body, format="json").status_code == 201


def test_the_browser_session_works_and_needs_csrf_for_writes():
    user = make_user("erin", OPERATOR)
    browser = client_for(user)
    assert browser.get("/api/v1/devices/").status_code == 200
    strict = APIClient(enforce_csrf_checks=True)
    strict.force_login(user)
    response = strict.post("/api/v1/groups/", {"name": "Lab"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["error"]


def test_writes_are_audited_with_the_tokens_owner_name_and_address(api):
    response = api[OPERATOR].post(
        "/api/v1/groups/", {"name": "Lab"}, format="json", REMOTE_ADDR="198.51.100.4"
    )
    assert response.status_code == 201
    entry = AuditEntry.objects.get(action="group.created")
    assert entry.user.username == "operator-api" and entry.actor == "operator-api"
    assert entry.details["token"] == "operator-script"
    assert entry.address == "198.51.100.4"
    # A later request without a token does not inherit the scope.
    AuditEntry.objects.all().delete()
    call_command("mdm_apitoken", "create", "--user", "operator-api", stdout=StringIO())
    assert "token" not in AuditEntry.objects.get(action="api_token.created").details


def test_mdm_apitoken_create_prints_the_key_once_list_and_revoke():
    make_user("frank", ADMIN)
    out = StringIO()
    call_command("mdm_apitoken", "create", "--user", "frank", "--name", "sync", stdout=out)
    key = out.getvalue().splitlines()[1]
    assert key.startswith("mdm_") and len(key) == 40
    token = find_token(key)
    assert token.name == "sync" and token.user.username == "frank"
    listing = StringIO()
    call_command("mdm_apitoken", "list", stdout=listing)
    text = listing.getvalue()
    assert "sync" in text and "frank" in text and token.prefix in text and "active" in text
    assert key not in text
    call_command("mdm_apitoken", "revoke", str(token.pk), stdout=StringIO())
    listing = StringIO()
    call_command("mdm_apitoken", "list", stdout=listing)
    assert "revoked" in listing.getvalue()
    with pytest.raises(CommandError, match="already revoked"):
        call_command("mdm_apitoken", "revoke", str(token.pk), stdout=StringIO())
    with pytest.raises(CommandError, match="unknown user"):
        call_command("mdm_apitoken", "create", "--user", "nobody", stdout=StringIO())
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert "api_token.created" in actions and "api_token.revoked" in actions


def test_the_tokens_page_is_for_admins_shows_the_key_once_and_revokes(staff):
    assert staff[OPERATOR].get("/api-tokens/").status_code == 403
    page = staff[ADMIN].get("/api-tokens/")
    assert page.status_code == 200 and "Create a token" in page.text
    owner = make_user("grace", VIEWER)
    created = staff[ADMIN].post("/api-tokens/", {"user": owner.pk, "name": "reports"})
    assert created.status_code == 200
    token = ApiToken.objects.get(name="reports")
    key = created.text.split('<code id="new-key">')[1].split("</code>")[0]
    assert find_token(key) == token
    again = staff[ADMIN].get("/api-tokens/")
    assert key not in again.text and token.prefix in again.text
    confirm = staff[ADMIN].get(f"/api-tokens/{token.pk}/revoke/")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    done = staff[ADMIN].post(f"/api-tokens/{token.pk}/revoke/")
    assert done.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert staff[ADMIN].post("/api-tokens/", {"user": "", "name": ""}).status_code == 400


def test_the_audit_log_and_alerts_are_readable_by_viewers(api):
    api[OPERATOR].post("/api/v1/groups/", {"name": "Lab"}, format="json")
    log = api[VIEWER].get("/api/v1/audit/", {"action": "group."})
    assert log.status_code == 200
    assert [e["action"] for e in log.json()["results"]] == ["group.created"]
    assert log.json()["results"][0]["details"]["token"] == "operator-script"
    assert api[VIEWER].get("/api/v1/audit/", {"since": "not-a-date"}).status_code == 400
    assert api[VIEWER].get("/api/v1/alerts/").json()["results"] == []
    assert api[VIEWER].post("/api/v1/audit/", {}, format="json").status_code == 403
    assert api[ADMIN].post("/api/v1/audit/", {}, format="json").status_code == 405
