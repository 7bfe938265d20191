"""What the Automated Device Enrollment pages share: the audit address of the acting person,
the page of Apple's per-serial answers, and where a "sync now" stands."""

import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mdm_portal.audit import client_address, note_in_scope

from ..dep_models import DepServer
from .dep_tables import ResultTable

SYNC_POLL_SECONDS = 2
# A sync a worker has not finished after this long: the page offers to run it in the request
# (no worker running, or a queue far behind).
WORKER_PATIENCE_SECONDS = 45


def acting_here(request) -> None:
    """The DEP functions take the actor only: the request's address joins their audit
    entries through the request's audit scope."""
    note_in_scope(address=client_address(request))


def results_page(
    request: HttpRequest, *, title: str, what: str, results: dict[str, str], back: str, **context
) -> HttpResponse:
    """Apple's answer for each serial (SUCCESS, NOT_ACCESSIBLE, FAILED), as the POST's own
    answer: the results are recorded on the devices too, so a reload loses nothing."""
    rows = [{"serial": serial, "result": result} for serial, result in results.items()]
    failed = sum(1 for row in rows if row["result"] != "SUCCESS")
    return render(
        request,
        "enrollment/dep/results.html",
        {
            "title": title,
            "what": what,
            "table": ResultTable(rows),
            "count": len(rows),
            "failed": failed,
            "back": back,
            **context,
        },
    )


def sync_state(server: DepServer, syncing: str | None) -> dict | None:
    """Where the sync asked for at `syncing` (a timestamp, from the page's URL) stands: done
    once the server's last sync is that recent, with its outcome; None without one."""
    try:
        since = float(syncing or "")
    except ValueError:
        return None
    last = server.last_sync_at
    done = last is not None and last.timestamp() >= since
    waited = max(0, int(time.time() - since))
    return {
        "since": syncing,
        "done": done,
        "ok": bool(server.last_sync_ok),
        "result": server.last_sync_result,
        "waited": waited,
        "slow": not done and waited >= WORKER_PATIENCE_SECONDS,
    }
