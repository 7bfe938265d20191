"""A Celery worker killed in the middle of a push batch loses no push: a real worker (Redis
broker) pushes 1,500 devices to a slow APNs stand-in, gets SIGKILL mid-batch, and the next
worker's periodic runs push every device the first one did not reach (duplicates allowed,
none lost): the claim is a lease (commands.tasks.claim_due_pushes), not a deletion."""

import signal
import time

import pytest
from django.utils import timezone

from devices.models import Device
from tests.apns_fixtures import shared_pki
from tests.apns_standin import APNsStandIn, install_push_certificate
from tests.fault_support import RedisServer, broker_client, wait_until
from tests.test_workers import start_worker

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

DEVICES = 1500
LEASE_SECONDS = 2


def devices_due(topic: str) -> set[str]:
    """DEVICES enrolled devices, each with its own token, all with a push due."""
    now = timezone.now()
    Device.objects.bulk_create(
        Device(
            udid=f"K-{i:05d}",
            state=Device.State.ENROLLED,
            enrolled_at=now,
            last_seen_at=now,
            push_token=f"{i:064x}",
            push_magic=f"magic-{i}",
            topic=topic,
            push_due_at=now,
        )
        for i in range(DEVICES)
    )
    return {f"{i:064x}" for i in range(DEVICES)}


def test_a_worker_killed_mid_batch_loses_no_push(tmp_path):
    pki = shared_pki()
    push_cert = install_push_certificate(pki)
    tokens = devices_due(push_cert.topic)
    redis = RedisServer(tmp_path / "redis").start()
    broker = broker_client(redis.url)
    workers = []

    def worker(name: str):
        process = start_worker(
            {"REDIS_URL": redis.url},
            tmp_path,
            tmp_path / f"{name}.log",
            MDM_APNS_URL=apns.url,
            MDM_APNS_CA_FILE=str(apns.ca_file),
            MDM_APNS_CONCURRENCY="10",  # with the latency: the batch takes about 3 s
            MDM_PUSH_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        workers.append(process)
        return process

    def pushed() -> set[str]:
        return {request.token for request in apns.requests}

    with APNsStandIn(tmp_path / "apns", pki=pki) as apns:
        try:
            apns.latency = 0.02
            first = worker("first")
            broker.send_task("commands.tasks.push_due_devices")
            wait_until(
                lambda: len(apns.requests) >= 200,
                "the first pushes",
                alive=lambda: first.poll() is None,
                log=tmp_path / "first.log",
            )
            first.send_signal(signal.SIGKILL)  # mid-batch: APNs has a part of it
            first.wait(timeout=10)
            reached = len(pushed())
            assert reached < DEVICES, "the batch ended before the kill: nothing was tested"
            # The dead run's claims are held until their lease ends, then taken over.
            assert Device.objects.filter(push_due_at__isnull=False).count() >= DEVICES - reached

            apns.latency = 0
            second = worker("second")
            deadline = time.monotonic() + 30
            while pushed() != tokens and time.monotonic() < deadline:
                broker.send_task("commands.tasks.push_due_devices")  # what beat runs
                time.sleep(1)
                assert second.poll() is None, (tmp_path / "second.log").read_text()[-3000:]
            missing = tokens - pushed()
            assert not missing, f"{len(missing)} device(s) never pushed"
            print(f"killed after {reached} of {DEVICES}; {len(apns.requests)} pushes in all")
            wait_until(
                lambda: not Device.objects.filter(push_due_at__isnull=False).exists(),
                "the marks cleared",
            )
        finally:
            for process in workers:  # before the stand-in stops: no connection left open
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
            redis.stop()
