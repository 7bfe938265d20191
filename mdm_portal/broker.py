"""Asking the Celery broker (and the Redis cache beside it) for "run soon", never making the
caller wait for it.

Work a request starts is in the database before the broker hears of it: a push is a
Device.push_due_at mark, a webhook delivery a row of the outbox. The broker call after the
commit only makes it happen sooner than the every-minute periodic run that sends whatever is
waiting. So a broker that is down or slow must cost a device request nothing:

- one attempt, no publish retries (`retry=False`), on a connection whose connect and socket
  timeouts are short (CELERY_BROKER_TRANSPORT_OPTIONS in settings);
- after a failure, this process leaves the broker alone for MDM_BROKER_PAUSE_SECONDS (a
  circuit breaker): requests in that window make no broker call at all, one log line says so,
  and the periodic run picks up what they left.

The pause is per process (each gunicorn worker finds out on its own, at the cost of one failed
attempt): nothing another process must see lives in it.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

log = logging.getLogger("mdm.broker")

T = TypeVar("T")

_lock = threading.Lock()
_paused_until = 0.0  # time.monotonic() before which broker calls are skipped


def paused() -> bool:
    return time.monotonic() < _paused_until


def attempt(what: str, call: Callable[[], T]) -> T | None:
    """`call()` once, unless the broker failed within the pause; None if skipped or failed.

    `what` names the work in the log line ("push", "webhook delivery").
    """
    global _paused_until
    if paused():
        return None
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - any broker or cache failure: the periodic run sends
        pause = settings.MDM_BROKER_PAUSE_SECONDS
        with _lock:
            _paused_until = time.monotonic() + pause
        log.warning(
            "%s not scheduled now, the periodic run will send it (broker calls paused for %ss): "
            "%s: %s",
            what,
            pause,
            type(exc).__name__,
            exc,
        )
        return None


def run_soon(task, what: str, countdown: float = 0) -> bool:
    """Queue the Celery `task` to run in `countdown` seconds, without waiting for the broker.

    Returns whether the broker took it.
    """
    return attempt(what, lambda: task.apply_async(countdown=countdown, retry=False)) is not None


def resume() -> None:
    """End the pause now (tests; a process that knows the broker is back)."""
    global _paused_until
    with _lock:
        _paused_until = 0.0
