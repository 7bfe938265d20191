"""The fast device path keeps every check: what a process learned about a certificate never
stands in for revocation, statements stay few, and nothing cached hides a change."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certs.ca import revoke, sha256_hex
from certs.models import IssuedCertificate
from commands.models import QueuedCommand
from commands.queue import enqueue
from devices.models import Device
from webhooks.models import Delivery
from webhooks.registry import create_webhook

pytestmark = pytest.mark.django_db


def managed(sim) -> Device:
    return Device.objects.get(udid=sim.udid)


def statements(queries) -> list[str]:
    """The statements of an exchange, without the test transaction's savepoints."""
    return [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]


def test_a_certificate_revoked_after_it_was_seen_is_refused_at_once(enrolled):
    assert enrolled.idle().status == 200  # the process now knows this certificate
    record = IssuedCertificate.objects.get(sha256=sha256_hex(enrolled.certificate))
    revoke(record, reason="lost", actor="tests")
    assert enrolled.idle().status == 403
    assert enrolled.token_update().status == 403  # the check-in URL too
    assert enrolled.checkin("TokenUpdate", path="/mdm/connect").status == 403


def test_a_certificate_removed_from_the_registry_is_refused(enrolled):
    assert enrolled.idle().status == 200
    IssuedCertificate.objects.filter(sha256=sha256_hex(enrolled.certificate)).delete()
    assert enrolled.idle().status in (401, 403)


@pytest.mark.parametrize("with_inventory", [False, True])
def test_an_exchange_is_at_most_four_statements(enrolled, with_inventory):
    device = managed(enrolled)
    QueuedCommand.objects.filter(device=device).delete()
    enrolled.idle()  # last seen now: the loop writes the device row once a minute at most
    request_type, payload = ("DeviceLock", {})
    if with_inventory:
        request_type, payload = ("SecurityInfo", {})
    first = enqueue(device, request_type, payload)
    second = enqueue(device, request_type, payload)
    answer = {"SecurityInfo": {"HardwareEncryptionCaps": 3}} if with_inventory else {}
    exchanges = {
        "idle -> command": lambda: enrolled.idle(),
        "status -> command": lambda: enrolled.report(first.uuid, **answer),
        "status -> nothing": lambda: enrolled.report(second.uuid, **answer),
        "idle -> nothing": lambda: enrolled.idle(),
    }
    for name, exchange in exchanges.items():
        with CaptureQueriesContext(connection) as queries:
            assert exchange().status == 200
        count = len(statements(queries.captured_queries))
        # A result with inventory also writes it: the report, in one more statement.
        limit = 4 if not with_inventory or "status" not in name else 5
        assert count <= limit, (name, statements(queries.captured_queries))
    assert QueuedCommand.objects.filter(device=device, status="acknowledged").count() == 2


def test_last_seen_is_written_once_a_minute_and_again_after(enrolled):
    device = managed(enrolled)
    QueuedCommand.objects.filter(device=device).delete()
    earlier = timezone.now() - dt.timedelta(minutes=5)
    Device.objects.filter(pk=device.pk).update(last_seen_at=earlier)
    enrolled.idle()
    seen = managed(enrolled).last_seen_at
    assert seen > earlier
    enrolled.idle()
    assert managed(enrolled).last_seen_at == seen  # within the minute: not written again
    Device.objects.filter(pk=device.pk).update(inactive_since=timezone.now())
    enrolled.idle()
    assert managed(enrolled).inactive_since is None  # an inactive device is active at once


def test_a_webhook_made_after_polls_without_one_gets_the_next_event(enrolled):
    QueuedCommand.objects.filter(device=managed(enrolled)).delete()
    enrolled.idle()  # no webhook: remembered for a few seconds in this process
    webhook, _secret = create_webhook("https://hooks.example.org/mdm", actor="tests")
    enrolled.idle()
    assert Delivery.objects.filter(webhook=webhook).count() == 1


def test_a_first_token_update_asks_the_broker_once_for_its_five_commands(
    device, monkeypatch, django_capture_on_commit_callbacks
):
    """The initial inventory queues several commands in one transaction: one push task."""
    from commands import queue

    calls = []
    monkeypatch.setattr(queue, "run_soon", lambda task, what, **kw: calls.append(what))
    device.authenticate()
    with django_capture_on_commit_callbacks(execute=True):
        assert device.token_update().status == 200
    queued = QueuedCommand.objects.filter(device=managed(device)).count()
    assert queued >= 3 and calls == ["push"]


def test_a_certificate_seen_before_is_refused_once_it_expires(enrolled):
    """What a process learned about a certificate keeps its dates: the clock is read at
    every request, so a certificate that expired since it was learned is refused."""
    from dataclasses import replace

    from certs import identity

    assert enrolled.idle().status == 200
    fingerprint = sha256_hex(enrolled.certificate)
    learned = identity._known[fingerprint]
    identity._known[fingerprint] = replace(
        learned, not_after=timezone.now() - dt.timedelta(seconds=1)
    )
    assert enrolled.idle().status == 403
    assert enrolled.token_update().status == 403
