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
indexes first to show what they buy. Target: under 150 ms per page. `run()` returns the
figures as a dict (bench/run.py).
"""

import argparse
import cProfile
import datetime as dt
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.testdb import require_postgres, setup_django, throwaway_database

PAGES = [
    ("page 1 (by name)", "/devices/"),
    ("deep page (1000 of 2000)", "/devices/?page=1000"),
    ("sorted by last seen, newest first", "/devices/?sort=-last_seen_at"),
    ("sorted by model, page 20", "/devices/?sort=model&page=20"),
    ("filtered + searched", "/devices/?q=ana&state=enrolled&platform=iOS&seen=7d"),
    ("group + OS version, by OS", "/devices/?group={group}&os_version=17&sort=os"),
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


def fill(count: int, prefix: str = "") -> int:
    """Groups, then `count` devices in one INSERT ... SELECT generate_series; UDIDs and group
    names start with `prefix`. Returns the pk of the third group (the group page's)."""
    from django.db import connection
    from django.utils import timezone

    from bench.fleet import insert_devices
    from devices.models import Device, DeviceGroup

    groups = DeviceGroup.objects.bulk_create(
        DeviceGroup(name=f"{prefix}Group {n:02d}") for n in range(GROUPS)
    )
    first_group = min(group.pk for group in groups)
    now = timezone.now()
    versions = [v for *_rest, vs in MODELS for v in vs]
    model_of = "mod(n * 7, 7)"
    generated = {
        "udid": f"'{prefix}' || upper(md5(n::text)::uuid::text)",
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
    return first_group + 2


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
    from django.db import connection

    with connection.cursor() as cursor:
        for name in LIST_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        cursor.execute("ANALYZE devices_device")


def device_query(queries: list[dict]) -> str:
    """The page's query over the device table (the longest one that reads it)."""
    candidates = [q["sql"] for q in queries if 'FROM "devices_device"' in q["sql"]]
    return max(candidates, key=len) if candidates else ""


def measure(get, url: str, runs: int) -> dict:
    """`get(url)` (its status) `runs` times after a warm-up: median and p95 in ms."""
    for _ in range(3):  # warm-up: connections, template caches
        assert get(url) == 200, url
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        status = get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert status == 200, (url, status)
    times.sort()
    return {
        "url": url,
        "median_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
    }


def measure_in_process(client, url: str, runs: int, explain: bool) -> dict:
    """measure() through Django's test Client, with the SQL of each run: how many queries,
    the time spent in them (median), and EXPLAIN ANALYZE of the device query if asked."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    captured = []

    def get(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            status = client.get(path).status_code
        captured.append(queries.captured_queries)
        return status

    figures = measure(get, url, runs)
    last = captured[-1]
    figures["queries"] = len(last)
    figures["sql_ms"] = statistics.median(
        sum(float(query["time"]) for query in queries) * 1000 for queries in captured[3:]
    )
    if explain:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + device_query(last))
            figures["explain"] = "\n".join("    " + row[0] for row in cursor.fetchall())
    return figures


def profile(client, url: str) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(10):
        client.get(url)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def slowest(figures: dict) -> dict:
    pages = figures["pages"].values()
    figures["slowest_median_ms"] = max(page["median_ms"] for page in pages)
    figures["slowest_p95_ms"] = max(page["p95_ms"] for page in pages)
    return figures


def run(
    *,
    devices: int = 100_000,
    runs: int = 30,
    explain: bool = False,
    profiled: bool = False,
    without_indexes: bool = False,
) -> dict:
    """Every page of PAGES over `devices` devices, in process (Django's test Client as a
    logged-in viewer) on a throwaway database: {"pages": {label: figures}, ...}."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from mdm_portal.roles import VIEWER, set_role

    require_postgres()
    figures = {"devices": devices, "runs": runs, "through": "in process", "pages": {}}
    with throwaway_database():
        start = time.perf_counter()
        group = fill(devices)
        figures["fill_s"] = time.perf_counter() - start
        if without_indexes:
            drop_list_indexes()
        viewer = get_user_model().objects.create_user("bench-viewer", "", "x")
        set_role(viewer, VIEWER)
        client = Client(HTTP_HOST="localhost")
        client.force_login(viewer)
        for label, url in PAGES:
            page = measure_in_process(client, url.format(group=group), runs, explain)
            figures["pages"][label] = page
        if profiled:
            figures["profile"] = profile(client, PAGES[0][1])
    return slowest(figures)


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
    setup_django()
    figures = run(
        devices=args.devices,
        runs=args.runs,
        explain=args.explain,
        profiled=args.profile,
        without_indexes=args.without_indexes,
    )
    print(f"filled {args.devices} devices in {figures['fill_s']:.1f} s")
    if args.without_indexes:
        print("without the device list's indexes: " + ", ".join(LIST_INDEXES))
    for label, page in figures["pages"].items():
        print(
            f"{label:38} median {page['median_ms']:6.1f} ms  p95 {page['p95_ms']:6.1f} ms  "
            f"{page['queries']} queries ({page['sql_ms']:.1f} ms in SQL)"
        )
        if "explain" in page:
            print(page["explain"])
    if "profile" in figures:
        print(figures["profile"])


if __name__ == "__main__":
    main()
