"""The soak's verdict: what became of every command, read from the portal's database (Django
set up against the stack, see bench/soak.py) and the simulator's own record.

- every queue row of the fleet's commands created since the soak started, by final status
  (acknowledged, error, command_format_error, expired, canceled, still queued, not_now, sent);
- stuck: a row still `sent` whose sent_at is older than the drain period although its device
  polled after it (it was neither answered nor sent again: a lost command);
- lost answers: a command a simulated device executed (answered Acknowledged or Error, kept in
  the state file) whose row does not say so;
- missing: a command the API answered 201 for that is not in the database, or has fewer rows
  than devices;
- executed twice: the simulator's duplicates (a command sent again after its answer was taken);
- 5xx from the portal (the simulator's and the enqueuer's), and the portal unreachable
  (connection errors, nginx's 502 page) outside the restarts' windows;
- devices that stopped polling.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

OUTCOMES = [
    "acknowledged",
    "error",
    "command_format_error",
    "expired",
    "canceled",
    "queued",
    "not_now",
    "sent",
]
FINAL = {"Acknowledged": "acknowledged", "Error": "error"}
EXAMPLES = 5
WINDOW_BEFORE, WINDOW_AFTER = 2, 5  # seconds around a restart that may see it


def within(second: int, windows: list[tuple[float, float]]) -> bool:
    return any(start - WINDOW_BEFORE <= second <= end + WINDOW_AFTER for start, end in windows)


def unreachable_outside(seconds: dict[str, int], windows) -> int:
    return sum(count for second, count in seconds.items() if not within(int(second), windows))


def _rows(udids: list[str], since: dt.datetime | None):
    from commands.models import QueuedCommand

    rows = QueuedCommand.objects.filter(device__udid__in=udids)
    if since is not None:
        rows = rows.filter(command__created_at__gte=since)
    return rows.values_list(
        "device__udid", "command__uuid", "request_type", "status", "sent_at", "created_at"
    )


def check(
    *,
    udids: list[str],
    started: dt.datetime,
    ended: dt.datetime,
    drain: float,
    simulator: dict,
    executed: dict[str, dict[str, str]],
    enqueued: list[str],
    enqueue: dict,
    restarts: list[tuple[float, float]],
) -> dict:
    """The soak's figures and its problems (an empty `problems` list: nothing lost or doubled)."""
    from commands.models import Command, QueuedCommand

    last = simulator.get("last_exchange", {})
    cutoff = ended - dt.timedelta(seconds=drain)
    outcomes: Counter = Counter()
    by_type: dict[str, Counter] = {}
    stuck, silent, old_queued = [], 0, 0
    for udid, command_uuid, request_type, status, sent_at, created_at in _rows(udids, started):
        outcomes[status] += 1
        by_type.setdefault(request_type, Counter())[status] += 1
        polled = last.get(udid, 0.0)
        if status == "sent" and sent_at < cutoff:
            if polled > sent_at.timestamp() + 1:
                stuck.append({"udid": udid, "command_uuid": command_uuid, "type": request_type})
            else:
                silent += 1
        elif status == "queued" and created_at < cutoff and polled > created_at.timestamp() + 1:
            old_queued += 1

    lost = []
    recorded = {(u, c): s for u, c, _t, s, _a, _b in _rows(udids, None)}
    for udid, commands in executed.items():
        for command_uuid, answered in commands.items():
            status = recorded.get((udid, command_uuid))
            if status is not None and status != FINAL.get(answered):
                lost.append(
                    {
                        "udid": udid,
                        "command_uuid": command_uuid,
                        "answered": answered,
                        "recorded": status,
                    }
                )

    known = dict(Command.objects.filter(uuid__in=enqueued).values_list("uuid", "device_count"))
    row_counts = Counter(
        QueuedCommand.objects.filter(command__uuid__in=enqueued).values_list(
            "command__uuid", flat=True
        )
    )
    missing = [uuid for uuid in enqueued if uuid not in known]
    short = [uuid for uuid, count in known.items() if row_counts[uuid] < count]

    polling_since = ended.timestamp() - drain
    stopped = [udid for udid in udids if last.get(udid, 0.0) < polling_since]
    portal_5xx = sum(simulator.get("portal_5xx", {}).values()) + sum(
        enqueue.get("portal_5xx", {}).values()
    )
    outside = unreachable_outside(simulator.get("unreachable_seconds", {}), restarts)
    outside += unreachable_outside(enqueue.get("unreachable_seconds", {}), restarts)
    duplicates = simulator.get("duplicates", 0)
    figures = {
        "rows": sum(outcomes.values()),
        "outcomes": {name: outcomes.get(name, 0) for name in OUTCOMES},
        "outcomes_by_type": {t: dict(sorted(c.items())) for t, c in sorted(by_type.items())},
        "stuck_sent": len(stuck),
        "stuck_examples": stuck[:EXAMPLES],
        "sent_to_silent_devices": silent,
        "queued_older_than_drain": old_queued,
        "lost_answers": len(lost),
        "lost_examples": lost[:EXAMPLES],
        "enqueued_missing": len(missing),
        "enqueued_short_of_rows": len(short),
        "executed_twice": duplicates,
        "duplicate_examples": simulator.get("duplicate_examples", []),
        "portal_5xx": portal_5xx,
        "unreachable": sum(simulator.get("unreachable", {}).values())
        + sum(enqueue.get("unreachable", {}).values()),
        "unreachable_outside_restarts": outside,
        "devices_polling_at_end": len(udids) - len(stopped),
        "devices_stopped_polling": len(stopped),
        "undelivered_answers": simulator.get("undelivered_reports", 0),
    }
    problems = []
    for name, what in [
        ("stuck_sent", "commands stuck as sent (neither answered nor sent again)"),
        ("lost_answers", "answers the devices gave that the portal did not record"),
        ("enqueued_missing", "commands the API queued (201) that are not in the database"),
        ("enqueued_short_of_rows", "commands with fewer queue rows than devices"),
        ("executed_twice", "commands executed twice"),
        ("portal_5xx", "5xx answered by the portal itself"),
        ("unreachable_outside_restarts", "portal unreachable outside the restarts"),
        ("devices_stopped_polling", "devices that stopped polling"),
    ]:
        if figures[name]:
            problems.append(f"{figures[name]} {what}")
    if not figures["rows"]:
        problems.append("no command was queued during the soak")
    figures["problems"] = problems
    return figures


