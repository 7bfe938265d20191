"""Benchmark of the command queue: fan-out to a fleet, and the server-URL loop.

Runs on a throwaway test database of whatever DATABASE_URL names (SQLite by default):

    python bench/queue_bench.py [--devices 10000] [--commands 200]
    DATABASE_URL=postgres://mdm:mdm@127.0.0.1:55432/mdm python bench/queue_bench.py

Prints figures; asserts nothing.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdm_portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"database: {connection.vendor} ({test_db})")
        bench_fan_out(args.devices)
        bench_server_url(args.commands)
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


def bench_fan_out(count: int) -> None:
    from commands.queue import enqueue
    from devices.models import Device

    Device.objects.bulk_create(
        (Device(udid=f"BENCH-{i:07d}", state=Device.State.ENROLLED) for i in range(count)),
        batch_size=5000,
    )
    devices = Device.objects.filter(udid__startswith="BENCH-")
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        enqueue(devices, "ProfileList", queued_by="bench")
        elapsed = time.perf_counter() - start
    print(
        f"enqueue to {count} devices: {elapsed * 1000:.0f} ms, "
        f"{len(queries.captured_queries)} SQL statements"
    )


def bench_server_url(commands: int) -> None:
    from certs.ca import ensure_ca, issue_certificate
    from commands.models import QueuedCommand
    from commands.queue import enqueue
    from devices.models import Device
    from tests.simulator import SimulatedDevice, client_sender, make_csr, make_key

    ensure_ca(actor="bench")
    key = make_key()
    certificate, _ = issue_certificate(make_csr(key, "bench"))
    sim = SimulatedDevice(send=client_sender(Client()), certificate=certificate, key=key)
    sim.enroll()
    device = Device.objects.get(udid=sim.udid)
    QueuedCommand.objects.filter(device=device).delete()
    for _ in range(commands):
        enqueue(device, "ProfileList", queued_by="bench")
    start = time.perf_counter()
    response = sim.idle()
    exchanges = 1
    while response.body:
        response = sim.report(response.plist()["CommandUUID"], ProfileList=[])
        exchanges += 1
    elapsed = time.perf_counter() - start
    print(
        f"server URL with Mdm-Signature: {exchanges} exchanges in {elapsed:.2f} s, "
        f"{exchanges / elapsed:.0f} per second, {elapsed / exchanges * 1000:.1f} ms each "
        "(signing on the device side included)"
    )


if __name__ == "__main__":
    main()
