"""Benchmark of the device list (`/devices/`) at fleet scale (PostgreSQL).

    eval "$(scripts/services.sh env)"; python bench/ui_bench.py [--devices 100000] [--runs 30]
        [--explain] [--profile]

Fills a throwaway test database (its own name, so parallel runs do not collide) with devices
in one INSERT ... SELECT generate_series: a realistic mix of states, platforms, models, OS
versions, groups and last-seen times. Then renders pages of the list through Django's test
Client as a logged-in viewer (without the test environment's template instrumentation), each
`--runs` times after a warm-up, and prints the median and p95 in ms, the SQL queries per page
and the time spent in SQL. `--explain` prints EXPLAIN ANALYZE of each page's device query,
`--profile` the Python hot spots of one page (cProfile), `--without-indexes` drops the list's
indexes first to show what they buy. Target: under 150 ms per page.
"""

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdm_portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.fleet import insert_devices  # noqa: E402

PAGES = [
    ("page 1 (by name)", "/devices/"),
    ("deep page (1000 of 2000)", "/devices/?page=1000"),
    ("sorted by last seen, newest first", "/devices/?sort=-last_seen_at"),
    ("sorted by model, page 20", "/devices/?sort=model&page=20"),
    ("filtered + searched", "/devices/?q=ana&state=enrolled&platform=iOS&seen=7d"),
    ("group + OS version, by OS", "/devices/?group=3&os_version=17&sort=os"),
    ("search by serial", "/devices/?q=SN0004242"),
    ("sorted by group", "/devices/?sort=group"),
    ("every enrolled device selected (count)", "/devices/?state=enrolled&select=all"),
]
GROUPS = 20
MODELS = [  # (ModelName, ProductName, platform, OS versions)
    ("iPhone", "iPhone15,2", "iOS", ["17.5.1", "17.4.1", "16.7.8", "17.5"]),
    ("iPhone", "iPhone16,1", "iOS", ["17.5.1", "17.5"]),
    ("iPad", "iPad13,18", "iOS", ["17.5", "16.7.8"]),
    ("MacBook Air", "Mac14,2", "macOS", ["14.5", "13.6.7"]),
    ("MacBook Pro", "Mac15,7", "macOS", ["14.5", "14.4.1"]),
    ("iMac", "iMac21,1", "macOS", ["14.5"]),
    ("Apple TV", "AppleTV14,1", "tvOS", ["17.5"]),
]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emre", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea"]


def _case(expression: str, values: list[str]) -> str:
    """SQL picking values[expression mod len] (values are ours, quoted as literals)."""
    whens = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"(CASE mod({expression}, {len(values)}) {whens} END)"


