"""Benchmark of the APNs client: a fleet pushed by `push_devices` to the HTTP/2 stand-in.

The stand-in runs in its own process, so the client's figures are not the server's CPU. By
default it is the lean h2 server (tests/h2_standin.py, ~15,000 requests/s on 2 cores);
`--server hypercorn` uses tests/apns_standin.py, which tops out near 1,500 requests/s and so
measures hypercorn rather than the client. Both use mutual TLS with the same test PKI. Runs on
a throwaway test database of whatever DATABASE_URL names (SQLite by default); bench/run.py calls
`run()` on the bench stack's PostgreSQL:

    python bench/push_bench.py [--server lean|hypercorn] [--devices 10000]
                               [--concurrency 50,100,500] [--latency 0]
    DATABASE_URL=postgres://mdm:mdm@127.0.0.1:55432/mdm python bench/push_bench.py

Prints, per MDM_APNS_CONCURRENCY: the total time of `push_devices` (load the tokens, push,
record the PushAttempts), pushes per second, the client process's CPU time, the stand-in
process's CPU time (Linux), and how the time splits between loading, sending and recording.
Asserts nothing. `run()` returns the same figures as a dict.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.testdb import setup_django, throwaway_database


class Phases:
    """Wall time spent in the client's load / record steps (the rest of a run is sending)."""

    def __init__(self, module):
        self.times = {}
        self._originals = []  # (module, name, function) to put back
        for name, function in (("load", "_load_targets"), ("record", "record")):
            original = getattr(module, function, None)
            if callable(original):  # the client's internals may change
                self.times[name] = 0.0
                self._originals.append((module, function, original))
                setattr(module, function, self._timed(name, original))

    def _timed(self, name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.times[name] += time.perf_counter() - start

        return wrapper

    def restore(self) -> None:
        for module, function, original in self._originals:
            setattr(module, function, original)

    def reset(self) -> None:
        self.times = dict.fromkeys(self.times, 0.0)

    def figures(self, elapsed: float) -> dict:
        if set(self.times) != {"load", "record"}:
            return {}
        load, record = self.times["load"], self.times["record"]
        return {"load_s": load, "send_s": elapsed - load - record, "record_s": record}


def describe(phases: dict) -> str:
    if not phases:
        return "phases n/a"
    return (
        f"load {phases['load_s'] * 1000:.0f} ms, send {phases['send_s']:.2f} s, "
        f"record {phases['record_s'] * 1000:.0f} ms"
    )


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--server",
        choices=("lean", "hypercorn"),
        default="lean",
        help="the stand-in: the lean h2 server (default) or hypercorn's apns_standin",
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--concurrency", default="50,100,200,500")
    parser.add_argument("--latency", type=float, default=0.0, help="stand-in delay per answer (s)")
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    figures = run(
        devices=args.devices,
        concurrency=[int(value) for value in args.concurrency.split(",")],
        server=args.server,
        latency=args.latency,
    )
    print(f"database: {connection.vendor}; {args.devices} devices; {os.cpu_count()} CPU(s)")
    print(
        f"stand-in: {args.server} at {figures['standin_url']}, own process, "
        f"answer latency {args.latency * 1000:.0f} ms"
    )
    for one in figures["runs"]:
        cpu = "n/a" if one["standin_cpu_s"] is None else f"{one['standin_cpu_s']:.2f} s"
        print(
            f"[{args.server}] MDM_APNS_CONCURRENCY={one['concurrency']:>4}: "
            f"{one['ok']}/{args.devices} ok in {one['seconds']:.2f} s = "
            f"{one['per_second']:,.0f} pushes/s; client CPU {one['client_cpu_s']:.2f} s, "
            f"stand-in CPU {cpu}; {describe(one['phases'])}"
        )
    print(
        f"stand-in ({args.server}) answered {figures['standin_requests']} requests; "
        f"{figures['attempts']} attempts"
    )


def run(
    *,
    devices: int = 10_000,
    concurrency: list[int | None] = (None,),
    server: str = "lean",
    latency: float = 0.0,
) -> dict:
    """Push `devices` devices once per concurrency (None: the setting's default) on a
    throwaway database; the figures of each run."""
    with throwaway_database(), tempfile.TemporaryDirectory(prefix="push-bench-") as folder:
        return _run(devices, concurrency, server, latency, Path(folder))


def _run(devices: int, concurrencies, server: str, latency: float, folder: Path) -> dict:
    from django.conf import settings
    from django.utils import timezone

    from commands import apns
    from commands.models import PushAttempt
    from devices.models import Device
    from tests.apns_standin import StandInPKI, StandInProcess, install_push_certificate
    from tests.h2_standin import LeanStandInProcess

    now = timezone.now()
    pki = StandInPKI.create(folder / "pki")
    install_push_certificate(pki)
    Device.objects.bulk_create(
        (
            Device(
                udid=f"BENCH-{i:07d}",
                state=Device.State.ENROLLED,
                enrolled_at=now,
                push_token=uuid.uuid4().hex + uuid.uuid4().hex,
                push_magic=str(uuid.uuid4()).upper(),
            )
            for i in range(devices)
        ),
        batch_size=5000,
    )
    device_ids = list(Device.objects.values_list("id", flat=True))
    phases = Phases(apns)
    server_class = LeanStandInProcess if server == "lean" else StandInProcess
    saved = {
        name: getattr(settings, name)
        for name in ("MDM_APNS_URL", "MDM_APNS_CA_FILE", "MDM_APNS_CONCURRENCY")
    }
    runs = []
    try:
        with server_class(pki, latency=latency) as standin:
            settings.MDM_APNS_URL = standin.url
            settings.MDM_APNS_CA_FILE = str(pki.ca_file)
            server_pid = standin._process.pid
            for concurrency in concurrencies:
                settings.MDM_APNS_CONCURRENCY = concurrency or saved["MDM_APNS_CONCURRENCY"]
                phases.reset()
                server_cpu = process_cpu(server_pid)
                cpu, start = time.process_time(), time.perf_counter()
                summary = apns.push_devices(device_ids, "keepalive")
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
                server_after = process_cpu(server_pid)
                runs.append(
                    {
                        "concurrency": settings.MDM_APNS_CONCURRENCY,
                        "ok": summary.ok,
                        "seconds": elapsed,
                        "per_second": devices / elapsed,
                        "client_cpu_s": cpu,
                        "standin_cpu_s": None
                        if server_cpu is None or server_after is None
                        else server_after - server_cpu,
                        "phases": phases.figures(elapsed),
                    }
                )
    finally:
        phases.restore()
        for name, value in saved.items():
            setattr(settings, name, value)
    return {
        "devices": devices,
        "server": server,
        "standin_url": standin.url,
        "standin_requests": standin.requests,
        "attempts": PushAttempt.objects.count(),
        "runs": runs,
    }


if __name__ == "__main__":
    main()
