"""Registering webhooks: the API (admins only; the secret is returned once), mdm_webhook, and
the /webhooks/ page; every change audited, never with the secret."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mdm_portal.models import AuditEntry
from mdm_portal.roles import ADMIN, OPERATOR, VIEWER
from tests.webhook_receiver import Receiver
from webhooks.delivery import deliver_due
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db


def test_the_api_registers_lists_changes_and_removes_webhooks(api):
    body = {"url": "https://hooks.example.net/mdm", "events": ["mdm.Connect"]}
    for role in (VIEWER, OPERATOR):
        assert api[role].post("/api/v1/webhooks/", body, format="json").status_code == 403
        assert api[role].get("/api/v1/webhooks/").status_code == 403
    created = api[ADMIN].post("/api/v1/webhooks/", body, format="json")
    assert created.status_code == 201, created.content
    hook = created.json()
    assert hook["events"] == ["mdm.Connect"] and len(hook["secret"]) >= 32
    assert Webhook.objects.get().secret == hook["secret"].encode()
    listed = api[ADMIN].get("/api/v1/webhooks/")
    assert hook["secret"] not in listed.content.decode()
    assert api[ADMIN].get(f"/api/v1/webhooks/{hook['id']}/").json()["pending"] == 0
    bad = api[ADMIN].post("/api/v1/webhooks/", {"url": "ftp://x", "events": []}, format="json")
    assert bad.status_code == 400 and bad.json()["error"].startswith("url")
    topic = api[ADMIN].post("/api/v1/webhooks/", {**body, "events": ["mdm.Nope"]}, format="json")
    assert topic.status_code == 400 and topic.json()["error"].startswith("events")
    short = api[ADMIN].post("/api/v1/webhooks/", {**body, "secret": "short"}, format="json")
    assert short.status_code == 400 and short.json()["error"].startswith("secret")
    changed = api[ADMIN].patch(f"/api/v1/webhooks/{hook['id']}/", {"active": False},
                               format="json")  # fmt: skip
    assert changed.status_code == 200 and changed.json()["active"] is False
    pinged = api[ADMIN].post(f"/api/v1/webhooks/{hook['id']}/ping/")
    assert pinged.status_code == 202
    log = api[ADMIN].get(f"/api/v1/webhooks/{hook['id']}/deliveries/")
    assert [d["topic"] for d in log.json()["results"]] == ["portal.ping"]
    assert api[ADMIN].delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    for action in ("webhook.created", "webhook.changed", "webhook.pinged", "webhook.deleted"):
        assert action in actions
    assert hook["secret"] not in str(AuditEntry.objects.values_list("details", flat=True))
    entry = AuditEntry.objects.get(action="webhook.created")
    assert entry.details["token"] == "admin-script"


def test_mdm_webhook_add_list_deliveries_ping_retry_remove():
    with Receiver() as receiver:
        out = StringIO()
        call_command("mdm_webhook", "add", receiver.url, "--events", "portal.ping,mdm.Connect",
                     stdout=out)  # fmt: skip
        text = out.getvalue()
        assert "secret (shown once): " in text
        hook = Webhook.objects.get()
        assert hook.events == ["portal.ping", "mdm.Connect"]
        assert hook.secret.decode() == text.split("secret (shown once): ")[1].strip()
        call_command("mdm_webhook", "ping", str(hook.pk), stdout=StringIO())
        deliver_due()
        assert len(receiver.requests) == 1
    listing = StringIO()
    call_command("mdm_webhook", "list", stdout=listing)
    assert receiver.url in listing.getvalue() and hook.secret.decode() not in listing.getvalue()
    log = StringIO()
    call_command("mdm_webhook", "deliveries", str(hook.pk), stdout=log)
    assert "portal.ping" in log.getvalue() and "delivered" in log.getvalue()
    retry = StringIO()
    call_command("mdm_webhook", "retry", str(hook.pk), stdout=retry)
    assert "0 given-up" in retry.getvalue()
    with pytest.raises(CommandError, match="events: unknown topic"):
        call_command("mdm_webhook", "add", receiver.url, "--events", "bogus", stdout=StringIO())
    with pytest.raises(CommandError, match="no webhook 99"):
        call_command("mdm_webhook", "remove", "99", stdout=StringIO())
    call_command("mdm_webhook", "add", receiver.url, "--secret", "s" * 20, stdout=StringIO())
    call_command("mdm_webhook", "remove", str(hook.pk), stdout=StringIO())
    assert Webhook.objects.count() == 1


def test_the_webhooks_page_is_for_admins(staff):
    assert staff[OPERATOR].get("/webhooks/").status_code == 403
    page = staff[ADMIN].get("/webhooks/")
    assert page.status_code == 200 and "Add a webhook" in page.text
    added = staff[ADMIN].post("/webhooks/", {"url": "https://hooks.example.net/x",
                                             "events": ["mdm.Connect"]})  # fmt: skip
    assert added.status_code == 200
    hook = Webhook.objects.get()
    secret = added.text.split('<code id="new-secret">')[1].split("</code>")[0]
    assert hook.secret.decode() == secret
    assert secret not in staff[ADMIN].get("/webhooks/").text
    assert staff[ADMIN].post(f"/webhooks/{hook.pk}/ping/").status_code == 302
    detail = staff[ADMIN].get(f"/webhooks/{hook.pk}/")
    assert detail.status_code == 200 and "portal.ping" in detail.text
    assert staff[ADMIN].post(f"/webhooks/{hook.pk}/toggle/").status_code == 302
    assert Webhook.objects.get().active is False
    assert "cannot" not in staff[ADMIN].get(f"/webhooks/{hook.pk}/remove/").text
    assert staff[ADMIN].post(f"/webhooks/{hook.pk}/remove/").status_code == 302
    assert not Webhook.objects.exists()
    assert staff[ADMIN].post("/webhooks/", {"url": "not a url"}).status_code == 400
