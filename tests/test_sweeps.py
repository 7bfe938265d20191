"""The sweeps: inactivity, keep-alive, NotNow, command expiry, invalid tokens, push coalescing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from commands import sweeps as command_sweeps
from commands.models import QueuedCommand, Status
from commands.queue import EnqueueError, enqueue
from commands.tasks import claim_due_pushes, release
from devices import sweeps
from devices.models import Device
from tests.apns_fixtures import apns_fixture  # noqa: F401

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def managed(udid: str, seen_ago: timedelta, **fields) -> Device:
    now = timezone.now()
    defaults = {
        "state": Device.State.ENROLLED,
        "enrolled_at": now - timedelta(days=30),
        "push_token": "ab" * 32,
        "push_magic": "magic",
        "last_seen_at": now - seen_ago,
    }
    return Device.objects.create(udid=udid, **{**defaults, **fields})


def test_silent_devices_are_marked_inactive_and_active_again_when_they_poll(enrolled):
    now = timezone.now()
    managed("QUIET", timedelta(days=8))
    managed("RECENT", timedelta(days=2))
    Device.objects.filter(udid=enrolled.udid).update(last_seen_at=now - timedelta(days=10))
    assert sweeps.mark_inactive(now) == 2
    assert sweeps.mark_inactive(now) == 0  # the date of the first sweep stays
    assert Device.objects.get(udid="QUIET").inactive_since == now
    assert Device.objects.get(udid="RECENT").inactive_since is None
    assert sweeps.device_counts()["inactive"] == 2
    enrolled.idle()  # it polls: active again
    assert Device.objects.get(udid=enrolled.udid).inactive_since is None
    assert sweeps.device_counts()["inactive"] == 1


def test_keepalive_goes_to_quiet_devices_not_pushed_lately_and_reachable():
    now = timezone.now()
    quiet = managed("QUIET", 2 * 24 * HOUR)
    managed("PUSHED", 2 * 24 * HOUR, last_push_at=now - HOUR)
    managed("SEEN", HOUR)
    managed("INVALID", 2 * 24 * HOUR, token_invalid_at=now)
    managed("NEVER-TOKEN", 2 * 24 * HOUR, enrolled_at=None)
    managed("GONE", 2 * 24 * HOUR, state=Device.State.CHECKED_OUT)
    assert sweeps.keepalive_due(now) == [quiet.pk]


def test_not_now_devices_are_pushed_again_gently():
    now = timezone.now()
    waiting = managed("WAITING", HOUR)
    recently = managed("RECENTLY", HOUR, last_push_at=now - HOUR)
    managed("NOTHING", HOUR)
    for device in (waiting, recently):
        command = enqueue(
            device, "Settings", {"Settings": [{"Item": "DataRoaming", "Enabled": True}]}
        )
        QueuedCommand.objects.filter(command=command).update(status=Status.NOT_NOW)
    assert command_sweeps.not_now_due(now) == [waiting.pk]


def test_old_unanswered_commands_expire_and_are_kept():
    device = managed("D", HOUR)
    old, fresh, answered = (enqueue(device, "ProfileList") for _ in range(3))
    QueuedCommand.objects.filter(command__in=[old, answered]).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    QueuedCommand.objects.filter(command=answered).update(status=Status.ACKNOWLEDGED)
    assert command_sweeps.expire_commands() == 1
    statuses = dict(QueuedCommand.objects.values_list("command__uuid", "status"))
    assert statuses == {
        old.uuid: Status.EXPIRED,
        fresh.uuid: Status.QUEUED,
        answered.uuid: Status.ACKNOWLEDGED,
    }


def test_sweeps_are_bulk_statements_whatever_the_fleet_size():
    Device.objects.bulk_create(
        Device(
            udid=f"F{i}",
            state=Device.State.ENROLLED,
            last_seen_at=timezone.now() - timedelta(days=9),
        )
        for i in range(500)
    )
    with CaptureQueriesContext(connection) as queries:
        sweeps.mark_inactive()
        command_sweeps.expire_commands()
        sweeps.device_counts()
    assert len(queries.captured_queries) == 3


def test_commands_for_a_device_with_an_invalid_token_are_refused_until_token_update(enrolled):
    Device.objects.filter(udid=enrolled.udid).update(token_invalid_at=timezone.now())
    with pytest.raises(EnqueueError, match="push token of these devices invalid"):
        enqueue(Device.objects.get(udid=enrolled.udid), "ProfileList")
    assert enrolled.token_update(Token=b"\x02" * 32).status == 200
    assert Device.objects.get(udid=enrolled.udid).token_invalid_at is None
    enqueue(Device.objects.get(udid=enrolled.udid), "ProfileList")


def test_many_commands_in_a_window_make_one_claimed_push():
    device = managed("D", HOUR)
    for _ in range(5):
        enqueue(device, "ProfileList")
    assert Device.objects.get(pk=device.pk).push_due_at is not None
    assert claim_due_pushes().ids == [device.pk]
    assert claim_due_pushes().ids == []  # claimed once
    enqueue(device, "ProfileList")
    assert claim_due_pushes().ids == [device.pk]


def test_a_claim_is_a_lease_cleared_once_the_push_went_out(settings):
    settings.MDM_PUSH_CLAIM_LEASE_SECONDS = 60
    device = managed("D", HOUR)
    enqueue(device, "ProfileList")
    claim = claim_due_pushes()
    assert claim.ids == [device.pk]
    # Claimed, not cleared: a worker that dies here leaves the mark, due when the lease ends.
    assert Device.objects.get(pk=device.pk).push_due_at == claim.until
    assert claim_due_pushes().ids == []  # held by the lease
    # The lease ends (its worker died before releasing): the next run takes the push over.
    Device.objects.filter(pk=device.pk).update(push_due_at=timezone.now() - timedelta(seconds=1))
    stale = claim_due_pushes()
    assert stale.ids == [device.pk]
    release(claim)  # the dead run's release would change nothing now
    assert Device.objects.get(pk=device.pk).push_due_at == stale.until
    release(stale)
    assert Device.objects.get(pk=device.pk).push_due_at is None


def test_a_command_queued_during_a_push_gets_a_push_of_its_own():
    device = managed("D", HOUR)
    enqueue(device, "ProfileList")
    claim = claim_due_pushes()
    enqueue(device, "SecurityInfo")  # while the claimed push is being sent
    release(claim)
    assert Device.objects.get(pk=device.pk).push_due_at is not None
    assert claim_due_pushes().ids == [device.pk]


def test_certificate_expiry_sweep_raises_and_resolves_alerts(ca):
    from certs.models import CertificateAuthority
    from commands.tasks import certificate_expiry_sweep
    from mdm_portal.alerts import open_alerts

    assert certificate_expiry_sweep() == {"alerts": 0}
    CertificateAuthority.objects.update(not_after=timezone.now() + timedelta(days=5, hours=1))
    assert certificate_expiry_sweep() == {"alerts": 1}
    alert = open_alerts().get()
    assert alert.key.startswith("expiry:ca:") and "5 day(s)" in alert.message
    assert alert.severity == "warning"
    assert certificate_expiry_sweep() == {"alerts": 1}  # kept, not repeated
    assert open_alerts().count() == 1
    CertificateAuthority.objects.update(not_after=timezone.now() + timedelta(days=3000))
    certificate_expiry_sweep()
    assert not open_alerts().exists()


def test_sweep_tasks_push_through_apns(apns, make_device):
    from commands.models import PushAttempt
    from commands.tasks import inactivity_sweep, not_now_sweep

    sim = make_device(topic=apns.push_certificate.topic)
    sim.enroll()
    Device.objects.filter(udid=sim.udid).update(
        last_seen_at=timezone.now() - timedelta(days=8), last_push_at=None
    )
    result = inactivity_sweep()
    assert result["inactive"] == 1 and result["keepalive"]["ok"] == 1
    assert PushAttempt.objects.get().kind == "keepalive"
    assert apns.requests[-1].path == f"/3/device/{sim.token.hex()}"
    assert not_now_sweep() == {"sent": 0}