def table(results: dict) -> str:
    """The counts as a plain-text table."""
    checks = results["checks"]
    enqueue = results["enqueue"]
    simulator = results["simulator"]
    lines = [
        f"soak: {results['devices']} devices, {results['soak_seconds']:.0f} s of load + "
        f"{results['drain_seconds']:.0f} s drain; web restarted at "
        f"{results['restarts']['web']['at']:.0f} s ({results['restarts']['web']['down']:.1f} s), "
        f"worker at {results['restarts']['worker']['at']:.0f} s "
        f"({results['restarts']['worker']['down']:.1f} s)",
        f"enqueued through the API: {enqueue['queued']} commands ({enqueue['fleet_commands']} "
        f"to the whole fleet) = {enqueue['rows']} rows; {enqueue['requests']} requests",
        f"simulator: {simulator.get('requests', 0)} requests, "
        f"{simulator.get('commands_answered', 0)} answers, "
        f"{simulator.get('pushes', 0)} pushes received, p50/p95/p99 "
        + "/".join(str(v) for v in simulator.get("latency_ms", {}).values())
        + " ms",
        "",
        f"{'queue rows since the soak started':44} {checks['rows']:>8}",
    ]
    for name in OUTCOMES:
        lines.append(f"  {name:42} {checks['outcomes'][name]:>8}")
    for label, key in [
        ("stuck as sent (device polled since)", "stuck_sent"),
        ("sent to a device that went silent", "sent_to_silent_devices"),
        ("queued older than the drain", "queued_older_than_drain"),
        ("answers not recorded", "lost_answers"),
        ("API 201 but missing / short of rows", "enqueued_missing"),
        ("executed twice", "executed_twice"),
        ("5xx from the portal", "portal_5xx"),
        ("unreachable (restarts: nginx 502, refused)", "unreachable"),
        ("unreachable outside the restarts", "unreachable_outside_restarts"),
        ("devices polling at the end", "devices_polling_at_end"),
    ]:
        lines.append(f"{label:44} {checks[key]:>8}")
    lines.append("")
    lines.append("result: OK" if not checks["problems"] else "result: FAILED")
    lines += [f"  - {problem}" for problem in checks["problems"]]
    return "\n".join(lines)
