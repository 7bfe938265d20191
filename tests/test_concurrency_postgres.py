"""Two polls of one device at once, against the real PostgreSQL: row locks serialize them."""

import datetime as dt
import threading
import time
from collections import Counter

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, InventoryReport
from tests.conftest import new_identity
from tests.simulator import SimulatedDevice, client_sender

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def threaded_sender():
    """A sender whose requests run on the calling thread, with that thread's DB connection
    (a Client per request: a test client is not shared between threads)."""
    return lambda path, body, headers: client_sender(Client())(path, body, headers)


def enrolled_device() -> SimulatedDevice:
    from certs.ca import ensure_ca

    ensure_ca(actor="tests")
    certificate, key, _ = new_identity()
    sim = SimulatedDevice(send=threaded_sender(), certificate=certificate, key=key)
    sim.enroll()
    QueuedCommand.objects.filter(device__udid=sim.udid).delete()
    return sim


def in_threads(count: int, work) -> list:
    results: list = [None] * count
    errors: list = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def waiting_on_locks() -> int:
    # pg_locks is read live (pg_stat_activity would be a snapshot inside our transaction).
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def test_two_concurrent_polls_never_deliver_one_command_twice():
    sim = enrolled_device()
    device = Device.objects.get(udid=sim.udid)
    command = enqueue(device, "ProfileList", queued_by="tests")
    # Hold the device row so that both polls arrive and queue up behind the lock.
    with transaction.atomic():
        Device.objects.select_for_update().get(pk=device.pk)
        threads, results, errors = in_threads(2, lambda _i: sim.idle())
        deadline = time.monotonic() + 10
        while waiting_on_locks() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_on_locks() == 2, "both polls should be waiting on the device row"
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    assert sorted(r.status for r in results) == [200, 200]
    delivered = [r.plist()["CommandUUID"] for r in results if r.body]
    assert delivered == [command.uuid]  # once, not twice, and not lost:
    row = QueuedCommand.objects.get(command=command)
    assert row.status == Status.SENT and row.sent_count == 1
    assert sim.idle().plist()["CommandUUID"] == command.uuid  # a later poll gets it again


def test_concurrent_answering_polls_lose_nothing_and_record_each_status_once():
    sim = enrolled_device()
    device = Device.objects.get(udid=sim.udid)
    commands = [enqueue(device, "ProfileList", queued_by="tests").uuid for _ in range(30)]
    seen: Counter = Counter()
    lock = threading.Lock()

    def device_connection(_index: int) -> int:
        """Poll, acknowledge whatever arrives, until the server has nothing more."""
        response = sim.idle()
        for answered in range(200):
            assert response.status == 200, response.body
            if not response.body:
                return answered
            uuid = response.plist()["CommandUUID"]
            with lock:
                seen[uuid] += 1
            response = sim.report(uuid, ProfileList=[])
        raise AssertionError("did not drain")

    threads, results, errors = in_threads(4, device_connection)
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    # Drain whatever was in flight when the last connection gave up.
    response = sim.idle()
    while response.body:
        uuid = response.plist()["CommandUUID"]
        seen[uuid] += 1
        response = sim.report(uuid, ProfileList=[])
    rows = {r.command.uuid: r for r in QueuedCommand.objects.select_related("command")}
    assert set(rows) == set(commands)
    assert all(row.status == Status.ACKNOWLEDGED for row in rows.values())
    # Every delivery was counted by the server, none twice to concurrent polls.
    assert sum(seen.values()) == sum(row.sent_count for row in rows.values())
    assert set(seen) == set(commands)


def test_an_answer_that_loses_a_deadlock_is_run_again_not_refused():
    """PostgreSQL breaks a deadlock by aborting one transaction. When that is a device's
    request, the portal runs it again (the device would resend it after a 503 anyway), so the
    device gets its 200 and the answer is recorded once."""
    sim = enrolled_device()
    device = Device.objects.get(udid=sim.udid)
    command = enqueue(device, "ProfileList", queued_by="tests")
    assert sim.idle().plist()["CommandUUID"] == command.uuid
    InventoryReport.objects.create(
        device=device, kind="ProfileList", data=[], reported_at=timezone.now() - dt.timedelta(1)
    )
    with transaction.atomic():  # another transaction: the report's row first, then the device
        InventoryReport.objects.select_for_update().get(device=device, kind="ProfileList")
        threads, results, errors = in_threads(
            1, lambda _i: sim.report(command.uuid, ProfileList=[])
        )
        deadline = time.monotonic() + 10
        while waiting_on_locks() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_on_locks() == 1, "the answer should wait on the report, holding the device"
        # The cycle: PostgreSQL's check runs first in the answer's session (it waited longest)
        # and aborts it, so this lock is granted.
        Device.objects.select_for_update().get(pk=device.pk)
    threads[0].join(timeout=30)
    assert not errors, errors
    assert results[0].status == 200, results[0].body
    row = QueuedCommand.objects.get(command=command)
    assert row.status == Status.ACKNOWLEDGED
