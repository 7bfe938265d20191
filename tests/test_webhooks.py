"""Webhooks against a real local receiver (tests/webhook_receiver.py): the body and signature
a MicroMDM-format consumer expects for every check-in and result, retries after 500s with
backoff, a device's events in order, nothing lost while the receiver is down, giving up with
an alert; the outbox in the device's own transaction; the portal's own events."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import plistlib
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from commands.apns import push_devices
from commands.models import QueuedCommand
from commands.tasks import certificate_expiry_sweep
from devices.groups import get_or_create_group
from devices.models import Device
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from mdm_portal.alerts import open_alerts
from tests.api_support import managed_devices
from tests.webhook_receiver import Receiver, closed_port
from webhooks.delivery import deliver_due, deliver_pass
from webhooks.models import Delivery, DeliveryAttempt, WebhookEvent
from webhooks.outbox import emit
from webhooks.registry import create_webhook

pytestmark = pytest.mark.django_db

SECRET = "a-shared-secret-for-tests"


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def webhook(receiver):
    hook, _ = create_webhook(receiver.url, secret=SECRET, actor="tests")
    return hook


def verify(received) -> dict:
    """What a MicroMDM/NanoMDM consumer does: check the HMAC, then read the JSON."""
    expected = base64.b64encode(hmac.new(SECRET.encode(), received.body, hashlib.sha256).digest())
    assert received.headers["X-Hmac-Signature"] == expected.decode()
    assert received.headers["Content-Type"] == "application/json; charset=utf-8"
    event = json.loads(received.body)
    uuid.UUID(event["event_id"])
    assert dt.datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).tzinfo
    return event


def later(hours: float) -> dt.datetime:
    return timezone.now() + timedelta(hours=hours)


def test_every_check_in_and_result_arrives_signed_in_microMDMs_format(receiver, webhook, device):
    device.enroll()
    polled = device.idle()
    command_uuid = polled.plist()["CommandUUID"]
    device.report(command_uuid, QueryResponses={"DeviceName": "Kiosk"})
    assert device.checkin("SetBootstrapToken", BootstrapToken=b"bootstrap-secret").status == 200
    assert receiver.requests == []  # the device requests only wrote the outbox
    assert deliver_due()["delivered"] == 5
    events = [verify(r) for r in receiver.requests]
    assert [e["topic"] for e in events] == [
        "mdm.Authenticate", "mdm.TokenUpdate", "mdm.Connect", "mdm.Connect",
        "mdm.SetBootstrapToken",
    ]  # fmt: skip
    authenticate = events[0]["checkin_event"]
    assert authenticate["udid"] == device.udid and authenticate["url_params"] == {}
    message = plistlib.loads(base64.b64decode(authenticate["raw_payload"]))
    assert message["MessageType"] == "Authenticate" and message["SerialNumber"]
    token_update = plistlib.loads(base64.b64decode(events[1]["checkin_event"]["raw_payload"]))
    assert token_update["PushMagic"] == device.push_magic and "UnlockToken" not in token_update
    idle = events[2]["acknowledge_event"]
    assert idle["status"] == "Idle" and "command_uuid" not in idle
    result = events[3]["acknowledge_event"]
    assert result["udid"] == device.udid and result["status"] == "Acknowledged"
    assert result["command_uuid"] == command_uuid
    report = plistlib.loads(base64.b64decode(result["raw_payload"]))
    assert report["QueryResponses"] == {"DeviceName": "Kiosk"}
    bootstrap = plistlib.loads(base64.b64decode(events[4]["checkin_event"]["raw_payload"]))
    assert "BootstrapToken" not in bootstrap
    assert b"bootstrap-secret" not in b"".join(r.body for r in receiver.requests)


def test_the_raw_payload_is_the_exact_body_and_url_params_are_passed(receiver, webhook, device):
    device.enroll()
    body = plistlib.dumps({"UDID": device.udid, "Status": "Idle"}, fmt=plistlib.FMT_BINARY)
    assert device.send("/mdm/connect?site=paris", body, device.headers(body, "x")).status == 200
    deliver_due()
    connect = verify(receiver.requests[-1])["acknowledge_event"]
    assert base64.b64decode(connect["raw_payload"]) == body
    assert connect["url_params"] == {"site": "paris"}


def test_a_refused_check_in_or_a_rollback_writes_no_event(webhook, device):
    device.enroll()
    before = WebhookEvent.objects.count()
    assert device.checkin("GetToken", TokenServiceType="x").status == 400
    assert WebhookEvent.objects.count() == before
    with pytest.raises(RuntimeError), transaction.atomic():
        emit("portal.ping", {"webhook": webhook.pk})
        raise RuntimeError("rolled back")
    assert WebhookEvent.objects.count() == before


def test_without_webhooks_nothing_is_written(device):
    device.enroll()
    assert not WebhookEvent.objects.exists() and not Delivery.objects.exists()


def test_retries_after_500s_with_growing_backoff(receiver, webhook, settings):
    receiver.answers.extend([500, 503])
    emit("portal.ping", {"webhook": webhook.pk})
    start = timezone.now()
    assert deliver_pass(start) == {"delivered": 0, "retrying": 1, "failed": 0}
    delivery = Delivery.objects.get()
    first_wait = delivery.next_attempt_at - start
    assert timedelta(seconds=settings.MDM_WEBHOOK_RETRY_SECONDS / 2) <= first_wait
    assert deliver_pass(start)["retrying"] == 0  # not due yet
    assert deliver_pass(later(1))["retrying"] == 1
    delivery.refresh_from_db()
    assert delivery.last_status == 503 and "receiver says no" in delivery.last_error
    assert deliver_pass(later(2))["delivered"] == 1
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 3
    attempts = DeliveryAttempt.objects.filter(delivery=delivery).order_by("id")
    assert [a.status for a in attempts] == [500, 503, 200]
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same event, the same bytes, each time


def test_a_devices_events_go_out_in_order_and_others_are_not_held(receiver, webhook):
    first_try = set()

    def decide(received) -> int:
        event = json.loads(received.body)
        if event["portal_event"]["n"] == 1 and 1 not in first_try:
            first_try.add(1)
            return 500
        return 200

    receiver.decide = decide
    for n, udid in ((1, "A"), (2, "A"), (3, "B"), (4, "A")):
        emit("portal.ping", {"n": n}, udid=udid)
    now = timezone.now()
    assert deliver_due(now) == {"delivered": 1, "retrying": 1, "failed": 0}  # B went, A waits
    assert deliver_due(later(1))["delivered"] == 3
    order = [json.loads(r.body)["portal_event"]["n"] for r in receiver.requests]
    assert order.index(3) < order.index(2)  # B was not held behind A
    a_events = [n for n in order if n != 3]
    assert a_events == [1, 1, 2, 4]  # A's: the failed one again first, then the rest in order


def test_nothing_is_lost_while_the_receiver_is_down(settings):
    port = closed_port()
    hook, _ = create_webhook(f"http://127.0.0.1:{port}/hook", secret=SECRET, actor="tests")
    devices = managed_devices(2)
    for n in range(6):
        emit("portal.ping", {"n": n}, udid=devices[n % 2].udid)
    for hours in (0, 1, 2):
        counts = deliver_due(later(hours))
        assert counts["delivered"] == 0 and counts["retrying"] == 2
    attempt = DeliveryAttempt.objects.first()
    assert attempt.status is None and "Connect" in attempt.error
    with Receiver(port=port) as back:
        assert deliver_due(later(5))["delivered"] == 6
    assert sorted(json.loads(r.body)["portal_event"]["n"] for r in back.requests) == list(range(6))
    for device in devices:
        sequence = [
            json.loads(r.body)["portal_event"]["n"]
            for r in back.requests
            if json.loads(r.body)["event_id"]
            in set(WebhookEvent.objects.filter(udid=device.udid).values_list("event_id", flat=True))
        ]
        assert sequence == sorted(sequence)
    assert not Delivery.objects.exclude(state="delivered").exists()
    assert hook.deliveries.count() == 6


def test_gives_up_after_the_limit_with_an_alert_and_goes_on(receiver, webhook, settings, api):
    settings.MDM_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.answers.extend([500, 500])
    emit("portal.ping", {"n": 1}, udid="A")
    emit("portal.ping", {"n": 2}, udid="A")
    deliver_due(timezone.now())
    counts = deliver_due(later(1))
    assert counts["failed"] == 1 and counts["delivered"] == 1  # the next one goes on
    alert = open_alerts().get()
    assert alert.key == f"webhook:{webhook.pk}:gave-up" and "2 attempts" in alert.message
    assert Delivery.objects.get(state="failed").last_status == 500
    retried = api["admin"].post(f"/api/v1/webhooks/{webhook.pk}/retry/")
    assert retried.json() == {"count": 1} and not open_alerts().exists()
    assert deliver_due(later(2))["delivered"] == 1


def test_the_portals_own_events(receiver, webhook, ca, settings):
    settings.MDM_APNS_URL = "https://127.0.0.1:9"  # never reached: no push certificate
    group, _ = get_or_create_group("Lab", by="tests")
    enrollment = create_enrollment(EnrollmentSpec("Lab", group=group), by="tests")
    devices = managed_devices(2)
    push_devices([d.pk for d in devices], "manual")
    from certs.models import CertificateAuthority

    CertificateAuthority.objects.update(not_after=timezone.now() + timedelta(days=5, hours=1))
    certificate_expiry_sweep()
    certificate_expiry_sweep()  # the same stage: no second event
    deliver_due()
    events = [verify(r) for r in receiver.requests]
    topics = [e["topic"] for e in events]
    assert topics.count("portal.push.failed") == 2
    assert topics.count("portal.certificate.expiring") == 1
    created = next(e for e in events if e["topic"] == "portal.enrollment.created")
    assert created["portal_event"]["enrollment"]["link"].endswith(f"/enroll/{enrollment.token}/")
    assert created["portal_event"]["enrollment"]["group"] == "Lab"
    failed = next(e for e in events if e["topic"] == "portal.push.failed")["portal_event"]
    assert failed["udid"] in {d.udid for d in devices} and failed["status"] == 0
    assert failed["reason"] == "no push certificate"
    expiring = next(e for e in events if e["topic"] == "portal.certificate.expiring")
    assert expiring["portal_event"]["certificate"]["kind"] == "ca"
    assert expiring["portal_event"]["certificate"]["days_left"] == 5


def test_a_webhook_gets_only_the_topics_it_asked_for(receiver, device):
    create_webhook(receiver.url, events=["mdm.TokenUpdate"], secret=SECRET, actor="tests")
    device.enroll()
    device.idle()
    deliver_due()
    assert [verify(r)["topic"] for r in receiver.requests] == ["mdm.TokenUpdate"]
    assert QueuedCommand.objects.exists() and Device.objects.get().is_managed
