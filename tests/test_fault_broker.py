"""With Redis down, device and API requests answer as fast as with it up: the portal (gunicorn,
a real server) is pointed at a Redis that is not running; a TokenUpdate, an Idle poll and an
enqueue through the API answer within half a second each, their pushes wait in the database
(Device.push_due_at), and once Redis is back the periodic push task (what celery beat runs
every minute) sends them through a real worker to the APNs stand-in."""

import time

import httpx
import pytest

from devices.models import Device
from mdm_portal.api_tokens import create_token
from mdm_portal.roles import OPERATOR
from tests.apns_fixtures import shared_pki
from tests.apns_standin import APNsStandIn, install_push_certificate
from tests.conftest import new_identity
from tests.fault_support import Portal, RedisServer, broker_client, wait_until
from tests.simulator import Response, SimulatedDevice
from tests.test_workers import database_url, start_worker
from tests.ui_support import make_user
from webhooks.models import Webhook

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# What "does not wait for the broker" means here: a device request on loopback takes a few ms.
FAST_SECONDS = 0.5


def http_sender(client: httpx.Client):
    def send(path: str, body: bytes, headers: dict[str, str]) -> Response:
        answer = client.put(path, content=body, headers=headers)
        return Response(answer.status_code, answer.content)

    return send


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_device_requests_do_not_wait_for_redis_and_pushes_go_out_once_it_is_back(tmp_path):
    from certs.ca import ensure_ca

    ensure_ca(actor="tests")
    pki = shared_pki()
    push_cert = install_push_certificate(pki)
    # A webhook: its delivery is triggered after each check-in's commit (through the cache and
    # the broker, both on the Redis that is down).
    Webhook.objects.create(url="http://127.0.0.1:9/hook", secret=b"s" * 32)
    _token, key = create_token(make_user("ops", OPERATOR), "script", actor="tests")
    redis = RedisServer(tmp_path / "redis")  # its port, not listening yet
    # No pause after a failure (the circuit breaker): every request below really calls the
    # broker, and none may wait for it.
    env = {"DATABASE_URL": database_url(), "REDIS_URL": redis.url, "MDM_BROKER_PAUSE_SECONDS": "0"}
    portal = Portal(tmp_path, env).start()
    worker = None
    try:
        client = httpx.Client(base_url=portal.url, timeout=30)
        certificate, identity_key, _ = new_identity()
        sim = SimulatedDevice(
            send=http_sender(client), certificate=certificate, key=identity_key,
            topic=push_cert.topic,
        )  # fmt: skip
        answer, authenticate = timed(sim.authenticate)  # the first broker call of the process
        assert answer.status == 200, answer.body
        answer, token_update = timed(sim.token_update)
        assert answer.status == 200, answer.body
        answer, idle = timed(sim.idle)
        assert answer.status == 200, answer.body
        api = {"Authorization": f"Token {key}"}
        body = {"request_type": "ProfileList", "devices": [sim.udid]}
        answer, enqueue = timed(lambda: client.post("/api/v1/commands/", json=body, headers=api))
        assert answer.status_code == 201, answer.text
        took = {"Authenticate": authenticate, "TokenUpdate": token_update, "Idle": idle}
        took["enqueue"] = enqueue
        print("Redis down:", ", ".join(f"{name} {seconds:.3f}s" for name, seconds in took.items()))
        assert max(took.values()) < FAST_SECONDS, took
        assert portal.log_text().count("not scheduled now") >= 3  # push and webhook triggers
        device = Device.objects.get(udid=sim.udid)
        assert device.push_due_at is not None  # waiting in the database

        # Redis is back: the periodic run sends the waiting push.
        redis.start()
        with APNsStandIn(tmp_path / "apns", pki=pki) as apns:
            worker = start_worker(
                {"REDIS_URL": redis.url},
                tmp_path,
                tmp_path / "worker.log",
                MDM_APNS_URL=apns.url,
                MDM_APNS_CA_FILE=str(apns.ca_file),
            )
            broker_client(redis.url).send_task("commands.tasks.push_due_devices")
            wait_until(
                lambda: any(r.path == f"/3/device/{sim.token.hex()}" for r in apns.requests),
                "the waiting push",
                alive=lambda: worker.poll() is None,
                log=tmp_path / "worker.log",
            )
            # Cleared once the batch is recorded, a moment after APNs saw the push.
            wait_until(
                lambda: Device.objects.get(pk=device.pk).push_due_at is None, "the mark cleared"
            )
        assert "Traceback" not in portal.log_text()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        portal.stop()
        redis.stop()