def fill(count: int) -> None:
    """Groups, then `count` devices in one INSERT ... SELECT generate_series."""
    from devices.models import Device, DeviceGroup

    DeviceGroup.objects.bulk_create(DeviceGroup(name=f"Group {n:02d}") for n in range(GROUPS))
    first_group = DeviceGroup.objects.order_by("pk").values_list("pk", flat=True).first()
    now = timezone.now()
    versions = [v for *_rest, vs in MODELS for v in vs]
    model_of = "mod(n * 7, 7)"
    generated = {
        "udid": "upper(md5(n::text)::uuid::text)",
        "serial_number": "'SN' || lpad(n::text, 7, '0')",
        "device_name": _case("n", NAMES)
        + " || '''s ' || "
        + _case(model_of, [m[0] for m in MODELS]),
        "model_name": _case(model_of, [m[0] for m in MODELS]),
        "product_name": _case(model_of, [m[1] for m in MODELS]),
        "model": "'M' || mod(n, 97)",
        "platform": _case(model_of, [m[2] for m in MODELS]),
        "os_version": _case("n / 7", versions),
        "build_version": "'21F' || mod(n, 90)",
        # 80% enrolled, 12% pending, 8% checked out.
        "state": "(CASE WHEN mod(n, 25) < 20 THEN 'enrolled' WHEN mod(n, 25) < 23 THEN 'pending'"
        " ELSE 'checked_out' END)",
        "group_id": f"(CASE WHEN mod(n, 7) = 0 THEN NULL"
        f" ELSE {first_group} + mod(n, {GROUPS}) END)",
        # Last seen over 30 days, most devices within the last day or two.
        "last_seen_at": "%s - (power(mod(n * 7919, 1000) / 1000.0, 3) * 30) * interval '1 day'",
        "enrolled_at": "%s - interval '90 days'",
        "push_token": "md5(n::text) || md5((n + 1)::text)",
        "push_magic": "md5(n::text)",
        "token_invalid_at": "(CASE WHEN mod(n, 100) = 42 THEN %s ELSE NULL END)",
    }
    insert_devices(count, generated, now)
    with connection.cursor() as cursor:
        # What the inactivity sweep would have marked.
        cursor.execute(
            f"UPDATE {Device._meta.db_table} SET inactive_since = %s "  # noqa: S608
            "WHERE state = 'enrolled' AND last_seen_at < %s",
            [now, now - dt.timedelta(days=7)],
        )
        cursor.execute(f"VACUUM ANALYZE {Device._meta.db_table}")


LIST_INDEXES = [
    "device_by_name",
    "device_by_serial",
    "device_by_model",
    "device_by_os",
    "device_by_state",
    "device_by_last_seen",
    "device_search_trgm",
]


def drop_list_indexes() -> None:
    with connection.cursor() as cursor:
        for name in LIST_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        cursor.execute("ANALYZE devices_device")
    print("without the device list's indexes: " + ", ".join(LIST_INDEXES))


def device_query(queries: list[dict]) -> str:
    """The page's query over the device table (the longest one that reads it)."""
    candidates = [q["sql"] for q in queries if 'FROM "devices_device"' in q["sql"]]
    return max(candidates, key=len) if candidates else ""


def measure(client: Client, label: str, url: str, runs: int, explain: bool) -> None:
    for _ in range(3):  # warm-up: connections, template caches
        assert client.get(url).status_code == 200, url
    times, sql_times = [], []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - start
        assert response.status_code == 200, (url, response.status_code)
        times.append(elapsed * 1000)
        sql_times.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(
        f"{label:38} median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms  "
        f"{len(captured.captured_queries)} queries ({statistics.median(sql_times):.1f} ms in SQL)"
    )
    if explain:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + device_query(captured.captured_queries))
            print("\n".join("    " + row[0] for row in cursor.fetchall()))


def profile(client: Client, url: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(10):
        client.get(url)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each page")
    parser.add_argument("--profile", action="store_true", help="cProfile the first page")
    parser.add_argument(
        "--without-indexes",
        action="store_true",
        help="drop the device list's indexes (migration 0010) first, to see what they buy",
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit('run it on PostgreSQL: eval "$(scripts/services.sh env)" first')
    from django.contrib.auth import get_user_model

    from mdm_portal.roles import VIEWER, set_role

    # No setup_test_environment(): its template instrumentation (the test Client keeping a copy
    # of every context) is test machinery that would be timed with the page.
    # A name of its own: other benchmarks and test runs share the server.
    connection.settings_dict["TEST"]["NAME"] = f"test_mdm_ui_bench_{os.getpid()}"
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        start = time.perf_counter()
        fill(args.devices)
        print(f"filled {args.devices} devices in {time.perf_counter() - start:.1f} s")
        if args.without_indexes:
            drop_list_indexes()
        viewer = get_user_model().objects.create_user("bench-viewer", "", "x")
        set_role(viewer, VIEWER)
        client = Client()
        client.force_login(viewer)
        for label, url in PAGES:
            measure(client, label, url, args.runs, args.explain)
        if args.profile:
            profile(client, PAGES[0][1])
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
