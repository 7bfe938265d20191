"""A database that is down or restarting: 503 with Retry-After, one log line, and the next
request reconnects.

Without this, a PostgreSQL restart turns every request into a 500 with a traceback in the log
for each. Devices, SCEP clients and profile downloads retry a 503 that says when (Retry-After),
and the log gets one line per refused request, saying what failed. The connection that broke
is closed here, so the same process serves the next request on a fresh connection: no restart
needed (a kept connection broken while no request ran fails once, then reconnects).

Django's OperationalError and InterfaceError are what a database that cannot be reached, shuts
down or drops the connection raises (and deadlocks and lock timeouts, for which a retry is the
right answer too). Other database errors (integrity, programming) stay 500s with a traceback:
they are bugs, not outages.
"""

import contextlib
import logging

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.utils.log import log_response

log = logging.getLogger("mdm.unavailable")

RETRY_AFTER_SECONDS = 15  # about what a PostgreSQL restart takes
MESSAGE = "the database is unavailable, retry later"


class DatabaseUnavailableMiddleware:
    """Turns a database outage raised by a view into a 503 (first in MIDDLEWARE)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        close_broken_connections()
        if request.path.startswith("/api/"):
            response = JsonResponse({"error": MESSAGE, "detail": None}, status=503)
        else:  # devices, SCEP and profile downloads read plain text; so can a person
            response = HttpResponse(
                MESSAGE + "\n", status=503, content_type="text/plain; charset=utf-8"
            )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        first_line = (str(exception).strip().splitlines() or [""])[0]
        # log_response marks the response as logged: Django's own "Service Unavailable" line
        # (and its traceback) is not written on top of this one.
        log_response(
            "%s %s answered 503, database unavailable: %s: %s",
            request.method,
            request.path,
            type(exception).__name__,
            first_line,
            response=response,
            request=request,
            logger=log,
            level="warning",
        )
        return response


def close_broken_connections() -> None:
    """Close the connections that no longer work, so that the next request opens new ones."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue  # never connected (the connect itself failed): nothing to close
        with contextlib.suppress(DatabaseError):
            if connection.is_usable():
                continue  # a deadlock or a lock timeout: the connection itself is fine
        with contextlib.suppress(DatabaseError):
            connection.close()
