"""What a simulator run counts, the progress line it draws, and the summary it ends with.

One `Stats` per run, updated by every device (all on one event loop, so no locks): requests
and their latencies, commands answered by RequestType and status, errors by kind. `problems`
are what make the run fail (a device that could not enroll, a request with a status no device
expects); errors that a device handles as a real one does (a 401 that makes it re-enroll) are
counted but are not problems.

A 5xx is told apart by who sent it: the portal itself (`portal_5xx`, a problem), or the TLS
proxy in front of it saying it could not reach the portal (nginx's own 502/503/504 page while
gunicorn restarts: `unreachable`, with connection errors, and when, by the second). A device
retries those as a real one does. `duplicates` are commands a device was sent again after it
had executed them (answered Acknowledged or Error, and the portal took the answer): each is a
command executed twice, a problem.

Declarative management has its own figures: syncs, declarations fetched (by kind), asset data
downloaded, credentials obtained for credential assets (by ACME or SCEP), status reports
sent, and the failures devices reported (by Error code, once per declaration revision). Those
failures are what the devices were asked to do or could not do, not problems of the run; a
refused declarative request or asset download is one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DUPLICATE_EXAMPLES = 10  # commands executed twice named in the summary


@dataclass
class Stats:
    devices: int = 0
    enrolled: int = 0  # enrolled in this run (Authenticate + TokenUpdate answered 200)
    restored: int = 0  # taken from the state file, already enrolled
    enroll_failed: int = 0
    reenrolled: int = 0  # after a 401
    erased: int = 0
    released: int = 0  # let out of Setup Assistant (DeviceConfigured acknowledged)
    requests: int = 0
    # profile (or dep: MachineInfo), scep, acme, checkin, poll
    requests_by_kind: Counter = field(default_factory=Counter)
    commands: Counter = field(default_factory=Counter)  # (RequestType, Status)
    errors: Counter = field(default_factory=Counter)  # "kind: detail"
    problems: int = 0
    pushes: int = 0  # pushes the APNs listener accepted for our devices
    wakeups: int = 0  # polls started by a push
    unknown_pushes: int = 0
    latencies: list[float] = field(default_factory=list)
    portal_5xx: Counter = field(default_factory=Counter)  # "kind: HTTP status" from the portal
    unreachable: Counter = field(default_factory=Counter)  # connection errors, proxy's 5xx
    unreachable_seconds: Counter = field(default_factory=Counter)  # unix second -> count
    resent_reports: int = 0  # answers sent again after the portal was unreachable
    undelivered_reports: int = 0  # answers still not taken by the portal at the end
    duplicates: int = 0
    duplicate_examples: list[dict] = field(default_factory=list)
    last_exchange: dict[str, float] = field(default_factory=dict)  # UDID -> unix time
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    key_seconds: float = 0.0
    declarative_syncs: int = 0
    declarations_fetched: Counter = field(default_factory=Counter)  # by kind
    assets_downloaded: int = 0
    credentials: Counter = field(default_factory=Counter)  # certificates by acme / scep
    status_reports: int = 0
    declarative_failures: Counter = field(default_factory=Counter)  # by Error code

    def request(self, kind: str, seconds: float) -> None:
        self.requests += 1
        self.requests_by_kind[kind] += 1
        self.latencies.append(seconds)

    def error(self, kind: str, *, problem: bool = True) -> None:
        self.errors[kind] += 1
        if problem:
            self.problems += 1

    def server_error(self, kind: str, status: int) -> None:
        """A 5xx the portal answered itself: a problem."""
        self.portal_5xx[f"{kind}: HTTP {status}"] += 1
        self.error(f"{kind}: HTTP {status} from the portal")

    def unreachable_portal(self, kind: str, what: str) -> None:
        """The portal could not be reached (connection error, or the proxy's 502/503/504):
        the device tries again later, as a real one does; not a problem by itself."""
        self.unreachable[what] += 1
        self.unreachable_seconds[int(time.time())] += 1
        self.error(f"{kind}: {what}", problem=False)

    def duplicate(self, udid: str, command_uuid: str, request_type: str, status: str) -> None:
        """A command this device had executed (answered `status`) came again."""
        self.duplicates += 1
        if len(self.duplicate_examples) < DUPLICATE_EXAMPLES:
            self.duplicate_examples.append(
                {
                    "udid": udid,
                    "command_uuid": command_uuid,
                    "request_type": request_type,
                    "first_status": status,
                }
            )
        self.error("poll: a command executed before came again")

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.enroll_failed)

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def as_dict(self) -> dict:
        commands: dict[str, dict[str, int]] = {}
        for (request_type, status), count in sorted(self.commands.items()):
            commands.setdefault(request_type, {})[status] = count
        elapsed = self.elapsed
        return {
            "devices": self.devices,
            "enrolled": self.enrolled,
            "restored": self.restored,
            "enroll_failed": self.enroll_failed,
            "reenrolled": self.reenrolled,
            "erased": self.erased,
            "released": self.released,
            "requests": self.requests,
            "requests_by_kind": dict(sorted(self.requests_by_kind.items())),
            "commands_answered": sum(self.commands.values()),
            "commands": commands,
            "errors": dict(sorted(self.errors.items())),
            "problems": self.problems,
            "pushes": self.pushes,
            "wakeups": self.wakeups,
            "unknown_pushes": self.unknown_pushes,
            "seconds": round(elapsed, 3),
            "key_generation_seconds": round(self.key_seconds, 3),
            "requests_per_second": round(self.requests / elapsed, 1) if elapsed else 0.0,
            "latency_ms": {
                name: round(self.percentile(fraction) * 1000, 1)
                for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
            },
            "portal_5xx": dict(sorted(self.portal_5xx.items())),
            "unreachable": dict(sorted(self.unreachable.items())),
            "unreachable_seconds": {str(k): v for k, v in sorted(self.unreachable_seconds.items())},
            "resent_reports": self.resent_reports,
            "undelivered_reports": self.undelivered_reports,
            "duplicates": self.duplicates,
            "duplicate_examples": self.duplicate_examples,
            "last_exchange": {udid: round(t, 3) for udid, t in sorted(self.last_exchange.items())},
            "declarative": {
                "syncs": self.declarative_syncs,
                "declarations_fetched": dict(sorted(self.declarations_fetched.items())),
                "assets_downloaded": self.assets_downloaded,
                "credentials": dict(sorted(self.credentials.items())),
                "status_reports": self.status_reports,
                "failures": dict(sorted(self.declarative_failures.items())),
            },
            "ok": not self.failed,
        }


def summary_text(stats: Stats) -> str:
    data = stats.as_dict()
    lines = [
        f"devices: {data['devices']}  enrolled: {data['enrolled']}  from state: "
        f"{data['restored']}  failed to enroll: {data['enroll_failed']}  re-enrolled after "
        f"401: {data['reenrolled']}  erased: {data['erased']}"
        + (f"  released from Setup Assistant: {data['released']}" if data["released"] else ""),
        f"requests: {data['requests']} in {data['seconds']:.1f} s "
        f"({data['requests_per_second']}/s; keys made beforehand in "
        f"{data['key_generation_seconds']:.1f} s)  "
        + "  ".join(f"{k}: {v}" for k, v in data["requests_by_kind"].items()),
        "latency: " + "  ".join(f"{k} {v} ms" for k, v in data["latency_ms"].items()),
        f"commands answered: {data['commands_answered']}",
    ]
    for request_type, statuses in data["commands"].items():
        counts = ", ".join(f"{status} {count}" for status, count in statuses.items())
        lines.append(f"  {request_type}: {counts}")
    if data["pushes"] or data["unknown_pushes"]:
        lines.append(
            f"pushes received: {data['pushes']} (woke {data['wakeups']} polls), "
            f"for unknown tokens: {data['unknown_pushes']}"
        )
    lines.append(
        f"executed twice (sent again after an answer): {data['duplicates']}  "
        f"5xx from the portal: {sum(data['portal_5xx'].values())}  portal unreachable "
        f"(connection errors, the proxy's 502/503/504): {sum(data['unreachable'].values())}  "
        f"answers sent again: {data['resent_reports']}  undelivered: "
        f"{data['undelivered_reports']}"
    )
    for example in data["duplicate_examples"]:
        lines.append(
            f"  twice: {example['request_type']} {example['command_uuid']} to {example['udid']}"
        )
    lines += _declarative_lines(data["declarative"])
    lines.append(f"errors: {sum(data['errors'].values())}" + ("" if data["errors"] else " (none)"))
    for kind, count in data["errors"].items():
        lines.append(f"  {kind}: {count}")
    lines.append("result: OK" if data["ok"] else "result: FAILED")
    return "\n".join(lines)


def _declarative_lines(declarative: dict) -> list[str]:
    if not declarative["syncs"]:
        return []
    fetched = declarative["declarations_fetched"]
    by_kind = ", ".join(f"{kind} {count}" for kind, count in fetched.items())
    credentials = declarative["credentials"]
    lines = [
        f"declarative syncs: {declarative['syncs']}  declarations fetched: "
        f"{sum(fetched.values())}"
        + (f" ({by_kind})" if by_kind else "")
        + f"  assets downloaded: {declarative['assets_downloaded']}  credentials obtained: "
        f"{sum(credentials.values())}  status reports: {declarative['status_reports']}",
        f"declaration failures reported: {sum(declarative['failures'].values())}"
        + ("" if declarative["failures"] else " (none)"),
    ]
    for code, count in declarative["failures"].items():
        lines.append(f"  {code}: {count}")
    return lines


def write_json(stats: Stats, path: Path) -> None:
    path.write_text(json.dumps(stats.as_dict(), indent=2) + "\n")


class Progress:
    """A one-line progress bar on stderr (a terminal only; a log gets a line every 10 s)."""

    WIDTH = 30

    def __init__(self, stats: Stats, stream=None):
        self.stats = stats
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.phase = "enrolling"
        self._task: asyncio.Task | None = None

    def line(self) -> str:
        stats = self.stats
        done = stats.enrolled + stats.restored + stats.enroll_failed
        total = max(stats.devices, 1)
        filled = int(self.WIDTH * min(done, total) / total)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        rate = stats.requests / stats.elapsed if stats.elapsed else 0.0
        return (
            f"[{bar}] {done}/{stats.devices} {self.phase}  {stats.requests} requests "
            f"({rate:.0f}/s)  {sum(stats.commands.values())} commands  "
            f"{sum(stats.errors.values())} errors"
        )

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._draw())

    async def _draw(self) -> None:
        interval = 0.2 if self.tty else 10.0
        while True:
            await asyncio.sleep(interval)
            self.draw()

    def draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.tty:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
