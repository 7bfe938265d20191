"""Through a real Celery worker: enqueueing for a simulated device makes exactly one push to
the APNs stand-in; a 410 stops pushes and commands until the device's next TokenUpdate."""

import json
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from commands.models import PushAttempt
from devices.models import Device
from tests.apns_fixtures import shared_pki
from tests.apns_standin import APNsStandIn, install_push_certificate
from tests.conftest import new_identity
from tests.simulator import SimulatedDevice, client_sender
from tests.test_workers import start_worker

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition, what: str, worker, log_path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert worker.poll() is None, log_path.read_text()[-3000:]
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n" + log_path.read_text()[-3000:])


def test_enqueue_makes_one_push_through_a_real_worker_and_410_stops_the_device(
    client, tmp_path, settings
):
    from certs.ca import ensure_ca

    ensure_ca(actor="tests")
    pki = shared_pki()
    log_path = tmp_path / "worker.log"
    with APNsStandIn(tmp_path / "apns", pki=pki) as apns:
        push_cert = install_push_certificate(pki)
        settings.MDM_APNS_URL, settings.MDM_APNS_CA_FILE = apns.url, str(apns.ca_file)
        # The worker talks to the broker this process publishes to: Redis when REDIS_URL is
        # set, else the embedded broker in the same data folder.
        broker = {"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}
        worker = start_worker(
            broker,
            settings.DATA_DIR,
            log_path,
            MDM_APNS_URL=apns.url,
            MDM_APNS_CA_FILE=str(apns.ca_file),
            MDM_PUSH_COALESCE_SECONDS="1",
        )
        try:
            run_scenario(client, apns, push_cert, worker, log_path)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            connections.close_all()


def run_scenario(client, apns, push_cert, worker, log_path) -> None:
    send = client_sender(client)
    certificate, key, _ = new_identity()
    sim = SimulatedDevice(send=send, certificate=certificate, key=key, topic=push_cert.topic)
    sim.enroll()  # its first TokenUpdate queues five inventory commands: one push
    wait_for(lambda: len(apns.requests) >= 1, "the first push", worker, log_path)
    time.sleep(3)  # more commands in the window must not have made more pushes
    assert len(apns.requests) == 1
    push = apns.requests[0]
    assert push.method == "POST"
    assert push.path == f"/3/device/{sim.token.hex()}"
    assert push.headers["apns-topic"] == push_cert.topic
    assert push.headers["apns-push-type"] == "mdm"
    assert push.headers["apns-priority"] == "10"
    assert int(push.headers["apns-expiration"]) > time.time()
    assert push.body == json.dumps({"mdm": sim.push_magic}, separators=(",", ":")).encode()

    # A command queued with mdm_enqueue makes one more push.
    call_command("mdm_enqueue", sim.udid, "ProfileList", stdout=StringIO())
    wait_for(lambda: len(apns.requests) >= 2, "the second push", worker, log_path)

    # APNs says the token is gone: no more pushes, no more commands...
    apns.answer(sim.token.hex(), 410, "Unregistered")
    call_command("mdm_enqueue", sim.udid, "SecurityInfo", stdout=StringIO())
    wait_for(
        lambda: Device.objects.filter(udid=sim.udid, token_invalid_at__isnull=False).exists(),
        "the 410 to mark the token invalid",
        worker,
        log_path,
    )
    assert PushAttempt.objects.filter(status=410).count() == 1
    with pytest.raises(CommandError, match="push token of these devices invalid"):
        call_command("mdm_enqueue", sim.udid, "DeviceLock", stdout=StringIO())
    pushes = len(apns.requests)
    out = StringIO()
    call_command("mdm_push", sim.udid, stdout=out)
    assert "push token invalid" in out.getvalue()
    assert len(apns.requests) == pushes

    # ...until a new TokenUpdate.
    sim.token = b"\x07" * 32
    assert sim.token_update().status == 200
    call_command("mdm_enqueue", sim.udid, "DeviceLock", stdout=StringIO())
    wait_for(
        lambda: any(r.path == f"/3/device/{'07' * 32}" for r in apns.requests),
        "a push to the new token",
        worker,
        log_path,
    )
