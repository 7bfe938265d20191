"""Test support for the fleet simulator: a live portal ready to enroll, and runs against it."""

import datetime as dt
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
        return run(self.options(**fields))


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
