"""Test support for the fleet simulator: a live portal ready to enroll, and runs against it."""

import asyncio
import datetime as dt
import threading
from dataclasses import dataclass

import pytest
from django.utils import timezone

from certs.ca import ensure_ca
from certs.models import PushCertificate
from commands.models import QueuedCommand
from devices.models import Device
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from simulator import Options, run
from tests.simulator import TOPIC


@dataclass
class Portal:
    url: str
    token: str

    def options(self, **fields) -> Options:
        defaults = {"devices": 2, "concurrency": 2, "progress": False}
        return Options(url=self.url, enrollment=self.token, **{**defaults, **fields})

    def run(self, **fields):
        return in_thread(run, self.options(**fields))


def run_async(coroutine):
    return in_thread(asyncio.run, coroutine)


def in_thread(function, *args, **kwargs):
    """function(*args) in a thread of its own: the browser tests' Playwright keeps an event
    loop running in the main thread for the whole session, where asyncio.run fails (the
    simulator runs its devices with asyncio.run)."""
    outcome = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def ready_to_enroll() -> None:
    """A CA and a push certificate (never pushed to here): what enrollment profiles need."""
    ensure_ca(actor="tests")
    PushCertificate.objects.create(
        topic=TOPIC,
        certificate_pem="-",
        private_key_pem=b"k",
        not_after=timezone.now() + dt.timedelta(days=300),
    )


@pytest.fixture
def portal(live_server, settings) -> Portal:
    """The live server as a portal devices can enroll in: its public URL, a CA, a push
    certificate (never pushed to here) and an enrollment whose devices sign their messages."""
    settings.MDM_PUBLIC_URL = live_server.url
    ready_to_enroll()
    enrollment = create_enrollment(EnrollmentSpec(name="Sim", sign_message=True), by="tests")
    return Portal(live_server.url, enrollment.token)


def statuses(device: Device) -> dict[str, list[str]]:
    """RequestType -> the statuses of its queue rows, oldest first."""
    found: dict[str, list[str]] = {}
    for row in QueuedCommand.objects.filter(device=device).order_by("id"):
        found.setdefault(row.request_type, []).append(row.status)
    return found
