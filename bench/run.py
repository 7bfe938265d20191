"""The whole benchmark set, one command, against the production stack:

    python bench/run.py [--quick] [--json FILE] [--only loop,scep,...] [--keep]

Starts the bench stack (bench/stack.py: `scripts/serve.sh` on var/bench and its own ports,
MDM_BENCH_* to change them), points Django at its database, runs each part, stops the stack
(unless --keep), prints one table (figure, value, target, pass/FAIL) and writes every figure
as JSON (default var/bench/results.json; the table's rows under "table"). The parts:

    loop    the command loop through nginx + gunicorn (wrk) vs the floor (/ping, same run),
            latency, errors, and the SQL statements of each kind of exchange
    enroll  enrollment by the fleet simulator (profile, SCEP, Authenticate, TokenUpdate,
            initial inventory) over HTTPS; skipped while mdm_simulate is not there
    scep    certificates per second, the portal (stack's /scep) vs Debian's scepserver
    push    10,000 pushes through the APNs client to the lean HTTP/2 stand-in
    sweep   the inactivity sweep over 1,000,000 devices
    ui      the device list at 100,000 devices through nginx and gunicorn, as a logged-in
            viewer (the devices in the stack's database meanwhile)
    rss     the largest resident memory of a gunicorn worker, after the others

push and sweep run on one throwaway database on the stack's PostgreSQL (its superuser, over
the cluster's private socket). `--quick` runs every part with small counts (a smoke
test; the targets of push and sweep scale with the count, the others do not). Exit status 1
when a part failed to run (a target missed is a figure, not an error).
"""

import argparse
import json
import logging
import os
import sys
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import rows, table  # noqa: E402
from bench.stack import BENCH_ENV, Stack  # noqa: E402
from bench.testdb import setup_django, throwaway_database  # noqa: E402

PARTS = ("loop", "enroll", "scep", "push", "sweep", "ui", "rss")
ON_THROWAWAY_DATABASE = {"push", "sweep"}
SIZES = {
    "full": {
        "loop": {"devices": 2000, "commands": 8, "threads": 32, "seconds": 10},
        "enroll": {"devices": 500, "concurrency": 16},
        "scep": {"requests": 200, "concurrency": 4},
        "push": {"devices": 10_000},
        "sweep": {"devices": 1_000_000},
        "ui": {"devices": 100_000, "runs": 30},
    },
    "quick": {
        "loop": {"devices": 50, "commands": 2, "threads": 4, "seconds": 2},
        "enroll": {"devices": 10, "concurrency": 4},
        "scep": {"requests": 10, "concurrency": 2},
        "push": {"devices": 500},
        "sweep": {"devices": 10_000},
        "ui": {"devices": 2000, "runs": 3},
    },
}


def worker_rss(stack: Stack) -> dict:
    """VmRSS of each gunicorn worker (MB) and the largest."""
    workers = {}
    for pid in stack.web_workers():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                workers[str(pid)] = int(line.split()[1]) / 1024
    if not workers:
        raise RuntimeError("no gunicorn worker found")
    return {"workers": workers, "max_mb": max(workers.values())}


def run_part(name: str, stack: Stack, sizes: dict) -> dict:
    from bench import enroll_bench, loop_bench, push_bench, scep_bench, sweep_bench, ui_http

    if name == "loop":
        return loop_bench.run(stack.url, **sizes["loop"])
    if name == "enroll":
        return enroll_bench.run(stack.url, stack.ca_file, **sizes["enroll"])
    if name == "scep":
        return scep_bench.run(stack.url, stack.ca_file, **sizes["scep"])
    if name == "push":
        return push_bench.run(**sizes["push"])
    if name == "sweep":
        return sweep_bench.run(**sizes["sweep"])
    if name == "ui":
        return ui_http.run(stack.url, stack.ca_file, **sizes["ui"])
    return worker_rss(stack)


def run_parts(parts: list[str], stack: Stack, sizes: dict) -> dict:
    """Each part's figures ({"error": traceback} when it raised), in PARTS order."""
    results = {}
    on_database = [part for part in parts if part in ON_THROWAWAY_DATABASE]
    with ExitStack() as database:
        for name in parts:
            if on_database and name == on_database[0]:
                log("creating the throwaway database")
                database.enter_context(throwaway_database(stack.superuser))
            log(f"{name}: running")
            started = time.perf_counter()
            try:
                figures = run_part(name, stack, sizes)
            except Exception:  # noqa: BLE001 - reported in the table and the JSON
                figures = {"error": traceback.format_exc()}
                log(figures["error"])
            figures["part_seconds"] = round(time.perf_counter() - started, 1)
            results[name] = figures
            log(f"{name}: done in {figures['part_seconds']} s")
            if on_database and name == on_database[-1]:
                database.close()
    return results


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(BENCH_ENV["MDM_SERVE_DIR"]) / "results.json",
        help="where the figures go (default: %(default)s)",
    )
    parser.add_argument("--only", help=f"comma-separated parts among {','.join(PARTS)}")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    parts = list(PARTS)
    if args.only:
        wanted = {part.strip() for part in args.only.split(",") if part.strip()}
        if unknown := wanted - set(PARTS):
            parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
        parts = [part for part in PARTS if part in wanted]
    mode = "quick" if args.quick else "full"

    log(f"starting the bench stack ({BENCH_ENV['MDM_PUBLIC_URL']}, {BENCH_ENV['MDM_SERVE_DIR']})")
    started = time.time()
    stack = Stack.start()
    try:
        setup_django()
        logging.disable(logging.INFO)  # the portal's and httpx's request logs
        results = run_parts(parts, stack, SIZES[mode])
    finally:
        if not args.keep:
            log("stopping the bench stack")
            stack.stop()
    all_rows = [row for name, figures in results.items() for row in rows(name, figures)]
    print(table(all_rows))
    report = {
        "mode": mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "url": stack.url,
        "cpus": os.cpu_count(),
        "sizes": {name: SIZES[mode].get(name, {}) for name in parts},
        "table": [row.as_dict() for row in all_rows],
        "parts": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"figures written to {args.json}")
    return 1 if any("error" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
