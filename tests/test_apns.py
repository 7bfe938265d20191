"""The APNs client against the HTTP/2 stand-in (tests/apns_standin.py): real TLS with client
certificates, real HTTP/2 streams, APNs' answers.

Retries: a device whose push was retried (429 / 5xx) gets ONE PushAttempt with the final
answer, its reason saying how many retries it took ("after 2 retries"); the stand-in's
records show every HTTP request.
"""

import json
import socket
import ssl
import time
import uuid

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certs.models import PushCertificate
from commands import apns as apns_client
from commands import apns_config
from commands.apns import push_devices
from commands.apns_config import PRODUCTION_URL, apns_base_url
from commands.models import PushAttempt
from devices.models import Device
from mdm_portal.models import Alert
from tests.apns_fixtures import apns_fixture  # noqa: F401
from tests.apns_standin import StandInPKI, install_push_certificate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Backoff and reconnect pauses in milliseconds, not seconds."""
    monkeypatch.setattr(apns_client, "RETRY_BASE_SECONDS", 0.01)
    monkeypatch.setattr(apns_client, "RECONNECT_PAUSE_SECONDS", 0.01)


def make_devices(count: int, **fields) -> list[Device]:
    now = timezone.now()
    values = {"state": "enrolled", "enrolled_at": now} | fields
    return [
        Device.objects.create(
            udid=f"UDID-{uuid.uuid4()}",
            push_token=uuid.uuid4().hex + uuid.uuid4().hex,  # 64 hex digits
            push_magic=str(uuid.uuid4()).upper(),
            **values,
        )
        for _ in range(count)
    ]


def ids(devices: list[Device]) -> list[int]:
    return [device.pk for device in devices]


def attempt(device: Device) -> PushAttempt:
    return PushAttempt.objects.get(device=device)


def open_alert(key: str) -> Alert | None:
    return Alert.objects.filter(key=key, resolved_at=None).first()


# -- what goes on the wire ---------------------------------------------------------------------


def test_push_is_the_mdm_payload_on_the_certificate_topic(apns, settings):
    (device,) = make_devices(1)
    before = int(time.time())

    summary = push_devices([device.pk], "manual")

    assert (summary.sent, summary.ok, summary.failed, summary.not_attempted) == (1, 1, 0, 0)
    assert summary.results == [(device.udid, 200, "")]
    (request,) = apns.requests
    assert request.method == "POST"
    assert request.path == f"/3/device/{device.push_token}"
    assert request.http_version == "2"
    assert request.body == f'{{"mdm":"{device.push_magic}"}}'.encode()  # exactly, no "aps"
    assert json.loads(request.body) == {"mdm": device.push_magic}
    headers = request.headers
    assert headers["apns-topic"] == apns.push_certificate.topic
    assert headers["apns-topic"].startswith("com.apple.mgmt.External.")
    assert headers["apns-push-type"] == "mdm"
    assert headers["apns-priority"] == "10"
    expiration = int(headers["apns-expiration"])
    assert expiration > before
    assert abs(expiration - before - settings.MDM_APNS_EXPIRATION_SECONDS) < 60
    # The TLS client certificate was the push certificate.
    assert f"UID={apns.push_certificate.topic}" in request.client_subject

    recorded = attempt(device)
    assert (recorded.kind, recorded.status, recorded.reason) == ("manual", 200, "")
    assert recorded.apns_id  # APNs' apns-id header, kept
    device.refresh_from_db()
    assert device.last_push_at is not None
    assert device.token_invalid_at is None


def test_many_pushes_share_one_http2_connection(apns):
    devices = make_devices(100)

    summary = push_devices(ids(devices), "command")

    assert summary.ok == 100
    requests = apns.requests
    assert len(requests) == 100
    assert {request.http_version for request in requests} == {"2"}
    assert len(apns.connections()) == 1  # 100 streams, one connection
    assert len({request.client for request in requests}) == 1
    assert apns.handshakes == 1
    assert {request.token for request in requests} == {d.push_token for d in devices}


def test_pushes_are_concurrent_streams(apns):
    devices = make_devices(40)
    apns.latency = 0.3  # each answer takes 300 ms: one at a time would take 12 s

    started = time.monotonic()
    summary = push_devices(ids(devices), "command")

    assert summary.ok == 40
    assert time.monotonic() - started < 4


# -- mutual TLS --------------------------------------------------------------------------------


def test_standin_refuses_a_client_without_the_push_certificate(apns):
    trust_only = ssl.create_default_context(cafile=str(apns.ca_file))  # but no client cert
    client = httpx.Client(http1=False, http2=True, verify=trust_only)
    with client, pytest.raises(httpx.TransportError):  # TLS: certificate required
        client.post(f"{apns.url}/3/device/{'ab' * 32}", content=b'{"mdm":"x"}')
    assert apns.requests == []


def test_push_certificate_apns_does_not_trust_is_refused_and_alerts(apns, tmp_path):
    devices = make_devices(3)
    install_push_certificate(StandInPKI.create(tmp_path / "other-ca"))  # not the stand-in's CA

    summary = push_devices(ids(devices), "command")

    assert apns.requests == []
    assert summary.not_attempted == 3 and summary.ok == 0
    for device in devices:
        recorded = attempt(device)
        assert recorded.status == 0
        assert recorded.reason.startswith("no answer from APNs: ")
    alert = open_alert("apns:connection")
    assert alert is not None and apns.url in alert.message


# -- APNs' answers -----------------------------------------------------------------------------


def test_invalid_tokens_are_marked_and_skipped_next_time(apns):
    unregistered, bad, good = make_devices(3)
    apns.answer(unregistered.push_token, 410, "Unregistered")
    apns.answer(bad.push_token, 400, "BadDeviceToken")

    summary = push_devices(ids([unregistered, bad, good]), "command")

    assert (summary.ok, summary.invalid_tokens, summary.failed) == (1, 2, 0)
    assert (attempt(unregistered).status, attempt(unregistered).reason) == (410, "Unregistered")
    assert (attempt(bad).status, attempt(bad).reason) == (400, "BadDeviceToken")
    for device in (unregistered, bad):
        device.refresh_from_db()
        assert device.token_invalid_at is not None
        assert device.last_push_at is None
    good.refresh_from_db()
    assert good.token_invalid_at is None and good.last_push_at is not None

    before = len(apns.requests)
    again = push_devices(ids([unregistered, bad, good]), "command")

    assert [r.token for r in apns.requests[before:]] == [good.push_token]
    assert again.ok == 1 and again.skipped == 2
    skipped = {udid: reason for udid, status, reason in again.results if status == 0}
    assert skipped[bad.udid].startswith("skipped: push token invalid since")
    assert PushAttempt.objects.filter(device=bad).count() == 1  # no attempt for a skip


def test_other_client_errors_are_recorded_and_the_batch_goes_on(apns):
    wrong_topic, *others = make_devices(5)
    apns.answer(wrong_topic.push_token, 400, "DeviceTokenNotForTopic")

    summary = push_devices(ids([wrong_topic, *others]), "command")

    assert (summary.ok, summary.failed, summary.invalid_tokens) == (4, 1, 0)
    recorded = attempt(wrong_topic)
    assert (recorded.status, recorded.reason) == (400, "DeviceTokenNotForTopic")
    wrong_topic.refresh_from_db()
    assert wrong_topic.token_invalid_at is None
    assert summary.reason == ""


def test_429_is_retried_until_it_succeeds(apns):
    throttled, other = make_devices(2)
    apns.fail_first(throttled.push_token, 2, status=429)

    summary = push_devices(ids([throttled, other]), "command")

    assert summary.ok == 2
    tokens = [request.token for request in apns.requests]
    assert tokens.count(throttled.push_token) == 3  # two 429s, then 200
    recorded = attempt(throttled)  # one attempt per device: the final answer
    assert (recorded.status, recorded.reason) == (200, "after 2 retries")
    assert recorded.apns_id


def test_server_errors_are_retried_then_recorded(apns, settings):
    settings.MDM_APNS_RETRIES = 2
    broken, fine = make_devices(2)
    apns.fail_first(broken.push_token, 10, status=500)

    summary = push_devices(ids([broken, fine]), "command")

    assert (summary.ok, summary.failed) == (1, 1)
    assert [r.token for r in apns.requests].count(broken.push_token) == 3  # 1 + 2 retries
    recorded = attempt(broken)
    assert recorded.status == 500
    assert recorded.reason == "InternalServerError (after 2 retries)"
    broken.refresh_from_db()
    assert broken.last_push_at is None  # not pushed: the next sweep tries again


def test_certificate_refused_stops_the_batch_and_alerts_until_a_good_batch(apns, settings):
    settings.MDM_APNS_CONCURRENCY = 1  # one stream at a time: the 403 comes first
    devices = make_devices(20)
    for device in devices:
        apns.answer(device.push_token, 403, "BadCertificate")

    summary = push_devices(ids(devices), "command")

    assert len(apns.requests) == 1  # the rest were never sent
    assert summary.sent == 1 and summary.failed == 1 and summary.not_attempted == 19
    assert summary.reason == "APNs refused the push certificate (403 BadCertificate)"
    statuses = sorted(PushAttempt.objects.values_list("status", flat=True))
    assert statuses == [0] * 19 + [403]
    not_sent = PushAttempt.objects.filter(status=0).first()
    assert not_sent.reason == "not sent: APNs refused the push certificate (403 BadCertificate)"
    alert = open_alert("apns:certificate")
    assert alert is not None and alert.severity == "critical"
    assert "BadCertificate" in alert.message and "identity.apple.com" in alert.message
    assert alert.details["reason"] == "BadCertificate"

    apns.reset()  # APNs accepts the certificate again
    good = push_devices(ids(devices), "command")

    assert good.ok == 20
    assert open_alert("apns:certificate") is None
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_wrong_environment_is_explained(apns):
    devices = make_devices(2)
    for device in devices:
        apns.answer(device.push_token, 403, "BadCertificateEnvironment")

    push_devices(ids(devices), "command")

    alert = open_alert("apns:certificate")
    assert "other APNs environment" in alert.message


# -- when nothing can be sent ------------------------------------------------------------------


def test_no_push_certificate_means_nothing_is_sent(apns):
    devices = make_devices(3)
    PushCertificate.objects.update(active=False)

    summary = push_devices(ids(devices), "keepalive")

    assert apns.requests == []
    assert summary.not_attempted == 3 and summary.sent == 0
    assert summary.reason == "no push certificate"
    rows = PushAttempt.objects.filter(device__in=devices)
    assert rows.count() == 3
    assert set(rows.values_list("status", "reason", "kind")) == {
        (0, "no push certificate", "keepalive")
    }
    assert open_alert("apns:certificate") is not None


def test_expired_push_certificate_means_nothing_is_sent(apns):
    devices = make_devices(2)
    PushCertificate.objects.update(not_after=timezone.now() - timezone.timedelta(days=1))

    summary = push_devices(ids(devices), "command")

    assert apns.requests == []
    assert summary.not_attempted == 2
    assert summary.reason.startswith("push certificate expired on ")
    reasons = set(PushAttempt.objects.values_list("status", "reason"))
    assert reasons == {(0, summary.reason)}
    assert open_alert("apns:certificate").severity == "critical"


def test_devices_are_pushed_only_after_their_first_token_update(apns):
    (ready,) = make_devices(1)
    (authenticated,) = make_devices(1, state="pending", enrolled_at=None)
    (no_token_update,) = make_devices(1, enrolled_at=None)  # enrolled state, no TokenUpdate
    (checked_out,) = make_devices(1, state="checked_out")
    everyone = [ready, authenticated, no_token_update, checked_out]

    summary = push_devices(ids(everyone), "command")

    assert [request.token for request in apns.requests] == [ready.push_token]
    assert summary.ok == 1 and summary.skipped == 3
    assert PushAttempt.objects.count() == 1
    reasons = {udid: reason for udid, _, reason in summary.results}
    assert reasons[no_token_update.udid] == "skipped: no TokenUpdate yet"
    assert reasons[authenticated.udid] == "skipped: device is pending"


def test_duplicate_ids_push_once(apns):
    (device,) = make_devices(1)

    summary = push_devices([device.pk, device.pk, device.pk], "manual")

    assert summary.ok == 1 and len(apns.requests) == 1


# -- broken connections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "limit", "concurrency", "count"),
    [("drop_after", 30, 10, 120), ("goaway_after", 30, 10, 120), ("drop_after", 150, 500, 400)],
)
def test_lost_connection_reconnects_and_every_device_gets_an_answer(
    apns, settings, mode, limit, concurrency, count
):
    """drop_after: the stand-in closes each connection once it carried `limit` answers, the
    pushes in flight unanswered; goaway_after: hypercorn sends GOAWAY once a connection
    carried `limit` requests (and answers none after it)."""
    settings.MDM_APNS_CONCURRENCY = concurrency
    devices = make_devices(count)
    setattr(apns, mode, limit)

    summary = push_devices(ids(devices), "command")

    assert summary.ok == count, [r for r in summary.results if r[1] != 200][:5]
    assert set(PushAttempt.objects.values_list("status", flat=True)) == {200}
    assert PushAttempt.objects.count() == count  # one per device, resends included
    assert len(apns.connections()) >= 3
    answered = {request.token for request in apns.requests}
    assert answered == {device.push_token for device in devices}


def test_unreachable_apns_is_bounded_and_alerts(apns, settings):
    devices = make_devices(5)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        settings.MDM_APNS_URL = f"https://127.0.0.1:{unused.getsockname()[1]}"  # nobody listens

    started = time.monotonic()
    summary = push_devices(ids(devices), "command")

    assert time.monotonic() - started < 5
    assert summary.not_attempted == 5
    reasons = set(PushAttempt.objects.values_list("status", "reason"))
    assert len(reasons) == 1
    status, reason = reasons.pop()
    assert status == 0 and reason.startswith("no answer from APNs: ConnectionLost: cannot connect")
    assert open_alert("apns:connection") is not None


# -- bookkeeping -------------------------------------------------------------------------------


def test_attempts_are_written_in_bulk(apns):
    devices = make_devices(200)
    apns.answer(devices[0].push_token, 410, "Unregistered")

    with CaptureQueriesContext(connection) as queries:
        summary = push_devices(ids(devices), "command")

    assert summary.ok == 199 and summary.invalid_tokens == 1
    statements = [query["sql"].upper() for query in queries.captured_queries]
    # executemany is logged as "N TIMES: INSERT ...".
    inserts = [sql for sql in statements if 'INSERT INTO "COMMANDS_PUSHATTEMPT"' in sql]
    updates = [sql for sql in statements if sql.startswith('UPDATE "DEVICES_DEVICE"')]
    assert len(inserts) == 1  # unnest() on PostgreSQL, one executemany elsewhere
    assert len(updates) == 2  # token_invalid_at for the dead token, last_push_at for the rest
    assert len(statements) <= 12  # no per-device query
    assert PushAttempt.objects.count() == 200


def test_client_certificate_is_loaded_without_memfd_too(apns, monkeypatch):
    """Where memfd_create is missing, the key goes through a private temporary file."""
    monkeypatch.delattr(apns_config.os, "memfd_create", raising=False)
    (device,) = make_devices(1)

    assert push_devices([device.pk], "manual").ok == 1


def test_apple_hosts_by_certificate_environment(settings):
    settings.MDM_APNS_URL = None
    production = PushCertificate(topic="com.apple.mgmt.External.x", development=False)
    development = PushCertificate(topic="com.apple.mgmt.External.x", development=True)

    assert apns_base_url(production) == PRODUCTION_URL == "https://api.push.apple.com"
    assert apns_base_url(development) == "https://api.sandbox.push.apple.com"
    settings.MDM_APNS_URL = "https://127.0.0.1:9999/"
    assert apns_base_url(production) == "https://127.0.0.1:9999"
