"""What the benchmarks share: Django set up from the environment, and a throwaway database.

    from bench.testdb import setup_django, throwaway_database
    setup_django()                      # DJANGO_SETTINGS_MODULE, sys.path, django.setup()
    with throwaway_database():          # a test database of its own on DATABASE_URL's server
        ...

Nested, `throwaway_database()` reuses the outer database, emptied (flush), so bench/run.py pays
for one database and its migrations however many parts use one.
"""

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_open = []  # the throwaway database in use, if any


def setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdm_portal.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def require_postgres() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit('run it on PostgreSQL: eval "$(scripts/services.sh env)" first')


@contextmanager
def throwaway_database(connect_as: dict | None = None):
    """A test database named after this process (others share the server), destroyed after.
    `connect_as`: connection settings to use meanwhile (USER, HOST ...: a role that may create
    databases, where DATABASE_URL's may not, as on the production stack). No
    setup_test_environment(): its template instrumentation (the test Client keeping a copy of
    every context) is test machinery that would be timed with a page."""
    from django.core.management import call_command
    from django.db import connection

    if _open:
        call_command("flush", interactive=False, verbosity=0)
        yield _open[-1]
        return
    saved = {key: connection.settings_dict[key] for key in connect_as or {}}
    connection.close()
    connection.settings_dict.update(connect_as or {})
    connection.settings_dict["TEST"]["NAME"] = f"test_mdm_bench_{os.getpid()}"
    saved["NAME"] = connection.settings_dict["NAME"]
    try:
        name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
        _open.append(name)
        try:
            yield name
        finally:
            _open.pop()
            connection.creation.destroy_test_db(saved["NAME"], verbosity=0)
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def timed(work):
    """(result, seconds) of `work()`."""
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start
