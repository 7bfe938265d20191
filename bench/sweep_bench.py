"""Benchmark of the sweeps over a large fleet (PostgreSQL): inactivity, keep-alive, expiry.

    eval "$(scripts/services.sh env)"; python bench/sweep_bench.py [--devices 1000000]

Fills a throwaway test database with devices last seen between now and 14 days ago (so about
half are past the 7-day inactivity limit), then times each sweep. Prints figures only.
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
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.fleet import insert_devices  # noqa: E402


def fill(count: int) -> None:
    """Insert `count` managed devices in one INSERT ... SELECT generate_series."""
    from devices.models import Device

    now = timezone.now()
    generated = {
        "udid": "'BENCH-' || n",
        "last_seen_at": "%s - mod(n, 1209600) * interval '1 second'",  # over 14 days
        "enrolled_at": "%s - interval '30 days'",
        "push_token": "md5(n::text) || md5((n + 1)::text)",
        "push_magic": "md5(n::text)",
        "state": "'enrolled'",
    }
    insert_devices(count, generated, now)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Device._meta.db_table}")


def timed(label: str, work) -> None:
    start = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - start
    size = len(result) if isinstance(result, list) else result
    print(f"{label}: {elapsed:.2f} s ({size} devices)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit('run it on PostgreSQL: eval "$(scripts/services.sh env)" first')
    from commands import sweeps as command_sweeps
    from devices import sweeps

    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        start = time.perf_counter()
        fill(args.devices)
        print(f"filled {args.devices} devices in {time.perf_counter() - start:.1f} s")
        timed("inactivity sweep (mark inactive)", sweeps.mark_inactive)
        timed("inactivity sweep again (nothing new)", sweeps.mark_inactive)
        timed("keep-alive selection", sweeps.keepalive_due)
        timed("command expiry", command_sweeps.expire_commands)
        timed("device counts", lambda: sweeps.device_counts()["inactive"])
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
