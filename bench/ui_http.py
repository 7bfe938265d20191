"""The device list at fleet scale through the production stack: nginx (TLS), gunicorn and a
logged-in viewer's session, as a browser gets it (httpx, trusting the stack's private CA).

The devices (bench/ui_bench.py's fill: the same mix, UDIDs and group names starting with
BENCH-UI-) go into the stack's own database, where gunicorn reads them, and are deleted
afterwards with the viewer; so are those of an earlier run that did not finish. Each page of
ui_bench.PAGES is fetched `runs` times after a warm-up: median and p95, client side.
"""

import re
import secrets
import ssl
import time
from pathlib import Path

import httpx

from bench.ui_bench import PAGES, fill, measure, slowest

PREFIX = "BENCH-UI-"
VIEWER = "bench-ui-viewer"


def remove() -> None:
    """The devices, groups and viewer of a run (plain SQL: 100,000 devices at once)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from devices.models import Device, DeviceGroup

    with transaction.atomic(), connection.cursor() as cursor:
        for model, column in ((Device, "udid"), (DeviceGroup, "name")):
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE {column} LIKE %s",  # noqa: S608
                [PREFIX + "%"],
            )
    get_user_model().objects.filter(username=VIEWER).delete()


def login(http: httpx.Client, username: str, password: str) -> None:
    form = http.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if form.status_code != 200 or not token:
        raise RuntimeError(f"no login form at /accounts/login/ ({form.status_code})")
    answer = http.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": str(http.base_url) + "/accounts/login/"},
    )
    if answer.status_code != 302:
        raise RuntimeError(f"the viewer's login failed ({answer.status_code})")


def run(url: str, ca_file: str | Path, *, devices: int = 100_000, runs: int = 30) -> dict:
    from django.contrib.auth import get_user_model

    from bench.testdb import require_postgres
    from mdm_portal.roles import VIEWER as VIEWER_ROLE
    from mdm_portal.roles import set_role

    require_postgres()
    remove()
    figures = {"devices": devices, "runs": runs, "through": "nginx + gunicorn", "pages": {}}
    try:
        start = time.perf_counter()
        group = fill(devices, prefix=PREFIX)
        figures["fill_s"] = time.perf_counter() - start
        password = secrets.token_urlsafe(16)
        set_role(get_user_model().objects.create_user(VIEWER, "", password), VIEWER_ROLE)
        verify = ssl.create_default_context(cafile=str(ca_file))
        with httpx.Client(base_url=url, verify=verify, timeout=60, trust_env=False) as http:
            login(http, VIEWER, password)
            for label, path in PAGES:
                page = path.format(group=group)
                figures["pages"][label] = measure(lambda p: http.get(p).status_code, page, runs)
    finally:
        remove()
    return slowest(figures)
