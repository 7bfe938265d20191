"""The soak: a fleet of simulated devices on the production stack for minutes, commands
enqueued continuously through the REST API, the web side and the worker each restarted once
in the middle; then nothing may be lost or doubled.

    python bench/soak.py [--devices 2000] [--minutes 10] [--rate 2] [--stop]

1. The stack: `scripts/serve.sh start` on its own folder and ports (var/soak, HTTPS 9643,
   PostgreSQL 55474, Redis 56421; --dir and the port options change them), its pushes going
   to the simulator's APNs stand-in (MDM_APNS_URL, MDM_APNS_CA_FILE), with a demo push
   certificate, an enrollment "Soak" and an API token. A running stack is reused (restarted
   first when its APNs settings are not these).
2. The fleet: `manage.py mdm_simulate` enrolls the devices (keys made up front) into a state
   file (var/soak/fleet.json), so a second run reuses the enrolled fleet; the soak's minutes
   count from there.
3. The soak: mdm_simulate keeps the fleet polling (--poll-interval, and woken by pushes) while
   this process enqueues commands (bench/soak_load.py); at a third of the time the web side
   restarts (`serve.sh stop --web-only`, `serve.sh start`), at two thirds the worker
   (`stop --workers-only`, `start`). Then the enqueuing stops, the fleet drains for --drain
   seconds, the simulator stops.
4. The verdict (bench/soak_check.py), from the database and the simulator's JSON and state:
   a table, var/soak/results.json, and exit status 1 when a command was lost (stuck as sent,
   an answer not recorded, a 201 without its rows), executed twice, or the portal answered a
   5xx or could not be reached outside the restarts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.soak_check import check, table  # noqa: E402
from bench.soak_load import Enqueuer  # noqa: E402
from simulator.apns import ensure_tls_pair  # noqa: E402
from simulator.state import load_fleet  # noqa: E402

# What may not leak from the caller into the stack (the stack decides its own).
PORTAL_SETTINGS = ("MDM_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")
PORTAL_SETTINGS += ("CSRF_TRUSTED_ORIGINS", "LOG_LEVEL", "DB_CONN_MAX_AGE")
PASSED_ON = ("MDM_SERVE_VENV", "MDM_WEB_WORKERS", "MDM_CELERY_WORKERS", "MDM_STOP_TIMEOUT")
ENROLLMENT = "Soak"
API_USER = "soak"


@dataclass
class Config:
    devices: int = 2000
    minutes: float = 10.0
    rate: float = 2.0  # targeted enqueue requests per second
    fleet_every: float = 90.0  # seconds between commands to the whole fleet (0: none)
    drain: float = 60.0
    poll_interval: float = 45.0
    concurrency: int = 32
    enroll_concurrency: int = 16
    not_now_rate: float = 0.02
    folder: str = str(ROOT / "var" / "soak")
    https_port: int = 9643
    pg_port: int = 55474
    redis_port: int = 56421
    apns_port: int = 9644
    public_url: str = ""
    stop: bool = False  # stop the stack at the end

    @property
    def url(self) -> str:
        return self.public_url or f"https://localhost:{self.https_port}"

    @property
    def path(self) -> Path:
        return Path(self.folder).resolve()


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Stack:
    """scripts/serve.sh on the soak's folder and ports, with its APNs settings."""

    def __init__(self, config: Config):
        self.config = config
        folder = config.path
        self.apns_dir = folder / "apns"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(PORTAL_SETTINGS)}
        self.env.pop("PYTHONPATH", None)
        self.env.update({k: os.environ[k] for k in PASSED_ON if k in os.environ})
        self.env.update(
            MDM_SERVE_DIR=str(folder),
            MDM_HTTPS_PORT=str(config.https_port),
            MDM_SERVE_PG_PORT=str(config.pg_port),
            MDM_SERVE_REDIS_PORT=str(config.redis_port),
            MDM_PUBLIC_URL=config.url,
            MDM_APNS_URL=f"https://127.0.0.1:{config.apns_port}",
            MDM_APNS_CA_FILE=str(self.apns_dir / "apns-cert.pem"),
            MDM_PUSH_COALESCE_SECONDS="1",
        )
        self.exports: dict[str, str] = {}

    def serve(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(ROOT / "scripts" / "serve.sh"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if check and result.returncode != 0:
            raise SystemExit(f"serve.sh {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def read_exports(self) -> dict[str, str]:
        result = self.serve("env", check=False)
        values = {}
        for line in result.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = shlex.split(value)[0] if value else ""
        return values if result.returncode == 0 else {}

    def start(self) -> None:
        self.config.path.mkdir(parents=True, exist_ok=True)
        self.config.path.chmod(0o755)  # the service user reads the APNs certificate below
        ensure_tls_pair(self.apns_dir)
        running = self.read_exports()
        wanted = {k: self.env[k] for k in ("MDM_APNS_URL", "MDM_APNS_CA_FILE")}
        if running and any(running.get(k) != v for k, v in wanted.items()):
            log("the stack runs with other APNs settings: restarting it")
            self.serve("stop")
        started = time.monotonic()
        self.serve("start")
        log(f"stack up at {self.config.url} ({time.monotonic() - started:.0f} s)")
        self.exports = self.read_exports()

    def restart(self, part: str) -> dict:
        """Stop one part (`web` or `workers`) and start the stack again (which starts what is
        stopped); returns when and for how long (unix times)."""
        began = time.time()
        self.serve("stop", f"--{part}-only")
        self.serve("start")
        ended = time.time()
        log(f"{part} restarted ({ended - began:.1f} s)")
        return {"began": began, "ended": ended, "down": round(ended - began, 1)}

    @property
    def ca_file(self) -> Path:
        return self.config.path / "tls" / "chain.pem"


def setup_django(exports: dict[str, str]) -> None:
    os.environ.update(exports)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mdm_portal.settings"
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per enqueue otherwise


def prepare_portal() -> tuple[str, str]:
    """A demo push certificate, the Soak enrollment and an operator's API token: (token of
    the enrollment, API key)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from enrollment.enrollments import EnrollmentSpec, create_enrollment
    from enrollment.mobileconfig import unavailable_reason
    from enrollment.models import Enrollment
    from mdm_portal.api_tokens import create_token
    from mdm_portal.roles import OPERATOR, set_role

    call_command("mdm_pushcert", "demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    enrollment = next(
        (
            e
            for e in Enrollment.objects.filter(name=ENROLLMENT).order_by("-id")
            if unavailable_reason(e) is None
        ),
        None,
    ) or create_enrollment(EnrollmentSpec(name=ENROLLMENT), by="bench/soak.py")
    user, _ = get_user_model().objects.get_or_create(username=API_USER)
    set_role(user, OPERATOR)
    _token, key = create_token(user, "soak", actor="bench/soak.py")
    return enrollment.token, key


def usable_fleet(state: Path, count: int) -> list[str]:
    """The UDIDs of the state file's devices the portal has enrolled; the file is dropped when
    it names devices the portal does not know (a new database)."""
    from commands.queue import queueable
    from devices.models import Device

    try:
        kept = [d.udid for d in load_fleet(state) if d.enrolled and not d.erased][:count]
    except ValueError:
        kept = []
    ready = queueable(Device.objects.filter(udid__in=kept, state=Device.State.ENROLLED))
    if kept and ready.count() < len(kept):
        log(f"{state} names devices the portal cannot send commands to: enrolling a new fleet")
        state.unlink()
        return []
    return kept


def simulate(config: Config, stack: Stack, token: str, name: str, *extra: str):
    """`manage.py mdm_simulate` for the fleet, as a subprocess (its log in the folder)."""
    folder = config.path
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "mdm_simulate",
        "--url", config.url,
        "--devices", str(config.devices),
        "--enrollment", token,
        "--client-cert",
        "--ca-file", str(stack.ca_file),
        "--state", str(folder / "fleet.json"),
        "--json", str(folder / f"{name}.json"),
        "--apns-listen", f"127.0.0.1:{config.apns_port}",
        "--apns-tls-dir", str(stack.apns_dir),
        *extra,
    ]  # fmt: skip
    env = {**stack.env, **stack.exports, "PYTHONUNBUFFERED": "1"}
    with open(folder / f"{name}.log", "w") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)


def enroll(config: Config, stack: Stack, token: str) -> dict:
    state = config.path / "fleet.json"
    have = usable_fleet(state, config.devices)
    if len(have) >= config.devices:
        log(f"fleet: {len(have)} devices from {state}")
        return {"reused": len(have), "enrolled": 0, "seconds": 0.0}
    log(f"enrolling {config.devices - len(have)} devices (keys first; log: enroll.log)")
    started = time.monotonic()
    process = simulate(
        config, stack, token, "enroll", "--concurrency", str(config.enroll_concurrency)
    )
    code = process.wait()
    seconds = time.monotonic() - started
    data = json.loads((config.path / "enroll.json").read_text())
    if code != 0 or data["enroll_failed"]:
        raise SystemExit(f"enrollment failed (see {config.path / 'enroll.log'})")
    log(f"enrolled {data['enrolled']} devices in {seconds:.0f} s")
    return {"reused": len(have), "enrolled": data["enrolled"], "seconds": round(seconds, 1)}


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def soak(config: Config, stack: Stack, token: str, key: str) -> dict:
    udids = [d.udid for d in load_fleet(config.path / "fleet.json")][: config.devices]
    seconds = config.minutes * 60
    log(f"soak: {len(udids)} devices, {seconds:.0f} s, then {config.drain:.0f} s of drain")
    simulator = simulate(
        config, stack, token, "simulator",
        "--concurrency", str(config.concurrency),
        "--duration", "0",
        "--poll-interval", str(config.poll_interval),
        "--not-now-rate", str(config.not_now_rate),
    )  # fmt: skip
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    enqueuer = Enqueuer(
        config.url, key, udids, rate=config.rate, fleet_every=config.fleet_every,
        ca_file=str(stack.ca_file),
    )  # fmt: skip
    enqueuer.start()
    restarts = {}
    try:
        for part, fraction in (("web", 1 / 3), ("workers", 2 / 3)):
            wait_until(t0 + seconds * fraction)
            restarts[part] = {"at": time.monotonic() - t0, **stack.restart(part)}
        wait_until(t0 + seconds)
    finally:
        enqueuer.stop()
    log(f"enqueuing stopped ({enqueuer.stats.queued} commands); draining")
    wait_until(t0 + seconds + config.drain)
    ended_at = dt.datetime.now(dt.UTC)
    simulator.send_signal(signal.SIGTERM)
    try:
        code = simulator.wait(timeout=300)
    except subprocess.TimeoutExpired:
        simulator.kill()
        code = simulator.wait()
    log(f"simulator stopped (exit {code})")
    return {
        "udids": udids,
        "started": started_at,
        "ended": ended_at,
        "seconds": seconds,
        "restarts": restarts,
        "enqueuer": enqueuer,
        "simulator_exit": code,
    }


def verdict(config: Config, run: dict, enrollment: dict) -> dict:
    folder = config.path
    simulator = json.loads((folder / "simulator.json").read_text())
    executed = {d.udid: d.executed for d in load_fleet(folder / "fleet.json")}
    enqueue = run["enqueuer"].stats
    restarts = run["restarts"]
    checks = check(
        udids=run["udids"],
        started=run["started"],
        ended=run["ended"],
        drain=config.drain,
        simulator=simulator,
        executed=executed,
        enqueued=enqueue.command_uuids,
        enqueue=enqueue.as_dict(),
        restarts=[(r["began"], r["ended"]) for r in restarts.values()],
    )
    if run["simulator_exit"] not in (0, 1):
        checks["problems"].append(f"the simulator exited with {run['simulator_exit']}")
    summary = {k: v for k, v in simulator.items() if k not in ("last_exchange",)}
    return {
        "config": asdict(config),
        "devices": len(run["udids"]),
        "enrollment": enrollment,
        "started": run["started"].isoformat(),
        "ended": run["ended"].isoformat(),
        "soak_seconds": run["seconds"],
        "drain_seconds": config.drain,
        "restarts": {
            "web": restarts["web"],
            "worker": restarts["workers"],
        },
        "enqueue": enqueue.as_dict(),
        "simulator": summary,
        "checks": checks,
        "ok": not checks["problems"],
    }


def run(config: Config) -> dict:
    stack = Stack(config)
    stack.start()
    try:
        setup_django(stack.exports)
        token, key = prepare_portal()
        enrollment = enroll(config, stack, token)
        outcome = soak(config, stack, token, key)
        results = verdict(config, outcome, enrollment)
    finally:
        if config.stop:
            stack.serve("stop", check=False)
            log("stack stopped")
    path = config.path / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print(f"results: {path}")
    return results


def parse(argv: list[str] | None = None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", help=f"(default {value})")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"(default {value})")
    parser.set_defaults(folder=defaults.folder)
    parser.add_argument("--dir", dest="folder", help="the stack's folder (default var/soak)")
    return Config(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    results = run(parse(argv))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
