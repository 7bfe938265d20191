"""Benchmark of the APNs client: a fleet pushed by `push_devices` to the HTTP/2 stand-in.

The stand-in runs in its own process, so the client's figures are not the server's CPU. By
default it is the lean h2 server (tests/h2_standin.py, ~15,000 requests/s on 2 cores);
`--server hypercorn` uses tests/apns_standin.py, which tops out near 1,500 requests/s and so
measures hypercorn rather than the client. Both use mutual TLS with the same test PKI. Runs on
a throwaway test database of whatever DATABASE_URL names (SQLite by default):

    python bench/push_bench.py [--server lean|hypercorn] [--devices 10000]
                               [--concurrency 50,100,500] [--latency 0]
    DATABASE_URL=postgres://mdm:mdm@127.0.0.1:55432/mdm python bench/push_bench.py

Prints, per MDM_APNS_CONCURRENCY: the total time of `push_devices` (load the tokens, push,
record the PushAttempts), pushes per second, the client process's CPU time, the stand-in
process's CPU time (Linux), and how the time splits between loading, sending and recording.
Asserts nothing.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdm_portal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


class Phases:
    """Wall time spent in the client's load / record steps (the rest of a run is sending)."""

    def __init__(self, module):
        self.times = {}
        for name, function in (("load", "_load_targets"), ("record", "record")):
            if callable(getattr(module, function, None)):  # the client's internals may change
                self.times[name] = 0.0
                setattr(module, function, self._timed(name, getattr(module, function)))

    def _timed(self, name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.times[name] += time.perf_counter() - start

        return wrapper

    def reset(self) -> None:
        self.times = dict.fromkeys(self.times, 0.0)

    def describe(self, elapsed: float) -> str:
        if set(self.times) != {"load", "record"}:
            return "phases n/a"
        load, record = self.times["load"], self.times["record"]
        return (
            f"load {load * 1000:.0f} ms, send {(elapsed - load - record):.2f} s, "
            f"record {record * 1000:.0f} ms"
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
    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with tempfile.TemporaryDirectory(prefix="push-bench-") as folder:
            run(args, Path(folder))
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


def run(args, folder: Path) -> None:
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
            for i in range(args.devices)
        ),
        batch_size=5000,
    )
    device_ids = list(Device.objects.values_list("id", flat=True))
    phases = Phases(apns)
    print(f"database: {connection.vendor}; {args.devices} devices; {os.cpu_count()} CPU(s)")
    server_class = LeanStandInProcess if args.server == "lean" else StandInProcess
    with server_class(pki, latency=args.latency) as standin:
        settings.MDM_APNS_URL = standin.url
        settings.MDM_APNS_CA_FILE = str(pki.ca_file)
        server_pid = standin._process.pid
        print(
            f"stand-in: {args.server} ({server_class.__name__}) at {standin.url}, own process, "
            f"answer latency {args.latency * 1000:.0f} ms"
        )
        for concurrency in (int(value) for value in args.concurrency.split(",")):
            settings.MDM_APNS_CONCURRENCY = concurrency
            phases.reset()
            server_cpu = process_cpu(server_pid)
            cpu, start = time.process_time(), time.perf_counter()
            summary = apns.push_devices(device_ids, "keepalive")
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            server_after = process_cpu(server_pid)
            server_cpu = (
                "n/a"
                if server_cpu is None or server_after is None
                else f"{server_after - server_cpu:.2f} s"
            )
            print(
                f"[{args.server}] MDM_APNS_CONCURRENCY={concurrency:>4}: "
                f"{summary.ok}/{args.devices} ok in {elapsed:.2f} s = "
                f"{args.devices / elapsed:,.0f} pushes/s; client CPU {cpu:.2f} s, "
                f"stand-in CPU {server_cpu}; {phases.describe(elapsed)}"
            )
    print(
        f"stand-in ({args.server}) answered {standin.requests} requests; "
        f"{PushAttempt.objects.count()} attempts"
    )


if __name__ == "__main__":
    main()
