"""What the issue is done by, end to end: a script with only a token creates an enrollment
link, lists the fleet, sends a command to a group and reads every device's result; a real
Celery worker delivers every check-in and result, signed, to a MicroMDM-style receiver."""

import base64
import hashlib
import hmac
import json

import pytest
from django.db import connections

from devices.models import DeviceGroup
from mdm_portal.roles import OPERATOR
from tests.api_support import token_client
from tests.test_push_e2e import wait_for
from tests.test_workers import start_worker
from tests.ui_support import make_user
from tests.webhook_receiver import Receiver
from webhooks.registry import create_webhook

# Transactional: the worker reads what this test commits. (Its flush empties the rows that
# migrations installed, such as celery beat's schedule: transactional tests that read them sort
# before this module, as they do before test_push_e2e.)
pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "end-to-end-webhook-secret"


def signed(received) -> dict:
    digest = hmac.new(SECRET.encode(), received.body, hashlib.sha256).digest()
    assert received.headers["X-Hmac-Signature"] == base64.b64encode(digest).decode()
    return json.loads(received.body)


def test_a_script_with_a_token_and_a_webhook_receiver(make_device, settings, tmp_path):
    log_path = tmp_path / "worker.log"
    broker = {"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}
    with Receiver() as receiver:
        create_webhook(receiver.url, secret=SECRET, actor="tests")
        worker = start_worker(broker, settings.DATA_DIR, log_path)
        try:
            run(make_device, receiver, worker, log_path)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            connections.close_all()


def run(make_device, receiver, worker, log_path) -> None:
    script = token_client(make_user("script", OPERATOR), "fleet-script")
    # An enrollment link, its devices put in a group.
    created = script.post(
        "/api/v1/enrollments/", {"name": "Lab", "group": "Lab"}, format="json"
    ).json()
    assert created["link"].endswith("/") and "/enroll/" in created["link"]
    sims = [make_device() for _ in range(3)]
    for sim in sims:
        sim.enroll()
        patched = script.patch(f"/api/v1/devices/{sim.udid}/", {"group": "Lab"}, format="json")
        assert patched.json()["group"] == "Lab"
    assert DeviceGroup.objects.get(name="Lab").devices.count() == 3
    # The fleet.
    fleet = script.get("/api/v1/devices/", {"group": "Lab", "state": "enrolled"}).json()
    assert sorted(d["udid"] for d in fleet["results"]) == sorted(s.udid for s in sims)
    # One command for the group; every device answers.
    queued = script.post(
        "/api/v1/commands/",
        {"request_type": "DeviceInformation", "group": "Lab",
         "payload": {"Queries": ["DeviceName"]}},
        format="json",
    ).json()  # fmt: skip
    uuid = queued["command_uuid"]
    for index, sim in enumerate(sims):
        response = sim.idle()
        while response.body:
            command = response.plist()
            extra = {}
            if command["CommandUUID"] == uuid:
                extra = {"QueryResponses": {"DeviceName": f"Lab {index}"}}
            response = sim.report(command["CommandUUID"], **extra)
    detail = script.get(f"/api/v1/commands/{uuid}/").json()
    assert detail["progress"]["acknowledged"] == 3
    names = sorted(row["result"]["QueryResponses"]["DeviceName"] for row in detail["results"])
    assert names == ["Lab 0", "Lab 1", "Lab 2"]
    # The receiver got every check-in and every result, signed, from the worker.
    wait_for(
        lambda: sum(1 for r in receiver.requests
                    if json.loads(r.body).get("acknowledge_event", {}).get("command_uuid") == uuid)
        == 3,
        "the three results at the receiver",
        worker,
        log_path,
    )  # fmt: skip
    events = [signed(r) for r in receiver.requests]
    for sim in sims:
        topics = [
            e["topic"]
            for e in events
            if (e.get("checkin_event") or e.get("acknowledge_event") or {}).get("udid") == sim.udid
        ]
        assert topics[:2] == ["mdm.Authenticate", "mdm.TokenUpdate"]
        assert topics.count("mdm.Connect") >= 2  # Idle, then every result
    assert any(e["topic"] == "portal.enrollment.created" for e in events)
