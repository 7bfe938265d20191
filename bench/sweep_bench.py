"""Benchmark of the sweeps over a large fleet (PostgreSQL): inactivity, keep-alive, expiry.

    eval "$(scripts/services.sh env)"; python bench/sweep_bench.py [--devices 1000000]

Fills a throwaway test database with devices last seen between now and 14 days ago (so about
half are past the 7-day inactivity limit), then times each sweep. Prints figures only;
`run()` returns them as a dict (bench/run.py: target, the inactivity sweep under 5 s).
"""

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.testdb import require_postgres, setup_django, throwaway_database, timed

STEPS = [  # (key, label)
    ("mark_inactive", "inactivity sweep (mark inactive)"),
    ("mark_inactive_again", "inactivity sweep again (nothing new)"),
    ("keepalive_due", "keep-alive selection"),
    ("expire_commands", "command expiry"),
    ("device_counts", "device counts"),
]


def fill(count: int) -> None:
    """Insert `count` managed devices in one INSERT ... SELECT generate_series."""
    from django.db import connection
    from django.utils import timezone

    from bench.fleet import insert_devices
    from devices.models import Device

    now = timezone.now()
    generated = {
        "udid": "'BENCH-' || n",
        "last_seen_at": "%s - mod(n::bigint * 7919, 1209600) * interval '1 second'",  # over 14 days
        "enrolled_at": "%s - interval '30 days'",
        "push_token": "md5(n::text) || md5((n + 1)::text)",
        "push_magic": "md5(n::text)",
        "state": "'enrolled'",
    }
    insert_devices(count, generated, now)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Device._meta.db_table}")


def run(*, devices: int = 1_000_000) -> dict:
    """Each sweep's seconds and how many devices it touched, over `devices` devices."""
    from commands import sweeps as command_sweeps
    from devices import sweeps

    require_postgres()
    work = {
        "mark_inactive": sweeps.mark_inactive,
        "mark_inactive_again": sweeps.mark_inactive,
        "keepalive_due": sweeps.keepalive_due,
        "expire_commands": command_sweeps.expire_commands,
        "device_counts": lambda: sweeps.device_counts()["inactive"],
    }
    figures = {"devices": devices}
    with throwaway_database():
        _, figures["fill_s"] = timed(lambda: fill(devices))
        for key, _label in STEPS:
            result, seconds = timed(work[key])
            size = len(result) if isinstance(result, list) else result
            figures[key] = {"seconds": seconds, "devices": size}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1_000_000)
    args = parser.parse_args()
    setup_django()
    figures = run(devices=args.devices)
    print(f"filled {args.devices} devices in {figures['fill_s']:.1f} s")
    for key, label in STEPS:
        print(f"{label}: {figures[key]['seconds']:.2f} s ({figures[key]['devices']} devices)")


if __name__ == "__main__":
    main()
