"""Benchmark of the command queue: fan-out to a fleet, and the server-URL loop.

Runs on a throwaway test database of whatever DATABASE_URL names (SQLite by default):

    python bench/queue_bench.py [--devices 10000] [--commands 200]
    DATABASE_URL=postgres://mdm:mdm@127.0.0.1:55432/mdm python bench/queue_bench.py

Prints figures; asserts nothing. `run()` returns them as a dict.
"""

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.testdb import setup_django, throwaway_database


def run(*, devices: int = 10_000, commands: int = 200) -> dict:
    with throwaway_database():
        return {"fan_out": fan_out(devices), "server_url": server_url(commands)}


def fan_out(count: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

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
    return {"devices": count, "seconds": elapsed, "statements": len(queries.captured_queries)}


def server_url(commands: int) -> dict:
    from django.test import Client

    from certs.ca import ensure_ca, issue_certificate
    from commands.models import QueuedCommand
    from commands.queue import enqueue
    from devices.models import Device
    from tests.simulator import SimulatedDevice, client_sender, make_csr, make_key

    ensure_ca(actor="bench")
    key = make_key()
    certificate, _ = issue_certificate(make_csr(key, "bench"))
    sim = SimulatedDevice(
        send=client_sender(Client(HTTP_HOST="localhost")), certificate=certificate, key=key
    )
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
    return {"exchanges": exchanges, "seconds": elapsed, "per_second": exchanges / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    print(f"database: {connection.vendor}")
    figures = run(devices=args.devices, commands=args.commands)
    out, loop = figures["fan_out"], figures["server_url"]
    print(
        f"enqueue to {out['devices']} devices: {out['seconds'] * 1000:.0f} ms, "
        f"{out['statements']} SQL statements"
    )
    print(
        f"server URL with Mdm-Signature: {loop['exchanges']} exchanges in {loop['seconds']:.2f} s, "
        f"{loop['per_second']:.0f} per second, {loop['seconds'] / loop['exchanges'] * 1000:.1f} "
        "ms each (signing on the device side included)"
    )


if __name__ == "__main__":
    main()
